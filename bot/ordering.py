"""Per-user ordering, for every channel: one user's messages one at a time, in arrival order;
different users' in parallel; within one process and across instances.

    turns = Turns(engine)                       # lease=False: in-process order only
    async with turns.hold("wechat", openid):    # the user's turn: handle and answer
        ...

Two layers, decided so:

1. In-process, `KeyedLock`: a FIFO lock per key (asyncio.Lock wakes its waiters in the order
   they came), forgotten once nobody holds or waits for it. Telegram's update processor holds
   the same lock (`bot._telegram_ptb.PerUserProcessor`).
2. Across instances, a lease row in `chat_turns` per (channel, address), taken with one
   conditional statement: `UPDATE … SET holder, until WHERE (until IS NULL OR until < now)`, or
   an INSERT when the row does not exist yet (a unique-key clash means another instance just
   took it). Both are portable SQL, alike on SQLite and PostgreSQL, and need no connection held
   for the turn (a PostgreSQL advisory lock would hold one pooled connection per busy user and
   does not exist on SQLite). A waiting instance retries with backoff (10 ms doubling to
   250 ms, with jitter) for at most `max_wait` seconds; then it goes ahead anyway, with a
   warning: the conversation state is still safe (versioned saves, `handlers.state`), only the
   order of two messages is then not guaranteed. A lease lasts `lease` seconds, so an instance
   that crashed mid-turn blocks that user for at most that long; the holder releases it at
   the end of the turn (a release that fails is left to expire).

The lease costs two writes per message, so a channel that already delivers one user's updates
to one consumer in order (Telegram polling: one getUpdates reader) runs without it.

`attempt` is the turn for a caller with better things to do than wait: it takes the turn only
if it is free now (nobody holds or waits for the in-process lock, and one try of the lease
succeeds), else it says so at once, holding nothing. The outbox dispatcher uses it (a notice
whose numbered menu must not interleave with an answer, `bot.dispatcher`): a pass never waits
for one user, and the row is tried again on the next pass. It waits behind nobody in the
process either (it never queues on the in-process lock), so it can share the `Turns` of an
answer path that takes the lease before the in-process lock (WeChat's inbox takes it with the
message's claim, then its answer takes the lock): a caller that held the lock while waiting for
that lease would keep the answer from the lock until `max_wait`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import utcnow
from handlers.turns import release_turn, release_turn_in, take_turn, take_turn_in

__all__ = ["KeyedLock", "Turns"]

log = logging.getLogger("bot.ordering")


class KeyedLock:
    """One FIFO lock per key; a key's lock lives while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, list[int]]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[key]

    @asynccontextmanager
    async def hold_if_free(self, key: Hashable) -> AsyncIterator[bool]:
        """The key's lock when nobody holds or waits for it: yields True holding it; else
        False at once, holding nothing (it never jumps the queue)."""
        if key in self._locks:
            yield False
            return
        async with self.hold(key):  # free: taken without waiting
            yield True


class Turns:
    """A user's turn: the in-process lock, then (with `lease`) the lease across instances."""

    def __init__(self, engine: AsyncEngine | None, *, lease: bool = True,
                 lease_seconds: float = 120.0, max_wait: float = 30.0,
                 clock: Callable[[], datetime] = utcnow) -> None:
        if lease and engine is None:
            raise ValueError("the turn lease needs the database engine")
        self.engine, self.lease, self.clock = engine, lease, clock
        self.lease_for = timedelta(seconds=lease_seconds)
        self.max_wait = max_wait
        self.local = KeyedLock()
        self._rng = random.Random()  # noqa: S311 (jitter, not a secret)

    @asynccontextmanager
    async def hold(self, channel: str, address: str, *,
                   held: str | None = None) -> AsyncIterator[None]:
        """The user's turn. `held`: the caller already took the lease under that holder id
        in a transaction of its own (`take`) and gives it back itself (`give`), saving two
        writes per message (WeChat does, with its exactly-once row). Holding the lease, it
        has the turn and does not queue on the in-process lock: a later message of the user,
        in that lock first, waits there for this very lease, and queued behind it this one
        would wait until that one gave up (`max_wait`)."""
        if held is not None:
            yield
            return
        async with self.local.hold((channel, address)):
            if not self.lease:
                yield
                return
            holder = secrets.token_hex(8)
            await self._acquire(channel, address, holder)
            try:
                yield
            finally:
                await self._give_back(channel, address, holder)

    @asynccontextmanager
    async def attempt(self, channel: str, address: str) -> AsyncIterator[bool]:
        """The user's turn if it is free now (see the module doc): yields True holding it
        (given back at the end), or False at once, holding nothing, while it is taken here
        or on another instance."""
        ours = False
        async with self.local.hold_if_free((channel, address)) as free:
            if free:
                holder = secrets.token_hex(8)
                ours = not self.lease or await self._try(channel, address, holder)
                if ours:
                    try:
                        yield True
                    finally:
                        if self.lease:
                            await self._give_back(channel, address, holder)
        if not ours:  # the in-process lock is given back before the caller goes on
            yield False

    async def _give_back(self, channel: str, address: str, holder: str) -> None:
        try:
            await self._release(channel, address, holder)
        except Exception:  # the database away: the lease runs out by itself
            log.warning("releasing the turn of %s user failed; it will expire", channel,
                        exc_info=True)

    async def _acquire(self, channel: str, address: str, holder: str) -> None:
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + self.max_wait, 0.01
        while not await self._try(channel, address, holder):
            if loop.time() >= deadline:
                log.warning("%s user's turn still held elsewhere after %.0f s; going ahead",
                            channel, self.max_wait)
                return
            await asyncio.sleep(delay * self._rng.uniform(0.5, 1.0))
            delay = min(delay * 2, 0.25)

    def take(self, conn: Connection, channel: str, address: str, holder: str) -> bool:
        """Takes the lease inside the caller's transaction; False while another holds it.
        Raises IntegrityError when another instance made the user's row at the same time."""
        now = self.clock()
        return take_turn_in(conn, channel, address, holder, now=now,
                            until=now + self.lease_for)

    @staticmethod
    def give(conn: Connection, channel: str, address: str, holder: str) -> None:
        """Gives the lease back inside the caller's transaction."""
        release_turn_in(conn, channel, address, holder)

    async def _try(self, channel: str, address: str, holder: str) -> bool:
        assert self.engine is not None
        now = self.clock()
        return await take_turn(self.engine, channel, address, holder, now=now,
                               until=now + self.lease_for)

    async def _release(self, channel: str, address: str, holder: str) -> None:
        assert self.engine is not None
        await release_turn(self.engine, channel, address, holder)
