"""Exactly once per WeChat message, across replicas: a unique key in `wechat_inbound`.

    seen = await claim(engine, key, openid, now=now)   # None: ours to handle
    if seen is None:
        ...handle...; await settle(engine, key, REPLIED, text)
    else:
        seen = await wait_settled(engine, key, deadline)  # another try is handling it

The first try to INSERT the key handles the message; any other try (WeChat's retry, on this
instance or another) reads the row and, while it still says `working`, polls it until the first
try settles it or its own time is up. A plain INSERT that fails on the primary key is the one
portable "claim" on SQLite and PostgreSQL alike, and it is its own transaction, so nothing else
is rolled back with it. Each function is one crossing to the driver (`core.db.write`/`read`):
on SQLite one thread hop instead of one per statement, which is most of a message's cost.

A try whose instance dies while `working` leaves the row so. A live first try leaves
`working` by the end of its window (it settles then, `deferred` when the answer is late), so a
row still `working` well past that (`created_at`, when the try now handling it claimed it, older
than the caller's `stale_before`) means its instance died: a later try takes it over
(`take_over`: a conditional UPDATE, so one try wins across replicas) and handles the message
again. What the dead try did before it died (a job started, credits spent) may then happen a
second time; the wallet's and the jobs' own keys keep money exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import UTCDateTime, read, write
from core.prepared import Prepared

from ._inbox_tables import wechat_inbound

__all__ = ["DEFERRED", "KEEP", "REPLIED", "SETTLE", "WORKING", "Seen", "claim", "peek", "purge",
           "settle", "take_over", "wait_settled"]

WORKING, REPLIED, DEFERRED = "working", "replied", "deferred"
KEEP = timedelta(hours=1)  # WeChat's tries span ~15 s; an hour leaves room for slow clocks
T = TypeVar("T")
POLL_SECONDS = (0.02, 0.05, 0.1, 0.2)  # a waiting try's polls: soon at first, then every 0.2 s
# Prepared (`core.prepared`): a message's statements are most of its cost.
_CLAIM = Prepared(insert(wechat_inbound).values(
    {c: bindparam(c) for c in ("key", "openid", "status", "created_at", "expires_at")}))
_PEEK = Prepared(select(wechat_inbound.c.status, wechat_inbound.c.reply,
                        wechat_inbound.c.created_at)
                 .where(wechat_inbound.c.key == bindparam("k")))
_TAKE_OVER = Prepared(
    update(wechat_inbound)
    .where(wechat_inbound.c.key == bindparam("k"), wechat_inbound.c.status == WORKING,
           wechat_inbound.c.created_at < bindparam("stale", type_=UTCDateTime()))
    .values(created_at=bindparam("now", type_=UTCDateTime())))
# Settles the first try's row (`k`, `new_status`, `new_reply`), once.
SETTLE = Prepared(update(wechat_inbound)
                  .where(wechat_inbound.c.key == bindparam("k"),
                         wechat_inbound.c.status == WORKING)
                  .values(status=bindparam("new_status"), reply=bindparam("new_reply")))


@dataclass(frozen=True, slots=True)
class Seen:
    """How another try left the message: still `working` (claimed at `claimed_at`), or
    settled with its reply."""

    status: str
    reply: str | None
    claimed_at: datetime | None = field(default=None, compare=False)


async def claim(engine: AsyncEngine, key: str, openid: str, *, now: datetime,
                keep: timedelta = KEEP, also: Callable[[Connection], bool] | None = None,
                ) -> tuple[Seen | None, bool]:
    """(None, …) when this try is the first (it must handle the message), else (the row as
    is, False). `also` runs in the same transaction when the claim succeeds (taking the
    user's turn); its result is the second item."""
    row = {"key": key, "openid": openid, "status": WORKING, "created_at": now,
           "expires_at": now + keep}

    def op(conn: Connection) -> bool:
        _CLAIM.run(conn, **row)
        return also(conn) if also is not None else False

    try:
        return None, await write(engine, op, batch=True)
    except IntegrityError:
        seen = await peek(engine, key)
        if seen is not None:
            return seen, False
        if also is None:  # the row expired and went meanwhile: nobody can be acting on it
            return Seen(WORKING, None), False
        # `also` clashed (another instance made the user's turn row at that moment): claim
        # without it, and the turn is taken the usual way.
        return await claim(engine, key, openid, now=now, keep=keep)


async def peek(engine: AsyncEngine, key: str) -> Seen | None:
    row = await read(engine, lambda conn: _PEEK.first(conn, k=key))
    return None if row is None else Seen(row.status, row.reply, row.created_at)


async def take_over(engine: AsyncEngine, key: str, *, now: datetime, stale_before: datetime,
                    also: Callable[[Connection], bool] | None = None) -> tuple[bool, bool]:
    """Claims the message `key` whose try is taken for dead (still `working`, claimed before
    `stale_before`): (True, `also`'s result) when this try now handles it, (False, False)
    when it was settled or taken over meanwhile. `also` runs in the same transaction."""
    def op(conn: Connection) -> tuple[bool, bool]:
        if _TAKE_OVER.count(conn, k=key, stale=stale_before, now=now) != 1:
            return False, False
        return True, also(conn) if also is not None else False

    try:
        return await write(engine, op)
    except IntegrityError:  # `also` clashed: take it over without (the turn the usual way)
        return await take_over(engine, key, now=now, stale_before=stale_before)


async def settle(engine: AsyncEngine, key: str, status: str, reply: str | None, *,
                 also: Callable[[Connection], T] | None = None) -> T | None:
    """Records the answer the first try gave, for the tries after it; `also` runs in the same
    transaction (giving the user's turn back), and its result is returned."""
    def op(conn: Connection) -> T | None:
        SETTLE.run(conn, k=key, new_status=status, new_reply=reply)
        return also(conn) if also is not None else None

    return await write(engine, op, batch=True)


async def wait_settled(engine: AsyncEngine, key: str, deadline: float,
                       nudge: asyncio.Event | None = None,
                       stale: Callable[[Seen], bool] | None = None) -> Seen:
    """The row once settled, or once `stale(row)` says its try died, or as it is at
    `deadline` (the event loop's clock). `nudge`, set when this instance settles the key
    itself, ends a wait early without a poll."""
    loop = asyncio.get_running_loop()
    step = 0
    while True:
        seen = await peek(engine, key) or Seen(WORKING, None)
        left = deadline - loop.time()
        if seen.status != WORKING or left <= 0 or (stale is not None and stale(seen)):
            return seen
        pause = min(POLL_SECONDS[min(step, len(POLL_SECONDS) - 1)], left)
        step += 1
        if nudge is None:
            await asyncio.sleep(pause)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(nudge.wait(), pause)


async def purge(engine: AsyncEngine, now: datetime) -> int:
    """Deletes the rows past their expiry; returns how many."""
    query = delete(wechat_inbound).where(wechat_inbound.c.expires_at < now)
    result = await write(engine, lambda conn: conn.execute(query))
    return int(result.rowcount or 0)
