"""`bench/wechat.py profile`: where one WeChat message's time goes.

The service as `bench/wechat.py messages` builds it (`_wechat_messages.videofly_server`), the
same warm-up, then one timed load (`--users` at once, `--messages` each; `--users 1` for one
message's path alone) while it counts, per message:

* SQL statements by kind (BEGIN, SELECT, INSERT, UPDATE, DELETE, other) and transactions
  (SQLAlchemy `commit` and `rollback` events: a read by key on SQLite's event-loop connection
  ends in a rollback, a write or a group commit in a commit), on the service's engine and
  SQLite's synchronous twin;
* CPU: the whole process's, and the event loop thread's own, user and system (the rest is
  worker threads: SQLite checkpoints, `asyncio.to_thread`);
* with `--direct ROUNDS`, instead: the answer path without HTTP (`WeChatWebhook.hand_over`),
  its event-loop CPU a message;
* with `--cprofile N`, the event loop thread's cProfile, its top N functions by own time and
  by cumulative time (cProfile sees that thread only, and slows it: use it for shares, not
  rates).

    python bench/wechat.py profile --users 1 --messages 200 --cprofile 25
    python bench/wechat.py profile --users 100 --messages 10 --pg-url postgresql+asyncpg://…
    python bench/wechat.py profile --direct 5 --users 100 --messages 20
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from . import _wechat_messages as wm
from ._wechat_messages import log_to_file as wm_log


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--messages", type=int, default=200, help="per user, counted")
    parser.add_argument("--mode", choices=("active", "passive"), default="passive")
    parser.add_argument("--pg-url", default=None, help="PostgreSQL instead of SQLite")
    parser.add_argument("--text", default="/balance")
    parser.add_argument("--log-level", default="WARNING", choices=("INFO", "WARNING"))
    parser.add_argument("--no-count", action="store_true",
                        help="no statement listeners (they cost CPU themselves)")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N",
                        help="print the event loop thread's top N functions")
    parser.add_argument("--direct", type=int, default=0, metavar="ROUNDS",
                        help="instead of the HTTP load: ROUNDS of --messages messages of one "
                             "user handed to the inbox one after the other, without HTTP "
                             "(`WeChatWebhook.hand_over`); prints each round's CPU a message")
    parser.add_argument("--py-spy", type=Path, default=None, metavar="FILE",
                        help="sample every thread holding the GIL with py-spy (when on PATH) "
                             "during the counted load, collapsed stacks into FILE")


class Counts:
    """Statements by first keyword and transactions, on every engine it listens to."""

    def __init__(self) -> None:
        self.statements: Counter[str] = Counter()
        self.on = False

    def listen(self, engine: Engine) -> None:
        @event.listens_for(engine, "before_cursor_execute")
        def _statement(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
            if self.on:
                word = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
                self.statements[word if word in _KINDS else "other"] += 1

        def _ended(conn: Any) -> None:
            if self.on:
                self.statements["(transaction)"] += 1

        event.listen(engine, "commit", _ended)
        event.listen(engine, "rollback", _ended)

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.on = True
        try:
            yield
        finally:
            self.on = False


@contextmanager
def py_spy(out: Path | None) -> Iterator[None]:
    """py-spy sampling this process (threads holding the GIL) while the block runs."""
    spy = shutil.which("py-spy") if out is not None else None
    if spy is None:
        yield
        return
    command = [spy, "record", "--pid", str(os.getpid()), "--gil", "--threads", "--rate", "500",
               "--format", "raw", "--output", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)


_KINDS = ("BEGIN", "SELECT", "INSERT", "UPDATE", "DELETE", "COMMIT")


async def bench_profile(args: argparse.Namespace) -> int:
    import logging

    from core.db import sqlite_twin

    logging.basicConfig(level=logging.WARNING)
    counts = Counts()
    apps: list[Any] = []

    def on_app(app: Any) -> None:
        apps.append(app)
        if args.no_count:
            return
        counts.listen(app.engine.sync_engine)
        twin = sqlite_twin(app.engine)
        if twin is not None:
            counts.listen(twin)

    async with AsyncExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        if args.pg_url:
            await wm._empty_postgres(args.pg_url)
        stack.enter_context(wm_log(args.log_level, Path(tmp) / "videofly.log"))
        url = await stack.enter_async_context(wm.videofly_server(
            tmp, args.mode, args.pg_url, on_app=on_app, log_level=args.log_level))
        if args.direct:
            with py_spy(args.py_spy):
                return await _direct(args, apps[0])
        await wm.run_load(wm.Load(url, args.users, 1, "/start", "oProf"))
        await wm.run_load(wm.Load(url, args.users, 2, args.text, "oProf"))
        profile = cProfile.Profile() if args.cprofile else None
        cpu, thread = time.process_time(), time.thread_time()
        usage = resource.getrusage(resource.RUSAGE_THREAD)
        with counts.counting(), py_spy(args.py_spy):
            if profile is not None:
                profile.enable()
            elapsed, latencies, bodies = await wm.run_load(
                wm.Load(url, args.users, args.messages, args.text, "oProf"))
            if profile is not None:
                profile.disable()
        cpu, thread = time.process_time() - cpu, time.thread_time() - thread
        after = resource.getrusage(resource.RUSAGE_THREAD)
    n = len(latencies)
    figures = wm.figures(elapsed, latencies)
    print(f"{n} {args.text!r} messages, {args.users} users at once, {args.mode} mode, "
          f"{'PostgreSQL' if args.pg_url else 'SQLite'}: {figures}")
    print(f"  CPU per message: {cpu / n * 1000:.2f} ms in the process, "
          f"{thread / n * 1000:.2f} ms on the event loop thread (user "
          f"{(after.ru_utime - usage.ru_utime) / n * 1000:.2f}, system "
          f"{(after.ru_stime - usage.ru_stime) / n * 1000:.2f})")
    per = {k: v / n for k, v in sorted(counts.statements.items())}
    print("  per message: " + ", ".join(f"{k} {v:.2f}" for k, v in per.items()))
    print(f"  a reply: {wm.reply_content(bodies[-1])[:80]!r}")
    if profile is not None:
        _print_profile(profile, args.cprofile)
    return 0


def _print_profile(profile: cProfile.Profile, top: int) -> None:
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(order).print_stats(top)
        print(out.getvalue())


async def _direct(args: argparse.Namespace, app: Any) -> int:
    """The answer path alone: `--direct` rounds of `--messages` parsed messages from each of
    `--users` users at once (each user's one after the other) handed to the inbox
    (`WeChatWebhook.hand_over`, as the route does after parsing): each round's event-loop CPU
    a message, and the least (the steadiest figure: no HTTP, no other process's load)."""
    import asyncio

    from wechatpy import parse_message

    hook = app.wechat_webhook
    ids = iter(range(10**9))
    users = [f"oDirect{n:05d}" for n in range(args.users)]

    def batch(text: str, count: int) -> list[list[Any]]:
        return [[parse_message(wm._xml(u, text, next(ids))) for _ in range(count)]
                for u in users]

    async def run(messages: list[list[Any]]) -> None:
        async def user(mine: list[Any]) -> None:
            for message in mine:
                await hook.hand_over(message)

        await asyncio.gather(*(user(m) for m in messages))

    await run(batch("/start", 1))
    await run(batch(args.text, 5))
    rounds = []
    profile = cProfile.Profile() if args.cprofile else None
    for _ in range(args.direct):
        messages = batch(args.text, args.messages)
        cpu = time.thread_time()
        if profile is not None:
            profile.enable()
        await run(messages)
        if profile is not None:
            profile.disable()
        rounds.append((time.thread_time() - cpu) / (args.messages * args.users) * 1e6)
    print(f"{args.text!r} handed over directly, {args.users} users × {args.messages} a round, "
          f"{args.mode} mode, {'PostgreSQL' if args.pg_url else 'SQLite'}: CPU a message (µs) "
          + " ".join(f"{r:.0f}" for r in rounds) + f"; least {min(rounds):.0f} µs")
    if profile is not None:
        _print_profile(profile, args.cprofile)
    return 0
