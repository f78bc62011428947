"""The `videofly` command line.

`--config PATH` is accepted before or after the command (`videofly --config c.toml run`,
`videofly run --config c.toml`, `videofly db upgrade --config c.toml`).

Exit codes: 0 success (`run`: stopped by SIGINT or SIGTERM); 1 the command ran and found a
problem (`audit` violations); 2 it could not run (bad configuration, a missing key, the port in
use, database unreachable or not migrated); 3 an unexpected error (a bug). Expected errors are
one line naming what to fix, never a traceback, and never a secret (a database URL is shown
without password). An error is blamed on the database only when the database layer raised it
(a SQLAlchemy error, or an OSError raised inside the driver): anything else is unexpected, and
gets an incident id on stderr and its full traceback, under that id, in the log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
import uuid
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from core import migrate
from core.config import Config, ConfigError, Secrets, load_config
from core.db import create_engine, read
from wallet import Wallet, queries

log = logging.getLogger("videofly")


def engine_for(config: Config) -> AsyncEngine:
    db = config.database
    return create_engine(db.url, pool_size=db.pool_size, max_overflow=db.max_overflow,
                         sqlite_busy_timeout_ms=db.sqlite_busy_timeout_ms, echo=db.echo)


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


class NotMigrated(Exception):
    pass


async def require_head(engine: AsyncEngine) -> None:
    have, want = await migrate.current(engine), migrate.head()
    if have != want:
        raise NotMigrated(f"database is at revision {have or 'none'}, code expects {want}; "
                          "run `videofly db upgrade`")


async def cmd_db(config: Config, args: argparse.Namespace) -> int:
    engine = engine_for(config)
    try:
        if args.db_command == "upgrade":
            await migrate.upgrade(engine, args.revision)
            print(f"database {safe_url(config.database.url)} at {await migrate.current(engine)}")
        elif args.db_command == "downgrade":
            await migrate.downgrade(engine, args.revision)
            print(f"database at {await migrate.current(engine) or 'base (empty)'}")
        elif args.db_command == "current":
            print(await migrate.current(engine) or "none")
        elif args.db_command == "revision":
            await migrate.revision(engine, args.message)
        return 0
    finally:
        await engine.dispose()


async def cmd_audit(config: Config, args: argparse.Namespace) -> int:
    engine = engine_for(config)
    try:
        await require_head(engine)
        violations = await Wallet(engine).audit()
        async with read(engine) as conn:
            n_users = await queries.count_accounts(conn)
            n_rows = await queries.count_ledger(conn)
    finally:
        await engine.dispose()
    for v in violations:
        print(f"VIOLATION {v}")
    verdict = f"{len(violations)} violation(s)" if violations else "all invariants hold"
    print(f"audit: {n_users} accounts, {n_rows} ledger entries: {verdict}")
    return 1 if violations else 0


async def cmd_run(config: Config, args: argparse.Namespace) -> int:
    """Serves the web application, runs the scheduler, the chat channels and the outbox
    dispatcher until SIGINT or SIGTERM."""
    from bot.app import StartupError, build_app, serve  # the service's imports, only here
    from bot.channels import open_channels
    from bot.dispatcher import Dispatcher

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            loop.add_signal_handler(sig, stop.set)
    http = config.http
    try:
        secrets = Secrets.from_env()
        async with build_app(config, secrets) as app, \
                serve(app.web_app, host=http.host, port=http.port,
                      header_timeout=http.header_timeout_seconds) as url, app.scheduler, \
                contextlib.AsyncExitStack() as stack:
            log.info("listening on %s (public URL %s)", url, http.public_url)
            channels = await stack.enter_async_context(open_channels(app, secrets))
            dispatcher = await stack.enter_async_context(Dispatcher(
                engine=app.engine, handlers=app.handlers, channels=channels, turns=app.turns))
            log.info("outbox dispatcher delivering on: %s", ", ".join(channels) or "nothing")
            # What start-up loaded lives as long as the process: keep it out of the collector's
            # full passes, which otherwise stall every request in flight (bench/callbacks.py:
            # p99 70-115 ms of pause without this, 1-8 ms with it).
            gc.collect()
            gc.freeze()
            await stop.wait()
            log.info("stopping")
            del dispatcher
    except StartupError as exc:
        print(f"videofly: {exc}", file=sys.stderr)
        return 2
    log.info("stopped")
    return 0


async def cmd_chat(config: Config, args: argparse.Namespace) -> int:
    """Talks to the bot in the terminal with the service running in this process."""
    from bot._console_session import chat
    from bot._secrets import SecretProblem, service_secrets
    from bot.app import StartupError

    try:
        # A terminal session is always a demo: it makes and keeps its own signing secrets.
        return await chat(config, service_secrets(config, Secrets.from_env(), demo=True))
    except (StartupError, SecretProblem) as exc:
        print(f"videofly: {exc}", file=sys.stderr)
        return 2


_CONFIG_HELP = "config file (default ./config.toml; or set VIDEOFLY_CONFIG)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="videofly", description=__doc__.splitlines()[0])
    p.add_argument("--config", metavar="PATH", help=_CONFIG_HELP)
    # Every command takes --config too. SUPPRESS: a command without it keeps the value given
    # before the command instead of resetting it to None.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=_CONFIG_HELP)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    db = sub.add_parser("db", help="database migrations", parents=[common])
    dbs = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = dbs.add_parser("upgrade", help="apply migrations (default: to the newest)",
                        parents=[common])
    up.add_argument("revision", nargs="?", default="head")
    down = dbs.add_parser("downgrade", help="undo migrations down to REVISION ('base': all)",
                          parents=[common])
    down.add_argument("revision")
    dbs.add_parser("current", help="print the database's revision", parents=[common])
    rev = dbs.add_parser("revision", help="autogenerate a migration from the tables (dev)",
                         parents=[common])
    rev.add_argument("-m", "--message", required=True)
    sub.add_parser("audit", help="check the wallet invariants; exit 1 on any violation",
                   parents=[common])
    sub.add_parser("run", help="the service: HTTP server, scheduler, chat channels, outbox "
                   "(until SIGINT/SIGTERM)", parents=[common])
    sub.add_parser("chat", help="talk to the bot in this terminal (the embedded defaults work "
                   "offline: SQLite under ./data, local storage, the demo provider)",
                   parents=[common])
    return p


COMMANDS: dict[str, Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "db": cmd_db,
    "audit": cmd_audit,
    "run": cmd_run,
    "chat": cmd_chat,
}


def _logging(config: Config, *, to_file: bool) -> None:
    """Log lines go to stderr; for `chat` to `<data_dir>/videofly.log`, so the terminal shows
    only the conversation (and only warnings reach the terminal if the file cannot be made)."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if to_file:
        path = Path(config.app.data_dir) / "videofly.log"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            logging.basicConfig(level=config.app.log_level, format=fmt, filename=path,
                                encoding="utf-8")
            return
        except OSError:
            logging.basicConfig(level=logging.WARNING, format=fmt)
            return
    logging.basicConfig(level=config.app.log_level, format=fmt)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"videofly: {exc}", file=sys.stderr)
        return 2
    _logging(config, to_file=args.command == "chat")
    try:
        return asyncio.run(COMMANDS[args.command](config, args))
    except NotMigrated as exc:
        print(f"videofly: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if _from_database(exc):
            reason = type(getattr(exc, "orig", None) or exc).__name__
            print(f"videofly: cannot use database {safe_url(config.database.url)} ({reason})",
                  file=sys.stderr)
            return 2
        incident = uuid.uuid4().hex[:12]
        log.exception("incident %s: videofly %s failed unexpectedly", incident, args.command)
        where = " (details in the log file)" if args.command == "chat" else ""
        print(f"videofly: unexpected error, incident {incident}: {type(exc).__name__}{where}",
              file=sys.stderr)
        return 3


_DATABASE_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "alembic")
_OUR_MODULES = ("bot", "core", "generation", "handlers", "payments", "providers", "storage",
                "wallet", "webhooks")


def _from_database(exc: BaseException) -> bool:
    """True when the database layer raised `exc`: a SQLAlchemy error, or an OSError (a refused
    connection, say) raised below the driver. Of the frames that are either ours or the
    database layer's, the innermost decides: an OSError from our own code or below it (a file
    name too long, a port in use) is not the database's."""
    if isinstance(exc, (OperationalError, DBAPIError)):
        return True
    if not isinstance(exc, OSError):
        return False
    owner = ""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in (*_DATABASE_MODULES, *_OUR_MODULES):
            owner = module.split(".", 1)[0]
        tb = tb.tb_next
    return owner in _DATABASE_MODULES


if __name__ == "__main__":
    sys.exit(main())
