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

__all__ = ["release_turn", "take_turn"]


async def take_turn(engine: AsyncEngine, channel: str, address: str, holder: str, *,
                    now: datetime, until: datetime) -> bool:
    """Takes the turn of (channel, address) for `holder` until `until` when it is free or its
    lease ran out; False when another holder has it."""
    row = and_(chat_turns.c.channel == channel, chat_turns.c.address == address)
    free = or_(chat_turns.c.until.is_(None), chat_turns.c.until < now)
    values = {"holder": holder, "until": until}

    def op(conn: Connection) -> bool:
        taken = conn.execute(update(chat_turns).where(row, free).values(**values))
        if taken.rowcount == 1:
            return True
        if conn.execute(chat_turns.select().where(row)).first() is not None:
            return False
        conn.execute(insert(chat_turns).values(channel=channel, address=address, **values))
        return True

    try:
        return await write(engine, op)
    except IntegrityError:  # another instance inserted the row first: it holds the turn
        return False


async def release_turn(engine: AsyncEngine, channel: str, address: str, holder: str) -> None:
    """Gives the turn back (only `holder`'s own lease)."""
    def op(conn: Connection) -> None:
        conn.execute(update(chat_turns)
                     .where(chat_turns.c.channel == channel, chat_turns.c.address == address,
                            chat_turns.c.holder == holder)
                     .values(holder=None, until=None))

    await write(engine, op)
