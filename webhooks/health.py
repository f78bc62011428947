"""Liveness from a background probe, so `GET /healthz` never queues behind work.

A load balancer asks `/healthz` often and takes an instance out when it is slow to answer. If
the route itself ran `SELECT 1`, a burst of requests that holds every pooled connection would
make it wait, time out and answer 503 for a server that is working. Instead a small task runs
`SELECT 1` every `interval` seconds under its own `timeout` and records when it last
succeeded; `/healthz` answers from that time alone (200 while the last success is at most
`max_age` seconds old, 503 after), without touching the database. `/readyz` does the deep
check in the request itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import read

__all__ = ["HealthProbe", "round_trip"]

log = logging.getLogger("webhooks.health")


async def round_trip(engine: AsyncEngine, timeout: float) -> None:  # noqa: ASYNC109
    """One `SELECT 1` within `timeout` seconds; raises whatever stopped it."""
    # read: on SQLite a plain connection would BEGIN IMMEDIATE and queue for the write
    # lock behind every writer; a read transaction takes no lock.
    async with asyncio.timeout(timeout), read(engine) as conn:
        await conn.execute(text("SELECT 1"))


class HealthProbe:
    """Refreshes `last_ok` in the background while started; `healthy` reads it."""

    def __init__(self, engine: AsyncEngine, *, interval: float = 2.0, timeout: float = 5.0,
                 max_age: float = 15.0) -> None:
        if interval <= 0 or timeout <= 0 or max_age < interval:
            raise ValueError("interval and timeout must be positive, max_age >= interval")
        self.engine, self.interval, self.timeout, self.max_age = engine, interval, timeout, max_age
        self.last_ok: float | None = None  # time.monotonic() of the last successful probe
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._answered = asyncio.Event()  # set once the first probe has ended

    @property
    def healthy(self) -> bool:
        return self.last_ok is not None and time.monotonic() - self.last_ok <= self.max_age

    @property
    def age(self) -> float | None:
        return None if self.last_ok is None else time.monotonic() - self.last_ok

    async def probe(self) -> bool:
        """One round trip; True and `last_ok` refreshed if it succeeded."""
        try:
            await round_trip(self.engine, self.timeout)
        except Exception as exc:  # whatever the driver raises, the probe failed
            if not self._failing:  # once per outage, and the type only: messages carry URLs
                log.warning("health probe: database round trip failed: %s",
                            type(exc).__name__)
            self._failing = True
            return False
        if self._failing:
            log.info("health probe: database reachable again")
        self._failing = False
        self.last_ok = time.monotonic()
        return True

    async def start(self) -> None:
        """Starts probing; waits (at most a second) for the first answer, so a server that
        has just started answers /healthz from a real round trip."""
        self._task = asyncio.create_task(self._loop(), name="health-probe")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._answered.wait(), min(self.timeout, 1.0))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            await self.probe()
            self._answered.set()
            await asyncio.sleep(self.interval)
