"""The outbox dispatcher's statements, composed from the tables' owners (one owner per table:
tests/unit/test_ownership.py): the outbox's own statements are `core.outbox`'s (claim, finish,
retry, release, hold, release_held, recover, purge; its docstring tells how claiming and leases
work); where a row goes is the wallet's (`wallet.queries.with_address`: the identity on a
served channel; `find_user` for `release_held`) and the chat's (`handlers.state.unblocked`);
status messages are `handlers.notify`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import write
from core.outbox import Claimed, finish, hold, purge, recover, release, retry
from core.outbox import claim as claim_rows
from core.outbox import release_held as release_rows
from handlers import notify
from handlers.state import mark_blocked, unblocked
from wallet.queries import find_user, with_address

__all__ = ["Claimed", "StatusRow", "claim", "finish", "hold", "mark_blocked", "purge", "recover",
           "release", "release_held", "retry", "status_rows", "swap_shown"]

swap_shown = notify.swap_shown


def _route(query: Select[Any], user_id: ColumnElement[Any],
           channels: Sequence[str]) -> Select[Any]:
    return unblocked(with_address(query, user_id, channels), user_id)


async def claim(engine: AsyncEngine, *, channels: Sequence[str], now: datetime,
                token: datetime, limit: int) -> list[Claimed]:
    """Claims up to `limit` due rows deliverable on `channels`, in id order."""
    return await claim_rows(engine, route=_route, channels=channels, now=now, token=token,
                            limit=limit)


async def release_held(engine: AsyncEngine, *, channel: str, address: str,
                       now: datetime) -> int:
    """The user behind (`channel`, `address`) wrote: their held rows are due now."""
    async with write(engine) as conn:
        user_id = await find_user(conn, channel, address)
        return 0 if user_id is None else await release_rows(conn, user_id, now)


@dataclass(frozen=True, slots=True)
class StatusRow:
    job_id: int
    user_id: int
    channel: str
    address: str
    message_id: str
    shown: str


# A job that ended gets one last edit of its status message (the outcome: delivered, failed or
# cancelled with the credits back) if it ended within this window; older ones are left alone.
FINAL_EDIT_WINDOW = timedelta(hours=1)
FINAL_KEYS = ("delivered", "failed", "cancelled")


async def status_rows(engine: AsyncEngine, *, channels: Sequence[str], after: int,
                      limit: int, ended_since: datetime | None = None) -> list[StatusRow]:
    """Status messages on `channels`, by job id from `after` on: of running jobs, and of jobs
    that ended since `ended_since` whose message does not show the outcome yet."""
    if not channels:
        return []
    rows = await notify.status_rows(engine, channels=channels, after=after, limit=limit,
                                    ended_since=ended_since, final=FINAL_KEYS)
    return [StatusRow(*r) for r in rows]
