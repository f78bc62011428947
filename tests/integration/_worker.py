"""A child process for wallet tests that need other OS processes.

    python -m tests.integration._worker holds URL USER_ID N [plain]
        N concurrent holds of 1 credit; prints {"ok": k, "short": m, "ids": [...]} as JSON.
        With `plain`, on an engine made by SQLAlchemy's own create_async_engine.
    python -m tests.integration._worker script URL KILL_AT
        runs SCRIPT, printing "done <i>" after each operation commits, and SIGKILLs itself
        just before the KILL_AT-th database call (statement or COMMIT); 0 never kills.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.db import create_engine, sqlite_twin
from wallet import InsufficientCredits, Wallet

BASE = datetime(2026, 5, 1, 15, 30, tzinfo=UTC)


@dataclass
class ScriptState:
    uid: int = 0
    holds: dict[str, int] = field(default_factory=dict)


async def _hold(w: Wallet, s: ScriptState, ref: str, credits: int, ttl: int | None = None) -> None:
    ttl_delta = timedelta(minutes=ttl) if ttl else None
    s.holds[ref] = (await w.hold(s.uid, credits, ref=ref, ttl=ttl_delta)).id


async def _open(w: Wallet, s: ScriptState) -> None:
    s.uid = await w.open_account("crash", "u1")


Op = Callable[[Wallet, ScriptState], Awaitable[Any]]

# Operation i runs with the clock at BASE + i minutes.
SCRIPT: list[tuple[str, Op]] = [
    ("open", _open),
    ("grant bonus", lambda w, s: w.grant(s.uid, 30, source="bonus", key="bonus",
                                         expires_at=BASE + timedelta(minutes=7, seconds=30))),
    ("grant purchase", lambda w, s: w.grant(s.uid, 50, source="purchase", key="buy1")),
    ("hold j1", lambda w, s: _hold(w, s, "j1", 20)),
    ("settle j1 partly", lambda w, s: w.settle(s.holds["j1"], 12)),
    ("hold j2", lambda w, s: _hold(w, s, "j2", 10, ttl=30)),
    ("checkin", lambda w, s: w.checkin(s.uid, credits=3, tz="Asia/Shanghai")),
    ("create code", lambda w, s: w.create_code(7, max_uses=2, code="CRASH1")),
    ("expire", lambda w, s: w.expire()),
    ("redeem", lambda w, s: w.redeem(s.uid, "crash1")),
    ("release j2", lambda w, s: w.release(s.holds["j2"])),
    ("clawback", lambda w, s: w.clawback(s.uid, 90, key="refund1")),
    ("grant purchase 2", lambda w, s: w.grant(s.uid, 40, source="purchase", key="buy2")),
    ("hold j3", lambda w, s: _hold(w, s, "j3", 5, ttl=1)),
    ("reap", lambda w, s: w.reap(BASE + timedelta(minutes=20))),
    ("hold j4", lambda w, s: _hold(w, s, "j4", 4)),
    ("settle j4", lambda w, s: w.settle(s.holds["j4"])),
]


class StepClock:
    def __init__(self) -> None:
        self.step = 0

    def __call__(self) -> datetime:
        return BASE + timedelta(minutes=self.step)


async def run_script(engine: AsyncEngine, after_each: Callable[[int], Awaitable[None]]) -> None:
    clock = StepClock()
    wallet, state = Wallet(engine, clock=clock), ScriptState()
    for i, (_, op) in enumerate(SCRIPT):
        clock.step = i
        await op(wallet, state)
        await after_each(i)


async def warm_up(engine: AsyncEngine) -> None:
    """Opens the first connections outside the count, in child and reference alike."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    twin = sqlite_twin(engine)
    if twin is not None:
        with twin.connect() as conn:
            conn.execute(text("SELECT 1"))


def sync_engines(engine: AsyncEngine) -> list[Engine]:
    """Every engine that talks to the database: the async one's core and the SQLite twin."""
    twin = sqlite_twin(engine)
    return [engine.sync_engine] + ([twin] if twin is not None else [])


def _arm_kill(engine: AsyncEngine, kill_at: int) -> None:
    calls = 0

    def tick(*_: Any, **__: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    for target in sync_engines(engine):
        event.listen(target, "before_cursor_execute", tick)
        event.listen(target, "commit", tick)


async def _script(url: str, kill_at: int) -> None:
    engine = create_engine(url)
    await warm_up(engine)
    if kill_at:
        _arm_kill(engine, kill_at)

    async def report(i: int) -> None:
        print(f"done {i}", flush=True)

    await run_script(engine, report)
    await engine.dispose()


async def _holds(url: str, uid: int, n: int, plain: bool) -> None:
    engine = (create_async_engine(url) if plain
              else create_engine(url, pool_size=10, max_overflow=0))
    wallet = Wallet(engine)
    tag = uuid.uuid4().hex

    async def one(i: int) -> int | None:
        try:
            return (await wallet.hold(uid, 1, ref=f"{tag}:{i}")).id
        except InsufficientCredits:
            return None

    results = [r for r in await asyncio.gather(*(one(i) for i in range(n))) if r is not None]
    await engine.dispose()
    print(json.dumps({"ok": len(results), "short": n - len(results), "ids": results}),
          flush=True)


def main(argv: list[str]) -> None:
    if argv[0] == "holds":
        asyncio.run(_holds(argv[1], int(argv[2]), int(argv[3]), argv[4:] == ["plain"]))
    elif argv[0] == "script":
        asyncio.run(_script(argv[1], int(argv[2])))
    else:
        raise SystemExit(f"unknown worker command {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
