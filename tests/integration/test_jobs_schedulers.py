"""Two scheduler instances on one database work through 200 jobs: each job is polled, stored,
settled and announced exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import TierConfig
from core.outbox import outbox
from generation import JobService, sweeps
from storage import LocalStorage
from tests.factories import FakeClock, TestDatabase, funded_user
from tests.fakes.evolink import EvolinkFake
from tests.fakes.kie import KieFake
from tests.integration.test_jobs import CONFIG, build_service, clip  # noqa: F401 (fixture)
from wallet import Wallet
from wallet.tables import ledger

JOBS = 200
pytestmark = pytest.mark.slow


async def test_two_schedulers_process_each_of_200_jobs_once(
    database: TestDatabase, engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient,
    clock: FakeClock, tmp_path: Path, clip: bytes,  # noqa: F811
) -> None:
    storage = LocalStorage(tmp_path / "media", public_base="http://127.0.0.1:9",
                           link_secret="x" * 32)
    config = replace(CONFIG, tiers={"free": TierConfig(concurrency=JOBS)})
    async with KieFake() as kie, EvolinkFake(progression=(("pending", 0),)) as evo:
        evo.video_bytes = clip
        first = build_service(engine, wallet, http, kie, evo, storage, clock, config)
        uid = await funded_user(wallet, 5 * JOBS)
        for batch in range(0, JOBS, 25):
            await asyncio.gather(*(first.start(uid, "sora-evo", prompt=f"job {i}")
                                   for i in range(batch, min(batch + 25, JOBS))))
        other_engine = database.engine(pool_size=5, max_overflow=5)
        second = build_service(other_engine, Wallet(other_engine, clock=clock), http, kie,
                               evo, storage, clock, config)
        for task in evo.tasks.values():  # the provider finishes every task before the polls
            task.states = [("completed", 100)]
        clock.advance(seconds=config.poll_after_seconds)
        polled = [0, 0]

        async def run(i: int, service: JobService) -> None:
            for _ in range(30):  # bounded: 200 jobs at up to 20 a round need ~10 rounds
                n = await sweeps.poll_due(service, limit=20)
                polled[i] += n
                if n == 0:
                    return

        await asyncio.gather(run(0, first), run(1, second))
        await other_engine.dispose()

    assert sum(polled) == JOBS
    assert min(polled) > 0, polled  # both instances took part
    assert Counter(evo.query_calls) == Counter({t: 1 for t in evo.tasks})
    async with engine.connect() as conn:
        states: dict[str, int] = dict((await conn.execute(
            select(ledger.c.kind, func.count()).group_by(ledger.c.kind))).all())
        announced = (await conn.execute(select(func.count()).select_from(outbox).where(
            outbox.c.kind == "job.completed"))).scalar()
    assert states["settle"] == JOBS
    assert announced == JOBS
    assert (await wallet.balance(uid)).available == 0
