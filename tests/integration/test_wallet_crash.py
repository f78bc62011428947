"""A process killed inside wallet operations leaves the database as if each interrupted
operation never started.

The child (`_worker script`) runs a fixed script of wallet operations and SIGKILLs itself just
before its K-th database call (a statement or a COMMIT), K drawn across the whole script. The
database must then equal, row for row, a reference run stopped after the operations the child
reported done, and the audit must be clean.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import TestDatabase, sqlite_copy, truncate_all
from tests.integration._worker import SCRIPT, run_script, sync_engines, warm_up
from wallet import Wallet

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
KILL_POINTS = 14

_SNAPSHOT_SQL = {
    "identities": "SELECT channel, external_id FROM identities ORDER BY channel, external_id",
    "accounts": "SELECT available, held, debt FROM accounts ORDER BY user_id",
    "grants": "SELECT key, source, amount, remaining, expires_at FROM grants ORDER BY key",
    "holds": "SELECT ref, credits, status, spent, expires_at FROM holds ORDER BY ref",
    "parts": ("SELECT h.ref, g.key, p.credits FROM hold_parts p JOIN holds h ON h.id = p.hold_id"
              " JOIN grants g ON g.id = p.grant_id ORDER BY h.ref, g.key"),
    "clawbacks": "SELECT key, credits, taken, debt FROM clawbacks ORDER BY key",
    "ledger": ("SELECT kind, amount, held_delta, debt_delta, balance_after, held_after,"
               " debt_after, ref FROM ledger ORDER BY id"),
    "codes": "SELECT code, uses FROM redeem_codes ORDER BY code",
    "redemptions": "SELECT code FROM redemptions ORDER BY code",
}


async def snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    async with engine.connect() as conn:
        return {name: [tuple(r) for r in (await conn.execute(text(sql))).all()]
                for name, sql in _SNAPSHOT_SQL.items()}


async def reference(engine: AsyncEngine) -> tuple[list[dict[str, Any]], int]:
    """Snapshots before the script and after each operation, and the number of db calls."""
    calls = 0

    def tick(*_: Any, **__: Any) -> None:
        nonlocal calls
        calls += 1

    await warm_up(engine)
    snaps = [await snapshot(engine)]
    targets = sync_engines(engine)

    def arm(on: bool) -> None:
        for t in targets:
            for name in ("before_cursor_execute", "commit"):
                (event.listen if on else event.remove)(t, name, tick)

    arm(True)

    async def after(_: int) -> None:
        arm(False)
        snaps.append(await snapshot(engine))
        arm(True)

    await run_script(engine, after)
    arm(False)
    return snaps, calls


def run_child(url: str, kill_at: int) -> tuple[int, int]:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.integration._worker", "script", url, str(kill_at)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    done = [ln for ln in proc.stdout.splitlines() if ln.startswith("done ")]
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr[-2000:]
    return proc.returncode, len(done)


async def test_killed_mid_operation_leaves_no_trace(
    database: TestDatabase, tmp_path: Path, prepared_database: Any,
) -> None:
    engine = database.engine()
    snaps, total_calls = await reference(engine)
    assert len(snaps) == len(SCRIPT) + 1
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    points = sorted([1, *rng.sample(range(2, total_calls), KILL_POINTS - 2), total_calls])
    killed_inside = 0
    for kill_at in points:
        if database.kind == "sqlite":
            target = sqlite_copy(prepared_database, tmp_path)
        else:
            await truncate_all(engine)
            target = database
        rc, done = run_child(target.url, kill_at)
        assert rc == -signal.SIGKILL, f"child was not killed at call {kill_at} (seed {seed})"
        check = target.engine() if target is not database else engine
        got = await snapshot(check)
        assert got == snaps[done], (
            f"kill at call {kill_at} of {total_calls} (seed {seed}) after {done} operations: "
            f"the interrupted operation {SCRIPT[done][0]!r} left a trace")
        violations = await Wallet(check).audit()
        assert not violations, f"seed {seed}: {violations}"
        killed_inside += done < len(SCRIPT)
        if check is not engine:
            await check.dispose()
    assert killed_inside == len(points)
    await engine.dispose()


async def test_uninterrupted_child_matches_reference(database: TestDatabase) -> None:
    engine = database.engine()
    rc, done = run_child(database.url, 0)
    assert (rc, done) == (0, len(SCRIPT))
    final = await snapshot(engine)
    await truncate_or_recreate(engine)
    snaps, _ = await reference(engine)
    assert final == snaps[-1]
    async with engine.connect() as conn:
        assert (await conn.execute(select(text("count(*)")).select_from(
            text("ledger")))).scalar() == len(snaps[-1]["ledger"])
    await engine.dispose()


async def truncate_or_recreate(engine: AsyncEngine) -> None:
    if engine.dialect.name == "postgresql":
        await truncate_all(engine)
        return
    async with engine.begin() as conn:
        for name in ("redemptions", "redeem_codes", "ledger", "clawbacks", "hold_parts",
                     "holds", "grants", "accounts", "identities", "users"):
            await conn.execute(text(f"DELETE FROM {name}"))
