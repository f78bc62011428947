"""Handing a verified callback to the job service, in the background.

The route answers the provider at once (kie waits 15 s, evolink 10 s, and the job service may
then download a large file), so the work runs in tasks the route does not await. They are kept
in a set (the event loop holds only weak references to tasks) and their errors are logged with
the job id, never raised to anyone.

- One job at a time: callbacks for a job wait behind the one being handled and run next, in
  arrival order, so the redeliveries kie and evolink send neither race each other nor pile up.
  An identical callback already waiting is not queued twice, and at most `max_pending`
  distinct ones wait per job; one dropped costs only time, as the poller asks the provider
  about every unfinished job anyway.
- A bounded number of jobs at once (`concurrency` workers): a burst of callbacks cannot open
  hundreds of downloads, or queue hundreds of tasks for the database pool (whose checkout
  times out) or starve the routes of the event loop. Workers start on demand and stop when
  nothing is left, so an idle app runs no task.
- A bounded backlog (`max_backlog` jobs waiting or running): beyond it `submit` refuses, the
  route answers 503 with Retry-After and nothing changes; the provider retries later.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Protocol

from generation import JobNotFound
from providers import CallbackHint

__all__ = ["CONCURRENCY", "MAX_BACKLOG", "MAX_PENDING", "CallbackSink", "Handover"]

log = logging.getLogger("webhooks.handover")

CONCURRENCY = 32
MAX_BACKLOG = 10_000
MAX_PENDING = 8
_Key = tuple[str, int]


class CallbackSink(Protocol):
    """What the handover calls: `JobService.on_callback`."""

    async def on_callback(self, provider: str, job_id: int, hint: CallbackHint) -> None: ...


class Handover:
    """Runs `sink.on_callback` in the background: one callback at a time per job, at most
    `concurrency` jobs at once, at most `max_backlog` jobs waiting or running."""

    def __init__(self, sink: CallbackSink, *, concurrency: int = CONCURRENCY,
                 max_backlog: int = MAX_BACKLOG, max_pending: int = MAX_PENDING) -> None:
        self._sink = sink
        self._concurrency = concurrency
        self._max_backlog = max_backlog
        self._max_pending = max_pending
        self._waiting: dict[_Key, list[CallbackHint]] = {}  # a job is here while queued/running
        self._ready: deque[_Key] = deque()  # jobs with callbacks waiting and no worker on them
        self._workers: set[asyncio.Task[None]] = set()
        # Counted by hand: a worker that has returned stays in `_workers` until its done
        # callback runs, and must not keep a new job from getting a worker meanwhile.
        self._active = 0

    @property
    def in_flight(self) -> int:
        """Jobs with callbacks being handled or waiting to be."""
        return len(self._waiting)

    def submit(self, provider: str, job_id: int, hint: CallbackHint) -> bool:
        """Schedules the callback; False (nothing scheduled) when the backlog is full."""
        key = (provider, job_id)
        waiting = self._waiting.get(key)
        if waiting is None:
            if len(self._waiting) >= self._max_backlog:
                log.warning("job %s: %d jobs already have callbacks waiting; this %s callback "
                            "is refused", job_id, len(self._waiting), provider)
                return False
            self._waiting[key] = [hint]
            self._ready.append(key)
            if self._active < self._concurrency:
                self._active += 1
                worker = asyncio.create_task(self._work(), name="callback handover")
                self._workers.add(worker)
                worker.add_done_callback(self._workers.discard)
        elif hint not in waiting:  # an identical one waiting is a redelivery: nothing to add
            if len(waiting) < self._max_pending:
                waiting.append(hint)
            else:
                log.warning("job %s: %d %s callbacks already waiting; this one is dropped",
                            job_id, len(waiting), provider)
        return True

    async def _work(self) -> None:
        # No await between finding `_ready` empty and returning, nor between a job's last
        # callback and its removal: a callback that arrives meanwhile either joins its job's
        # list in time or finds no entry and queues the job afresh (starting a worker).
        try:
            while self._ready:
                key = self._ready.popleft()
                waiting = self._waiting[key]
                try:
                    while waiting:
                        await self._handle(key, waiting.pop(0))
                finally:
                    del self._waiting[key]
                    if waiting:  # cancelled
                        log.warning("job %s: stopped with %d %s callbacks unhandled; the "
                                    "poller will catch up", key[1], len(waiting), key[0])
        finally:
            self._active -= 1

    async def _handle(self, key: _Key, hint: CallbackHint) -> None:
        provider, job_id = key
        try:
            await self._sink.on_callback(provider, job_id, hint)
        except JobNotFound:
            log.warning("job %s: a %s callback for a job that no longer exists", job_id,
                        provider)
        except Exception:
            log.exception("job %s: handling a %s callback (task %s) failed", job_id, provider,
                          hint.task_id)

    async def wait_idle(self) -> None:
        """Waits until no callback is waiting or running (callers bound it with a timeout)."""
        while self._workers:
            await asyncio.wait(set(self._workers))

    async def close(self, grace: float) -> None:
        """Gives the handovers up to `grace` seconds to finish, then cancels the rest."""
        if self._workers:
            _, late = await asyncio.wait(set(self._workers), timeout=grace)
            if late:
                log.warning("callback handovers still running after %.1f s: cancelled (the "
                            "deadline and poll sweeps finish their jobs)", grace)
                for worker in late:
                    worker.cancel()
                await asyncio.wait(late, timeout=1.0)
        if self._waiting:
            log.warning("%d jobs' callbacks left unhandled at shutdown; the poller will catch "
                        "up", len(self._waiting))
            self._waiting.clear()
            self._ready.clear()
