"""Alembic migrations, run programmatically on our own async engine.

`upgrade()` is what `videofly db upgrade` and the start of `run` and `chat` call. The scripts live
in `core/migrations/versions`; `videofly db revision -m "…"` autogenerates the next one from the
tables' metadata (review it by hand before committing).

Every migrator waits on one lock, so replicas that start together on a new database all come
up: the first migrates, the others find the schema at head and do nothing. On PostgreSQL that
is a transaction-level advisory lock on a fixed key (`pg_advisory_xact_lock`), taken first in
the migrating transaction and released by its COMMIT or ROLLBACK (so also when the process
dies); on SQLite it is the write lock (`core.db.write`: BEGIN IMMEDIATE, and the in-process
writer queue). Alembic reads the current revision only after the lock is held. Without it, two
replicas both saw an empty schema and one died on CREATE TABLE (UniqueViolationError).

What runs under the lock is kept short: the migration environment's imports (every package's
tables, which pull in most of the application) happen before it is taken; with them inside,
four `videofly db upgrade` on a new SQLite file each held the write lock for seconds of imports
and the last waiters ran out of the busy timeout. A SQLite migrator that still does (a long
migration elsewhere) tries again, a bounded number of times.

Alembic (with Mako and Pygments, which it imports) is about a tenth of the service's start-up
imports, and on almost every start there is nothing to migrate. So `upgrade()` to head first
reads the scripts' one head from their `revision` / `down_revision` lines (AST, no import) and
the database's `alembic_version`; when they match it returns without loading Alembic. Anything
else (behind, several heads, an unreadable script, no version table) goes through Alembic.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ._sqlite import is_busy
from .db import is_postgres, read, write

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

__all__ = ["current", "downgrade", "head", "revision", "upgrade"]

_SCRIPTS = Path(__file__).parent / "migrations"
# The advisory lock every migrator of a PostgreSQL database waits on: b"videofly" as a bigint.
LOCK_KEY = int.from_bytes(b"videofly", "big")
_TABLE_MODULES = ("bot.wechat._inbox_tables", "bot.wechat._tables", "core.outbox",
                  "generation.tables", "handlers.tables", "memberships.tables", "payments.tables",
                  "wallet.tables")
_SQLITE_ATTEMPTS = 5  # each waits up to the busy timeout (30 s by default)


def _config(sync_conn: Any = None) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = sync_conn
    return cfg


async def _lock(conn: AsyncConnection) -> None:
    """Waits for the migration lock (SQLite: `write` holds the write lock already)."""
    if is_postgres(conn):
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})


def _load_tables() -> None:
    """What migrations/env.py imports, imported now, before the lock."""
    for module in _TABLE_MODULES:
        importlib.import_module(module)


async def _locked(engine: AsyncEngine, run: Callable[[Any], None]) -> None:
    _load_tables()
    for attempt in range(_SQLITE_ATTEMPTS):
        try:
            async with write(engine) as conn:
                await _lock(conn)
                await conn.run_sync(run)
            return
        except OperationalError as exc:
            if is_postgres(engine) or not is_busy(exc) or attempt == _SQLITE_ATTEMPTS - 1:
                raise


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    if revision == "head" and await _at_head(engine):
        return  # nothing to do: Alembic stays unloaded (see the module docstring)
    from alembic import command

    await _locked(engine, lambda c: command.upgrade(_config(c), revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    from alembic import command

    await _locked(engine, lambda c: command.downgrade(_config(c), revision))


async def current(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with read(engine) as conn:
        return await conn.run_sync(
            lambda c: MigrationContext.configure(c).get_current_revision())


async def revision(engine: AsyncEngine, message: str) -> None:
    from alembic import command

    async with write(engine) as conn:
        await conn.run_sync(
            lambda c: command.revision(_config(c), message=message, autogenerate=True))

def head() -> str:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations must have one head, found {heads}")
    return heads[0]


def script_head() -> str | None:
    """The scripts' one head read from their source, or None when that is not plain (several
    heads, a revision id that is not a literal): then only Alembic can say."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (_SCRIPTS / "versions").glob("*.py"):
        found: dict[str, Any] = {}
        for node in ast.parse(path.read_bytes(), str(path)).body:
            target: ast.expr
            if isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            else:
                continue
            if isinstance(target, ast.Name):
                try:
                    found[target.id] = ast.literal_eval(value)
                except ValueError:
                    found[target.id] = None
        rev, down = found.get("revision"), found.get("down_revision")
        if not isinstance(rev, str):
            return None
        revisions.add(rev)
        downs = down if isinstance(down, tuple | list) else (down,) if down else ()
        if not all(isinstance(d, str) for d in downs):
            return None
        parents.update(downs)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


async def _at_head(engine: AsyncEngine) -> bool:
    want = script_head()
    if want is None:
        return False
    try:
        async with read(engine) as conn:
            have = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    except DBAPIError:  # no version table yet (or no database: Alembic will say so)
        return False
    return [row[0] for row in have] == [want]
