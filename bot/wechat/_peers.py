"""Per-openid delivery state: WeChat's 48 h window and its customer-service quota, budgeted.

WeChat lets an account send customer-service messages to a user for 48 h after the user's last
message, about `quota` (5) of them per user message (45015 past the window, 45047 past the
quota). So each send first takes a slot here (`take_slot`, one short write transaction):

- the window: with a known last message older than 48 h the answer is "window" (hold);
  an openid we never saw write is let through, and WeChat's own answer decides;
- the quota: `cs_sent` counts the slots taken since the user last wrote. Progress (status
  milestones) may only use the slots above `reserve`, so results and money messages always find
  one: a progress message refused for budget is dropped (the next milestone or the result says
  more), an essential one refused is held until the user writes;
- `held`: after WeChat said 45015, 45047 or 48001 nothing more is tried until the user writes.

`user_wrote` (the inbound side calls it for every message) opens the window again, resets the
count, clears the hold and releases the user's held outbox rows to the dispatcher. `give_back`
returns a slot when a send failed before WeChat counted it (a network error, a refused upload).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot._dispatch_sql import release_held
from core.db import read, write

from ._tables import wechat_peers

__all__ = ["WINDOW", "Peer", "give_back", "hold", "peer", "take_slot", "user_wrote"]

WINDOW = timedelta(hours=48)
Refusal = Literal["window", "quota", "budget", "passive"]
_HELD: dict[str, Refusal] = {"window": "window", "quota": "quota", "passive": "passive"}


@dataclass(frozen=True, slots=True)
class Peer:
    openid: str
    last_inbound_at: datetime | None
    cs_sent: int
    held: str | None


async def peer(engine: AsyncEngine, openid: str) -> Peer | None:
    async with read(engine) as conn:
        row = (await conn.execute(select(
            wechat_peers.c.last_inbound_at, wechat_peers.c.cs_sent, wechat_peers.c.held)
            .where(wechat_peers.c.openid == openid))).first()
    return None if row is None else Peer(openid, row[0], row[1], row[2])


async def _upsert(engine: AsyncEngine, openid: str, now: datetime, **values: Any) -> None:
    """Sets `values` on the openid's row, making it when missing (racing makers: one wins)."""
    for _ in range(2):
        try:
            async with write(engine) as conn:
                done = await conn.execute(update(wechat_peers)
                                          .where(wechat_peers.c.openid == openid)
                                          .values(updated_at=now, **values))
                if done.rowcount == 0:
                    await conn.execute(insert(wechat_peers).values(
                        openid=openid, updated_at=now, **values))
            return
        except IntegrityError:
            continue  # another replica made the row first: update it
    raise RuntimeError(f"wechat_peers row for {openid!r} could not be written")


async def user_wrote(engine: AsyncEngine, openid: str, *, now: datetime,
                     notify: Callable[[], None] | None = None) -> int:
    """The user sent a message: the window opens for 48 h, the quota starts again, and the
    outbox rows held for them are due now (`notify` wakes this process's dispatcher; others
    find them on their next pass). Returns how many rows were released."""
    await _upsert(engine, openid, now, last_inbound_at=now, cs_sent=0, held=None)
    released = await release_held(engine, channel="wechat", address=openid, now=now)
    if released and notify is not None:
        notify()
    return released


async def hold(engine: AsyncEngine, openid: str, reason: str, *, now: datetime) -> None:
    """Nothing more goes to this openid until the user writes (45015, 45047, 48001)."""
    await _upsert(engine, openid, now, held=reason)


async def _locked(conn: AsyncConnection, openid: str) -> Any:
    return (await conn.execute(
        select(wechat_peers.c.last_inbound_at, wechat_peers.c.cs_sent, wechat_peers.c.held)
        .where(wechat_peers.c.openid == openid).with_for_update())).first()


async def take_slot(engine: AsyncEngine, openid: str, *, essential: bool, quota: int,
                    reserve: int = 2, now: datetime) -> Refusal | None:
    """Takes one customer-service slot: None when the message may go now, else why not."""
    limit = quota if essential else max(0, quota - reserve)
    for _ in range(2):
        try:
            async with write(engine) as conn:
                row = await _locked(conn, openid)
                if row is None:
                    if limit < 1:
                        return "budget"
                    await conn.execute(insert(wechat_peers).values(
                        openid=openid, cs_sent=1, updated_at=now))
                    return None
                last, sent, held = row
                if held is not None:
                    return _HELD.get(held, "quota")
                if last is not None and now - last > WINDOW:
                    return "window"
                if sent >= limit:
                    return "budget" if not essential else "quota"
                await conn.execute(update(wechat_peers).where(wechat_peers.c.openid == openid)
                                   .values(cs_sent=sent + 1, updated_at=now))
                return None
        except IntegrityError:
            continue
    raise RuntimeError(f"wechat_peers row for {openid!r} could not be written")


async def give_back(engine: AsyncEngine, openid: str, *, now: datetime) -> None:
    """Returns a slot WeChat did not count (the send failed before it got there)."""
    async with write(engine) as conn:
        await conn.execute(update(wechat_peers)
                           .where(wechat_peers.c.openid == openid, wechat_peers.c.cs_sent > 0)
                           .values(cs_sent=wechat_peers.c.cs_sent - 1, updated_at=now))
