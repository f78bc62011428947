"""The scheduler runs every sweep on its interval over a real database, and survives a sweep
that raises."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.scheduler import Intervals, Periodic, Scheduler, periodic_jobs
from core.config import GenerationConfig, ModelConfig
from generation import Catalogue, JobNotFound, JobService
from providers import CallbackHint, TaskRequest, TaskState, TaskStatus
from storage import LocalStorage
from tests.factories import FakeClock, funded_user
from wallet import Wallet

WAIT = 20.0
FAST = 0.05


class SlowProvider:
    """A provider whose tasks run forever; it records the queries the poller makes."""

    name = "fake"

    def __init__(self) -> None:
        self.created = 0
        self.queried: list[str] = []

    async def create_task(self, req: TaskRequest) -> TaskStatus:
        self.created += 1
        return TaskStatus(task_id=f"task-{self.created}", state=TaskState.RUNNING)

    async def query_task(self, task_id: str) -> TaskStatus:
        self.queried.append(task_id)
        return TaskStatus(task_id=task_id, state=TaskState.RUNNING, progress=50)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackHint:
        raise NotImplementedError


@pytest.fixture
def provider() -> SlowProvider:
    return SlowProvider()


@pytest.fixture
def jobs(engine: AsyncEngine, wallet: Wallet, clock: FakeClock, provider: SlowProvider,
         http: httpx.AsyncClient, tmp_path: Path) -> JobService:
    model = ModelConfig(id="slow-t2v", name="Slow", provider="fake", kind="text-to-video",
                        credits=2)
    storage = LocalStorage(tmp_path / "media", public_base="http://127.0.0.1:9",
                           link_secret="s" * 32, durable=False)
    return JobService(engine=engine, wallet=wallet, catalogue=Catalogue([model]),
                      providers={"fake": provider}, storage=storage, http=http,
                      config=GenerationConfig(), public_url="http://127.0.0.1:9",
                      callback_secret="c" * 32, clock=clock)


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Waits, bounded, for a state that other tasks (or the database) reach: nothing to await."""
    try:
        async with asyncio.timeout(WAIT):
            while not await check():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting until {what}") from None


async def test_every_sweep_runs_on_its_interval_and_does_its_work(
        jobs: JobService, wallet: Wallet, clock: FakeClock, provider: SlowProvider) -> None:
    uid = await funded_user(wallet, 10)
    start = clock.now
    await wallet.grant(uid, 5, source="test", key="lapsing", expires_at=start + timedelta(hours=1))
    overdue = await jobs.start(uid, "slow-t2v", prompt="never finishes")
    stray = await wallet.hold(uid, 1, ref="stray", ttl=timedelta(minutes=5))
    clock.advance(hours=2)
    quiet = await jobs.start(uid, "slow-t2v", prompt="no news for a while")
    clock.advance(minutes=1)  # past poll_after_seconds, well before its deadline
    assert overdue.state == quiet.state == "generating"

    every = FAST
    scheduler = Scheduler(periodic_jobs(jobs, wallet, Intervals(
        poll_due=every, fail_overdue=every, reap_holds=every, expire_grants=every,
        cleanup=every)))
    async with scheduler:
        assert scheduler.running

        async def overdue_failed() -> bool:
            job = await jobs.get(overdue.id)
            return job.state == "failed" and job.failure == "deadline"

        async def quiet_polled() -> bool:
            return quiet.task_id in provider.queried

        async def stray_released() -> bool:
            return (await wallet.get_hold(stray.id)).status == "released"

        async def lapsed_expired() -> bool:
            return (await wallet.balance(uid)).available == 10 - quiet.credits

        async def each_ran_twice() -> bool:
            return all(n >= 2 for n in scheduler.runs.values())

        await until(overdue_failed, "the overdue job is failed")
        await until(quiet_polled, "the quiet job is polled")
        await until(stray_released, "the stray hold is reaped")
        await until(lapsed_expired, "the lapsed grant is expired")
        await until(each_ran_twice, "every sweep ran twice")
        assert (await jobs.get(quiet.id)).progress == 50

        clock.advance(days=31)  # the failed job is now past failed_retention_days

        async def overdue_deleted() -> bool:
            try:
                await jobs.get(overdue.id)
            except JobNotFound:
                return True
            return False

        await until(overdue_deleted, "cleanup deletes the old failed job")
    assert not scheduler.running
    assert scheduler.failures == dict.fromkeys(scheduler.names, 0)


async def test_a_sweep_that_raises_is_logged_and_runs_again(
        caplog: pytest.LogCaptureFixture) -> None:
    calls = {"boom": 0, "fine": 0}

    async def boom() -> None:
        calls["boom"] += 1
        raise RuntimeError("the database went away")

    async def fine() -> int:
        calls["fine"] += 1
        return 0

    scheduler = Scheduler([Periodic("boom", FAST, boom), Periodic("fine", FAST, fine)])
    with caplog.at_level(logging.ERROR, logger="bot.scheduler"):
        async with scheduler:
            async def thrice() -> bool:
                return calls["boom"] >= 3 and calls["fine"] >= 3

            await until(thrice, "each job ran three times")
    assert scheduler.failures["boom"] >= 3
    assert scheduler.runs["fine"] >= 3
    logged = [r for r in caplog.records if "periodic job boom failed" in r.getMessage()]
    assert logged
    assert logged[0].exc_info is not None
    assert "RuntimeError: the database went away" in caplog.text  # with its traceback
    assert await scheduler.run_now("fine")
    assert not await scheduler.run_now("boom")


async def test_a_job_never_overlaps_itself() -> None:
    active = peak = runs = 0

    async def slow() -> None:
        nonlocal active, peak, runs
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.2)
        active -= 1
        runs += 1

    async def thrice() -> bool:
        return runs >= 3

    async with Scheduler([Periodic("slow", 0.02, slow)]):
        await until(thrice, "the slow job ran three times")
    assert peak == 1


async def test_stop_waits_for_a_run_in_progress_then_cancels_it() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    scheduler = Scheduler([Periodic("stuck", 3600, stuck)], grace=0.2)
    await scheduler.start()
    await asyncio.wait_for(started.wait(), WAIT)  # the first run is right at start
    loop = asyncio.get_running_loop()
    began = loop.time()
    await scheduler.stop()
    assert loop.time() - began < 5
    assert cancelled.is_set()
    assert not scheduler.running
    await scheduler.stop()  # stopping twice is harmless


def test_intervals_and_names_are_checked() -> None:
    async def nothing() -> None:
        return None

    with pytest.raises(ValueError, match="unique"):
        Scheduler([Periodic("a", 1, nothing), Periodic("a", 2, nothing)])
    with pytest.raises(ValueError, match="positive"):
        Scheduler([Periodic("a", 0, nothing)])


async def test_first_delay_defers_the_first_run_and_run_now_still_works() -> None:
    ran: list[str] = []
    started = asyncio.Event()

    async def later() -> None:
        ran.append("later")

    async def now() -> None:
        started.set()

    deferred = Scheduler([Periodic("later", 3600, later)], first_delay=3600)
    at_once = Scheduler([Periodic("now", 3600, now)])
    async with deferred, at_once:
        await asyncio.wait_for(started.wait(), WAIT)  # a run due at start has happened
        for _ in range(20):  # and the deferred one's would have been due at the same moment
            await asyncio.sleep(0)
        assert ran == []
        assert deferred.runs == {"later": 0}
        assert await deferred.run_now("later")
        assert ran == ["later"]
        assert deferred.runs == {"later": 1}
    with pytest.raises(ValueError, match="negative"):
        Scheduler([Periodic("a", 1, later)], first_delay=-1)
