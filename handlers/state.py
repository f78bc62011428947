"""Where a user is in a conversation: the `chats` row, read and written with optimistic locking.

Nothing is kept in memory between updates, so any instance can take a user's next update and a
restart continues where the user was. Every change bumps `version` through a conditional
`UPDATE … WHERE version = :seen`; the loser of a race (two instances handling the same user's
updates at once) sees no row changed, re-reads and runs its update again (`Handlers.handle`).
An update that changes no state only touches `last_seen_at` (and clears `blocked_at`: a user who
writes has unblocked the bot), without bumping the version, and only when there is something to
record: `last_seen_at` is coarse, written when it moved by `SEEN_STEP` (a minute) or more, or
when the row says blocked. A burst of commands (/balance, /help, …) is then a read and no write.

Each function is one crossing to the driver (`core.db.read` / `write`): on SQLite one
hop to a worker thread instead of one per statement.

The draft is a typed, frozen `Draft`, stored as JSON; a stored draft that does not parse (an older
shape, a hand edit) is treated as empty rather than failing the user's every message.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import read, upsert, write

from .tables import chats

__all__ = ["SEEN_STEP", "Chat", "Draft", "Step", "create", "load", "needs_touch", "record",
           "save", "touch"]

log = logging.getLogger("handlers.state")

SEEN_STEP = timedelta(minutes=1)  # how far last_seen_at may lag behind the user's last update
_LOAD = select(chats).where(chats.c.user_id == bindparam("uid"))
_TOUCH = (update(chats).where(chats.c.user_id == bindparam("uid"))
          .values(last_seen_at=bindparam("now", type_=chats.c.last_seen_at.type),
                  blocked_at=None))


class Step(enum.StrEnum):
    IDLE = "idle"
    KIND = "kind"
    PHOTO = "photo"  # image-to-video: the one photo
    PERSON = "person"  # try-on: the person photo
    CLOTHES = "clothes"  # try-on: 1..N clothing photos, then Done
    PROMPT = "prompt"
    MODEL = "model"
    DURATION = "duration"
    ASPECT = "aspect"
    CONFIRM = "confirm"
    REDEEM = "redeem"  # /redeem without a code: the next text is the code


@dataclass(frozen=True, slots=True, kw_only=True)
class Draft:
    """What the user has chosen so far. Try-on: `photos[0]` is the person, the rest clothes."""

    kind: str | None = None
    photos: tuple[str, ...] = ()  # storage keys
    clothes_done: bool = False
    album: str | None = None  # the album the last photos came in (try-on clothes)
    prompt: str | None = None
    model: str | None = None
    duration: int | None = None
    aspect: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["photos"] = list(self.photos)
        return {k: v for k, v in data.items() if v not in (None, False, [])}

    @classmethod
    def from_json(cls, data: Any) -> Draft:
        if not data or not isinstance(data, dict):  # the main menu's: nothing chosen
            return _EMPTY
        try:
            return cls(kind=_opt(data.get("kind"), str),
                       photos=tuple(str(p) for p in data.get("photos", ())),
                       clothes_done=bool(data.get("clothes_done", False)),
                       album=_opt(data.get("album"), str), prompt=_opt(data.get("prompt"), str),
                       model=_opt(data.get("model"), str),
                       duration=_opt(data.get("duration"), int),
                       aspect=_opt(data.get("aspect"), str))
        except (TypeError, ValueError):
            log.warning("unreadable draft dropped: %.200r", data)
            return cls()


_EMPTY = Draft()  # frozen: one for every chat with nothing chosen


def _opt(value: Any, kind: type[Any]) -> Any:
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"expected {kind.__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Chat:
    user_id: int
    step: Step
    draft: Draft = field(default_factory=Draft)
    version: int = 0
    updated_at: datetime | None = None
    last_seen_at: datetime | None = None
    blocked: bool = False  # the dispatcher found the bot blocked (blocked_at set)


def record(user_id: int, step: str, draft: Any, version: int, updated_at: datetime | None,
           last_seen_at: datetime | None = None, blocked: bool = False) -> Chat:
    """A `Chat` from a `chats` row's columns (an unknown step reads as the main menu)."""
    try:
        known, parsed = Step(step), Draft.from_json(draft)
    except ValueError:
        known, parsed = Step.IDLE, Draft()
    return Chat(user_id, known, parsed, version, updated_at, last_seen_at, blocked)


def needs_touch(chat: Chat, now: datetime) -> bool:
    """Whether an update that changes nothing must still write: to clear `blocked_at`, or
    because `last_seen_at` lags `SEEN_STEP` or more behind `now`."""
    return chat.blocked or chat.last_seen_at is None or now - chat.last_seen_at >= SEEN_STEP


async def load(engine: AsyncEngine, user_id: int) -> Chat | None:
    row = await read(engine, lambda conn: conn.execute(_LOAD, {"uid": user_id}).first())
    return None if row is None else record(row.user_id, row.step, row.draft, row.version,
                                           row.updated_at, row.last_seen_at,
                                           row.blocked_at is not None)


async def create(engine: AsyncEngine, user_id: int, now: datetime) -> bool:
    """Creates the user's chat row; False when it existed already (another instance won)."""
    def op(conn: Connection) -> None:
        conn.execute(insert(chats).values(
            user_id=user_id, step=Step.IDLE.value, draft={}, version=0, updated_at=now,
            last_seen_at=now))

    try:
        await write(engine, op)
    except IntegrityError:
        return False
    return True


async def save(engine: AsyncEngine, seen: Chat, step: Step, draft: Draft,
               now: datetime) -> Chat | None:
    """Writes the new step and draft if nobody changed the row since `seen`; else None."""
    def op(conn: Connection) -> bool:
        return conn.execute(
            update(chats).where(chats.c.user_id == seen.user_id,
                                chats.c.version == seen.version)
            .values(step=step.value, draft=draft.to_json(), version=seen.version + 1,
                    updated_at=now, last_seen_at=now, blocked_at=None)).rowcount == 1

    done = await write(engine, op)
    return Chat(seen.user_id, step, draft, seen.version + 1, now, now) if done else None


async def touch(engine: AsyncEngine, user_id: int, now: datetime) -> None:
    """Records that the user wrote, without changing where they are."""
    await write(engine, lambda conn: conn.execute(
        _TOUCH, {"uid": user_id, "now": now}))


def unblocked(query: Select[Any], user_id: ColumnElement[Any]) -> Select[Any]:
    """`query` kept to users `user_id` who have not blocked the bot (no chat row yet counts as
    not blocked), for other packages' statements that must stay one statement."""
    return (query.outerjoin(chats, chats.c.user_id == user_id)
            .where(chats.c.blocked_at.is_(None)))


async def mark_blocked(engine: AsyncEngine, user_id: int, now: datetime) -> None:
    """Records that the user blocked the bot (`save` and `touch` clear it when they write)."""
    stmt = upsert(engine, chats, {"user_id": user_id, "draft": {}, "updated_at": now,
                                  "last_seen_at": now, "blocked_at": now},
                  key=[chats.c.user_id], update={"blocked_at": now})
    await write(engine, lambda conn: conn.execute(stmt))
