"""How many first tries of messages an instance works on at once, admitted in arrival order.

    admission = Admission(8)
    async with admission.slot() as slot:    # waits its turn, first come first served
        ...claim...
        slot.release()                      # early: a retry, or an answer found slow

Why: 100 users writing at once each make a few database round trips per message. Started all
together, every step of every message queues behind every other's on the event loop (and on
PostgreSQL on the connection pool), so a message's time is the sum of several waits of random
length: on PostgreSQL p50 0.38 s but p99 1.2 s (bench/wechat.py messages, 100 users). With a
few admitted at a time and the rest waiting in a FIFO queue, each message waits once, in
order: p99 0.41 s, and more messages per second (less switching between them).

A slot is only for the quick part of a message. A retry gives it back before it waits for the
first try's answer, and a first try whose answer is not ready `FAST_SECONDS` after it started
gives it back and waits for its window without one: slow answers (a provider, a download)
never hold up other users' quick ones.
"""

from __future__ import annotations

import asyncio

__all__ = ["ADMIT", "FAST_SECONDS", "Admission", "Slot"]

ADMIT = 8  # measured best of 8, 16 and unbounded on both databases (bench/README.md)
FAST_SECONDS = 0.2  # an answer not ready by then gives its slot up


class Slot:
    """One admitted message's place; `release` gives it back (once)."""

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore: asyncio.Semaphore | None = semaphore

    def release(self) -> None:
        if self._semaphore is not None:
            semaphore, self._semaphore = self._semaphore, None
            semaphore.release()


class Admission:
    """At most `size` slots held at once; waiters are admitted in the order they came."""

    def __init__(self, size: int = ADMIT) -> None:
        if size < 1:
            raise ValueError("admission needs at least one slot")
        self._semaphore = asyncio.Semaphore(size)  # FIFO: waiters wake in arrival order

    def slot(self) -> _Admitted:
        """`async with admission.slot() as slot:` waits for a slot; it is given back at the
        end of the block (or before, `slot.release()`)."""
        return _Admitted(self._semaphore)


class _Admitted:
    """`Admission.slot()`'s context: a class, not a generator (one per message)."""

    __slots__ = ("_semaphore", "_slot")

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore = semaphore
        self._slot: Slot | None = None

    async def __aenter__(self) -> Slot:
        await self._semaphore.acquire()
        self._slot = Slot(self._semaphore)
        return self._slot

    async def __aexit__(self, *exc: object) -> None:
        assert self._slot is not None
        self._slot.release()
