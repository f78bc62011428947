"""The periodic work of a running service, on APScheduler's `AsyncIOScheduler` (3.x).

    async with Scheduler(periodic_jobs(jobs, wallet)):
        ...  # the sweeps run every few seconds until the block ends

Every job runs at most one instance at a time (`max_instances=1`), a run that was missed while
the loop was busy is run once, not once per missed tick (`coalesce=True`), and a run that is late
still runs (no misfire grace limit). Each job is wrapped so that an exception is logged with its
traceback and never reaches APScheduler: the next tick simply runs it again. Every job first
runs `first_delay` seconds after start (0 by default), so a restart catches up on overdue jobs
and holds at once; the service (`bot.app`) waits 2 s, so that the catch-up's dozen statements do
not compete with start-up and the first answers (bench/README.md, `bench/startup.py`).

The sweeps are safe with several instances on one database (they claim their rows, see
`generation.sweeps`), so every instance runs its own scheduler.

Stopping: no new runs start; runs in progress get `grace` seconds to finish, then are cancelled
(each sweep's transactions roll back; a job interrupted while storing is failed by the next
instance's `fail_overdue`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Self

from generation import JobService, sweeps
from memberships import Memberships
from wallet import Wallet

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

__all__ = ["Intervals", "Periodic", "Scheduler", "periodic_jobs"]

log = logging.getLogger("bot.scheduler")


@dataclass(frozen=True, slots=True)
class Periodic:
    """One periodic job: a name for logs, how often, and the coroutine function to call."""

    name: str
    seconds: float
    run: Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Intervals:
    """Seconds between runs of each sweep."""

    poll_due: float = 5.0
    fail_overdue: float = 30.0
    reap_holds: float = 60.0
    expire_grants: float = 60.0
    cleanup: float = 3600.0


def periodic_jobs(jobs: JobService, wallet: Wallet, intervals: Intervals | None = None, *,
                  extra: Sequence[Periodic] = ()) -> list[Periodic]:
    """The sweeps every instance runs: poll quiet jobs, fail overdue ones, release lapsed holds,
    expire lapsed grants, and clean up old jobs and their files; then `extra`."""
    every = intervals or Intervals()
    return [
        Periodic("poll_due", every.poll_due, lambda: sweeps.poll_due(jobs)),
        Periodic("fail_overdue", every.fail_overdue, lambda: sweeps.fail_overdue(jobs)),
        Periodic("reap_holds", every.reap_holds, wallet.reap),
        Periodic("expire_grants", every.expire_grants, wallet.expire),
        Periodic("cleanup", every.cleanup, lambda: sweeps.cleanup(jobs)),
        *extra,
    ]


def membership_jobs(memberships: Memberships, every: float = 60.0) -> list[Periodic]:
    """End memberships at their time and send renewal reminders (each once, across replicas:
    `memberships` claims every row with a conditional update)."""
    return [Periodic("end_memberships", every, memberships.end_due),
            Periodic("remind_renewals", every, memberships.remind_due)]


class Scheduler:
    """Runs `Periodic` jobs while entered; an async context manager."""

    def __init__(self, periodic: Sequence[Periodic], *, grace: float = 10.0,
                 first_delay: float = 0.0) -> None:
        names = [p.name for p in periodic]
        if len(set(names)) != len(names):
            raise ValueError(f"periodic job names must be unique: {names}")
        if any(p.seconds <= 0 for p in periodic):
            raise ValueError("periodic job intervals must be positive")
        if first_delay < 0:
            raise ValueError("the first run's delay must not be negative")
        self._periodic = {p.name: p for p in periodic}
        self._grace = grace
        self._first_delay = first_delay
        self._running: dict[asyncio.Task[object], str] = {}
        self._scheduler: AsyncIOScheduler | None = None
        self.runs: dict[str, int] = dict.fromkeys(self._periodic, 0)  # finished runs, for tests
        self.failures: dict[str, int] = dict.fromkeys(self._periodic, 0)

    def __repr__(self) -> str:
        return f"Scheduler(jobs={list(self._periodic)}, running={self.running})"

    @property
    def names(self) -> list[str]:
        return list(self._periodic)

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    async def run_now(self, name: str) -> bool:
        """Runs one job once, guarded like a scheduled run; True if it raised nothing."""
        return await self._guarded(self._periodic[name])

    async def _guarded(self, job: Periodic) -> bool:
        task = asyncio.current_task()
        if task is not None:
            self._running[task] = job.name
        started = time.perf_counter()
        try:
            result = await job.run()
        except Exception:
            self.failures[job.name] += 1
            log.exception("periodic job %s failed after %.2fs; it runs again at its next tick",
                          job.name, time.perf_counter() - started)
            return False
        finally:
            if task is not None:
                self._running.pop(task, None)
        self.runs[job.name] += 1
        if any(result) if isinstance(result, tuple) else result:  # something changed
            log.info("periodic job %s: %s in %.2fs", job.name, result,
                     time.perf_counter() - started)
        return True

    async def start(self) -> None:
        if self._scheduler is not None:
            raise RuntimeError("the scheduler is already running")
        # Imported here, at the start: about 0.1 s of CPU that a console user would otherwise
        # wait for before the first menu (bench/startup.py).
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        # APScheduler logs two INFO lines per run; the wrapper logs what matters.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        scheduler = AsyncIOScheduler(timezone=UTC)
        first = datetime.now(UTC) + timedelta(seconds=self._first_delay)
        for job in self._periodic.values():
            scheduler.add_job(self._guarded, IntervalTrigger(seconds=job.seconds, timezone=UTC),
                              args=(job,), id=job.name, name=job.name, max_instances=1,
                              coalesce=True, misfire_grace_time=None, next_run_time=first)
        scheduler.start()
        self._scheduler = scheduler
        log.info("scheduler started: %s", ", ".join(
            f"{p.name} every {p.seconds:g}s" for p in self._periodic.values()))

    async def stop(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is None:
            return
        scheduler.pause()  # no new runs from here on
        running = dict(self._running)
        if running:
            _, late = await asyncio.wait(running, timeout=self._grace)
            for task in late:
                log.warning("periodic job %s still running after %.1fs: cancelled",
                            running[task], self._grace)
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # AsyncIOScheduler.shutdown runs on the loop's next turn
        log.info("scheduler stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()
