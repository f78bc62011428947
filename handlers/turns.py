"""The `chat_turns` lease rows (a table of handlers), as `bot.ordering.Turns` needs them: take a
user's turn with one conditional statement, give it back. See `bot/ordering.py` for why a lease
row and not an advisory lock."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, insert, null, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import write
from core.prepared import Prepared

from .tables import chat_turns

__all__ = ["release_turn", "release_turn_in", "take_turn", "take_turn_in"]

# Prepared once (`core.prepared`): a statement built per call costs more Python than running
# it on SQLite, and Core's execution more than the driver's.
_ROW = and_(chat_turns.c.channel == bindparam("t_channel"),
            chat_turns.c.address == bindparam("t_address"))
_UNTIL = bindparam("t_until", type_=chat_turns.c.until.type)
_TAKE = Prepared(  # free, run out, or already this holder's (a WeChat message taken over)
    update(chat_turns)
    .where(_ROW, or_(chat_turns.c.until.is_(None),
                     chat_turns.c.until < bindparam("t_now", type_=chat_turns.c.until.type),
                     chat_turns.c.holder == bindparam("t_holder")))
    .values(holder=bindparam("t_holder"), until=_UNTIL))
_EXISTS = Prepared(select(chat_turns.c.channel).where(_ROW))
_MAKE = Prepared(insert(chat_turns).values(channel=bindparam("t_channel"),
                                           address=bindparam("t_address"),
                                           holder=bindparam("t_holder"), until=_UNTIL))
_RELEASE = Prepared(update(chat_turns)
                    .where(_ROW, chat_turns.c.holder == bindparam("t_holder"))
                    .values(holder=null(), until=null()))


def take_turn_in(conn: Connection, channel: str, address: str, holder: str, *,
                 now: datetime, until: datetime) -> bool:
    """`take_turn` inside the caller's transaction (WeChat takes it with its exactly-once row);
    raises IntegrityError when another instance made the row at the same moment. A holder
    that holds it already takes it again (for a fresh `until`)."""
    if _TAKE.count(conn, t_channel=channel, t_address=address, t_holder=holder, t_now=now,
                   t_until=until) == 1:
        return True
    if _EXISTS.first(conn, t_channel=channel, t_address=address) is not None:
        return False
    _MAKE.run(conn, t_channel=channel, t_address=address, t_holder=holder, t_until=until)
    return True


def release_turn_in(conn: Connection, channel: str, address: str, holder: str) -> None:
    """`release_turn` inside the caller's transaction."""
    _RELEASE.run(conn, t_channel=channel, t_address=address, t_holder=holder)


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
