"""The `chat_turns` lease rows (a table of handlers), as `bot.ordering.Turns` needs them: take a
user's turn with one conditional statement, give it back. See `bot/ordering.py` for why a lease
row and not an advisory lock."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import write

from .tables import chat_turns

__all__ = ["release_turn", "release_turn_in", "take_turn", "take_turn_in"]


def take_turn_in(conn: Connection, channel: str, address: str, holder: str, *,
                 now: datetime, until: datetime) -> bool:
    """`take_turn` inside the caller's transaction (WeChat takes it with its exactly-once row);
    raises IntegrityError when another instance made the row at the same moment."""
    row = and_(chat_turns.c.channel == channel, chat_turns.c.address == address)
    free = or_(chat_turns.c.until.is_(None), chat_turns.c.until < now)
    values = {"holder": holder, "until": until}
    taken = conn.execute(update(chat_turns).where(row, free).values(**values))
    if taken.rowcount == 1:
        return True
    if conn.execute(chat_turns.select().where(row)).first() is not None:
        return False
    conn.execute(insert(chat_turns).values(channel=channel, address=address, **values))
    return True


def release_turn_in(conn: Connection, channel: str, address: str, holder: str) -> None:
    """`release_turn` inside the caller's transaction."""
    conn.execute(update(chat_turns)
                 .where(chat_turns.c.channel == channel, chat_turns.c.address == address,
                        chat_turns.c.holder == holder)
                 .values(holder=None, until=None))


async def take_turn(engine: AsyncEngine, channel: str, address: str, holder: str, *,
                    now: datetime, until: datetime) -> bool:
    """Takes the turn of (channel, address) for `holder` until `until` when it is free or its
    lease ran out; False when another holder has it."""
    try:
        return await write(engine, lambda conn: take_turn_in(conn, channel, address, holder,
                                                             now=now, until=until))
    except IntegrityError:  # another instance inserted the row first: it holds the turn
        return False


async def release_turn(engine: AsyncEngine, channel: str, address: str, holder: str) -> None:
    """Gives the turn back (only `holder`'s own lease)."""
    await write(engine, lambda conn: release_turn_in(conn, channel, address, holder))
