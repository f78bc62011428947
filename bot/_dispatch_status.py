"""What the dispatcher needs of the handlers (`Renderer`), its error sanitizer, and the edit of
one job status message.

Status edits: the new shown key is stored first with a conditional update (it must still show
the old key), which also means only one instance edits a given change; a failed edit puts the
old key back so the next pass tries again. A message the channel cannot edit any more (deleted,
too old) is left as it is; a user who blocked the bot is marked as for a delivery.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.types import Outbound, Text

from . import _dispatch_sql as sql
from .channel import Blocked, Channel, ChannelError, RetryLater, Undeliverable

__all__ = ["Renderer", "sanitize_error", "update_status"]

log = logging.getLogger("bot.dispatcher")

_URL = re.compile(r"\w+://\S+")
_TOKENISH = re.compile(r"\d{5,}:[\w-]{20,}|[A-Za-z0-9_\-]{32,}")


class Renderer(Protocol):
    """What the dispatcher needs of `handlers.Handlers`."""

    async def notification(self, user_id: int, kind: str,
                           payload: dict[str, Any]) -> list[Outbound]: ...

    async def job_status(self, job_id: int) -> tuple[str, Text] | None: ...

    async def remember_status(self, job_id: int, *, channel: str, address: str,
                              message_id: str) -> None: ...


def sanitize_error(exc: BaseException, limit: int = 200) -> str:
    """The exception's type and a short text without URLs or token-like strings (a Bot API
    URL carries the bot token)."""
    text = _TOKENISH.sub("…", _URL.sub("<url>", str(exc)))
    return f"{type(exc).__name__}: {text}"[:limit]


async def update_status(engine: AsyncEngine, handlers: Renderer, channel: Channel,
                        row: sql.StatusRow, *, clock: Callable[[], datetime],
                        pause: Callable[[str, float], None]) -> int:
    """Edits one status message if its job's status changed; 1 if it did."""
    try:
        status = await handlers.job_status(row.job_id)
    except Exception:
        log.exception("status of job %d: rendering failed", row.job_id)
        return 0
    if status is None:
        return 0
    shown, text = status[0][:64], status[1]  # the column's width
    if shown == row.shown:
        return 0
    if not await sql.swap_shown(engine, row.job_id, old=row.shown, new=shown, now=clock()):
        return 0  # another instance is editing this change
    try:
        await channel.edit(row.address, row.message_id, text)
    except Blocked:
        await sql.mark_blocked(engine, row.user_id, clock())
        return 0
    except Undeliverable as exc:
        log.info("status of job %d not editable: %s", row.job_id, sanitize_error(exc))
        return 0
    except Exception as exc:
        if isinstance(exc, RetryLater):
            pause(row.channel, exc.seconds)
        elif not isinstance(exc, ChannelError):
            log.exception("status of job %d: the %s adapter failed", row.job_id, row.channel)
        await sql.swap_shown(engine, row.job_id, old=shown, new=row.shown, now=clock())
        return 0
    return 1
