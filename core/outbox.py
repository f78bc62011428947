"""The outbox: messages to users, written in the same transaction as the change that causes
them (a job finished, credits arrived, a grant was made), delivered later by the dispatcher.

A row names the user, a message `kind` (a key of the message catalogue) and its parameters; the
text is rendered at delivery, in the user's language then. A crash between the change and the
delivery loses nothing: the row is there when the process comes back.

The dispatcher's statements over this table live here too (its owner; tests/unit/
test_ownership.py), below `enqueue`: claim due rows, record each outcome, sweep the rest. Where
a row goes (the identity on a served channel, a chat that has not blocked the bot) belongs to
other packages' tables, so `claim` takes it as a `Route` the dispatcher composes from them.

Row states: pending → sending → sent | failed | blocked (and back to pending on a retry);
sending → held when the channel can deliver it only once the user writes again (`Held`: WeChat's
48 h window and quota). A held row never expires; `release_held` puts it back to pending, due at
once and dated then, so `max_age` counts the time it waits for a sender, not for the user.

Claiming (one write transaction): pick the due pending rows, in id order, of users that have an
identity on a channel this instance serves and have not blocked the bot (on PostgreSQL
`FOR UPDATE SKIP LOCKED OF outbox`: instances skip each other's rows instead of queuing), drop
those that still have an unfinished earlier row of the same user outside this pick (per-user
order: row N+1 never goes out before row N is over), then move the rest to 'sending' with a
conditional `UPDATE … WHERE state = 'pending' AND next_attempt_at <= now`. `next_attempt_at` of
a 'sending' row is the end of its lease, and doubles as the claim's token: every later update
of the row matches it, so an instance whose lease ran out (and whose row another instance took)
changes nothing. A row dropped behind an unfinished earlier one is deferred to when that one is
due, so it does not fill every batch while it waits.

Why a row left behind in 'sending' is retried (`recover`): the process died between claiming
and marking. Whether the message went out is unknown, and Telegram's sendMessage has no
idempotency key, so the row is sent again: this is the one place a message can arrive twice.
Each such recovery counts as an attempt, so a message that kills the sender every time ends
'failed' instead of looping.

The order check and the recovery sweep read through the partial index on `(user_id, id) WHERE
state IN ('pending', 'sending')` (migration 0005); `purge` keeps finished rows for `retention`
only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.db import Id, UTCDateTime, metadata, read, write

__all__ = ["Claimed", "Route", "claim", "enqueue", "finish", "outbox", "purge", "recover",
           "release", "retry"]

UNFINISHED = ("pending", "sending")
FINISHED = ("sent", "failed", "blocked")
ORDER_WAIT = timedelta(seconds=1)  # recheck a row waiting behind another instance's send
# (query of outbox rows, the rows' user id column, served channels) -> the routed query
Route = Callable[[Select[Any], ColumnElement[Any], Sequence[str]], Select[Any]]

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("last_error", String(500), nullable=True),
    Index("ix_outbox_due", "next_attempt_at",
          postgresql_where=text("state = 'pending'"), sqlite_where=text("state = 'pending'")),
    # The dispatcher's per-user order check and its recovery sweep of lapsed 'sending' rows.
    Index("ix_outbox_open_by_user", "user_id", "id",
          postgresql_where=text("state IN ('pending', 'sending')"),
          sqlite_where=text("state IN ('pending', 'sending')")),
)


async def enqueue(conn: AsyncConnection, *, user_id: int, kind: str, payload: dict[str, Any],
                  now: datetime) -> None:
    """Queues a message inside the caller's transaction; it is visible only after commit."""
    await conn.execute(insert(outbox).values(
        user_id=user_id, kind=kind, payload=payload, next_attempt_at=now, created_at=now))


@dataclass(frozen=True, slots=True)
class Claimed:
    """One outbox row this instance now holds, with where it goes."""

    id: int
    user_id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    channel: str
    address: str
    token: datetime  # the lease's end: next_attempt_at while we hold the row


async def claim(engine: AsyncEngine, *, route: Route, channels: Sequence[str], now: datetime,
                token: datetime, limit: int) -> list[Claimed]:
    """Claims up to `limit` due rows deliverable on `channels`, in id order. `route` adds the
    recipient's `channel` and `external_id` columns to a query of outbox rows and keeps only
    those that can be delivered (the caller composes it from the owners of those tables)."""
    if not channels:
        return []
    # An idle pass must not take SQLite's write lock (or a PostgreSQL write transaction) every
    # half second: a read on the due-rows index first.
    async with read(engine) as conn:
        due = (await conn.execute(select(outbox.c.id).where(
            outbox.c.state == "pending", outbox.c.next_attempt_at <= now).limit(1))).first()
    if due is None:
        return []
    preference = {name: i for i, name in enumerate(channels)}
    query = (route(select(outbox.c.id, outbox.c.user_id, outbox.c.kind, outbox.c.payload,
                          outbox.c.attempts), outbox.c.user_id, channels)
             .where(outbox.c.state == "pending", outbox.c.next_attempt_at <= now)
             .order_by(outbox.c.id).limit(limit)
             .with_for_update(skip_locked=True, of=outbox))  # nothing on SQLite
    async with write(engine) as conn:
        picked: dict[int, Any] = {}
        for row in (await conn.execute(query)).all():
            # A user with identities on two served channels: the first channel given wins.
            seen = picked.get(row.id)
            if seen is None or preference[row.channel] < preference[seen.channel]:
                picked[row.id] = row
        if not picked:
            return []
        waits = await _behind(conn, picked, now)
        for wait_until, ids in waits.items():
            await conn.execute(update(outbox).where(
                outbox.c.id.in_(ids), outbox.c.state == "pending")
                .values(next_attempt_at=wait_until))
        waiting = {i for ids in waits.values() for i in ids}
        ready = [i for i in picked if i not in waiting]
        if not ready:
            return []
        won = set((await conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(ready), outbox.c.state == "pending",
                   outbox.c.next_attempt_at <= now)
            .values(state="sending", next_attempt_at=token)
            .returning(outbox.c.id))).scalars())
    return [Claimed(r.id, r.user_id, r.kind, dict(r.payload or {}), r.attempts, r.channel,
                    r.external_id, token)
            for r in sorted(picked.values(), key=lambda r: r.id) if r.id in won]


async def _behind(conn: AsyncConnection, picked: dict[int, Any],
                  now: datetime) -> dict[datetime, list[int]]:
    """Picked rows with an unfinished earlier row of their user outside the pick, grouped by
    when to look at them again."""
    users = {r.user_id for r in picked.values()}
    first = (select(outbox.c.user_id, func.min(outbox.c.id).label("id"))
             .where(outbox.c.user_id.in_(users), outbox.c.state.in_(UNFINISHED),
                    outbox.c.id.not_in(list(picked)))
             .group_by(outbox.c.user_id).subquery())
    blockers = (await conn.execute(
        select(outbox.c.id, outbox.c.user_id, outbox.c.state, outbox.c.next_attempt_at)
        .join(first, first.c.id == outbox.c.id))).all()
    waits: dict[datetime, list[int]] = {}
    for b in blockers:
        # A pending blocker: wait until it is due (then both are picked together, in order).
        # One being sent by another instance: its lease end says nothing; look again soon.
        until = (b.next_attempt_at if b.state == "pending" and b.next_attempt_at > now
                 else now + ORDER_WAIT)
        for row in picked.values():
            if row.user_id == b.user_id and row.id > b.id:
                waits.setdefault(until, []).append(row.id)
    return waits


async def finish(engine: AsyncEngine, row: Claimed, *, state: str, now: datetime,
                 error: str | None = None, attempts: int | None = None) -> bool:
    """Marks a held row sent, failed or blocked; False if our lease was lost meanwhile."""
    values: dict[str, Any] = {"state": state, "last_error": error, "next_attempt_at": now,
                              "attempts": row.attempts if attempts is None else attempts}
    if state == "sent":
        values["sent_at"] = now
    async with write(engine) as conn:
        return await _held(conn, row, values)


async def retry(engine: AsyncEngine, row: Claimed, *, at: datetime, attempts: int,
                error: str | None, payload: dict[str, Any] | None = None) -> bool:
    """Puts a held row back to pending, due at `at`."""
    values: dict[str, Any] = {"state": "pending", "next_attempt_at": at, "attempts": attempts,
                              "last_error": error}
    if payload is not None:
        values["payload"] = payload
    async with write(engine) as conn:
        return await _held(conn, row, values)


async def hold(engine: AsyncEngine, row: Claimed, *, error: str | None,
               payload: dict[str, Any] | None = None) -> bool:
    """Parks a claimed row until the user writes again (`release_held`)."""
    values: dict[str, Any] = {"state": "held", "next_attempt_at": row.token, "last_error": error}
    if payload is not None:
        values["payload"] = payload
    async with write(engine) as conn:
        return await _held(conn, row, values)


async def release_held(conn: AsyncConnection, user_id: int, now: datetime) -> int:
    """The user wrote: their held rows are due now (in id order, as claimed)."""
    moved = await conn.execute(update(outbox).where(
        outbox.c.state == "held", outbox.c.user_id == user_id).values(
        state="pending", next_attempt_at=now, created_at=now, last_error=None))
    return moved.rowcount


async def release(engine: AsyncEngine, rows: Sequence[Claimed], *, at: datetime) -> None:
    """Gives held rows back untouched (not sent, no attempt counted), due at `at`."""
    for row in rows:
        async with write(engine) as conn:
            await _held(conn, row, {"state": "pending", "next_attempt_at": at})


async def _held(conn: AsyncConnection, row: Claimed, values: dict[str, Any]) -> bool:
    moved = await conn.execute(update(outbox).where(
        outbox.c.id == row.id, outbox.c.state == "sending",
        outbox.c.next_attempt_at == row.token).values(**values))
    return moved.rowcount == 1


async def recover(engine: AsyncEngine, *, now: datetime, max_attempts: int,
                  max_age: timedelta) -> tuple[int, int]:
    """Returns rows whose lease ran out to pending (an attempt each; failed past the limit)
    and fails pending rows older than `max_age`; returns (recovered, expired)."""
    lapsed = and_(outbox.c.state == "sending", outbox.c.next_attempt_at <= now)
    async with write(engine) as conn:
        dead = await conn.execute(update(outbox).where(
            lapsed, outbox.c.attempts + 1 >= max_attempts).values(
            state="failed", attempts=outbox.c.attempts + 1, next_attempt_at=now,
            last_error="lease expired too often (the sender died while sending)"))
        back = await conn.execute(update(outbox).where(lapsed).values(
            state="pending", attempts=outbox.c.attempts + 1, next_attempt_at=now,
            last_error="lease expired (the sender died while sending)"))
        old = await conn.execute(update(outbox).where(
            outbox.c.state == "pending", outbox.c.created_at <= now - max_age).values(
            state="failed", next_attempt_at=now, last_error="expired undelivered"))
    return back.rowcount + dead.rowcount, old.rowcount


async def purge(engine: AsyncEngine, *, before: datetime) -> int:
    """Deletes finished rows created before `before`."""
    async with write(engine) as conn:
        gone = await conn.execute(delete(outbox).where(
            outbox.c.state.in_(FINISHED), outbox.c.created_at < before))
    return gone.rowcount
