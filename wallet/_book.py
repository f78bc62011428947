"""The account book: lock a user's counters, write ledger rows, save the counters.

Every wallet operation runs inside one write transaction and follows the same shape:
`lock()` the account row (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the
write lock), read what it needs, write its rows, `entry()` one ledger row per change, `save()`.
Statements are built once here so the hot path only binds parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ._exceptions import HoldNotFound, UnknownUser
from .tables import accounts, grants, holds, ledger

_LOCK = (
    select(accounts.c.available, accounts.c.held, accounts.c.debt)
    .where(accounts.c.user_id == bindparam("uid"))
    .with_for_update()
)
_LOCK_OF_HOLD = (
    select(accounts.c.user_id, accounts.c.available, accounts.c.held, accounts.c.debt)
    .where(accounts.c.user_id == select(holds.c.user_id)
           .where(holds.c.id == bindparam("hid")).scalar_subquery())
    .with_for_update()
)
_SAVE = (
    update(accounts)
    .where(accounts.c.user_id == bindparam("uid"))
    .values(available=bindparam("a"), held=bindparam("h"), debt=bindparam("d"))
)
_ENTRY = insert(ledger)
_SET_REMAINING = (
    update(grants).where(grants.c.id == bindparam("gid")).values(remaining=bindparam("rem"))
)


@dataclass(slots=True)
class Account:
    """A locked account's counters, changed in memory by `entry()` and written by `save()`."""

    user_id: int
    available: int
    held: int
    debt: int
    entries: list[dict[str, Any]]


async def lock(conn: AsyncConnection, user_id: int) -> Account:
    row = (await conn.execute(_LOCK, {"uid": user_id})).first()
    if row is None:
        raise UnknownUser(user_id)
    return Account(user_id, row.available, row.held, row.debt, [])


async def lock_of_hold(conn: AsyncConnection, hold_id: int) -> Account:
    row = (await conn.execute(_LOCK_OF_HOLD, {"hid": hold_id})).first()
    if row is None:
        raise HoldNotFound(hold_id)
    return Account(row.user_id, row.available, row.held, row.debt, [])


def entry(
    acct: Account,
    kind: str,
    now: datetime,
    *,
    amount: int = 0,
    held: int = 0,
    debt: int = 0,
    ref: str | None = None,
    grant_id: int | None = None,
    hold_id: int | None = None,
    note: str | None = None,
    actor: str | None = None,
) -> None:
    """Applies one change to the counters and queues its ledger row."""
    acct.available += amount
    acct.held += held
    acct.debt += debt
    acct.entries.append({
        "user_id": acct.user_id, "kind": kind, "amount": amount, "held_delta": held,
        "debt_delta": debt, "balance_after": acct.available, "held_after": acct.held,
        "debt_after": acct.debt, "ref": ref, "grant_id": grant_id, "hold_id": hold_id,
        "note": note, "actor": actor, "created_at": now,
    })


async def save(conn: AsyncConnection, acct: Account) -> None:
    """Writes the queued ledger rows and the counters; a no-op when nothing changed."""
    if not acct.entries:
        return
    await conn.execute(_ENTRY, acct.entries)
    await conn.execute(
        _SAVE, {"uid": acct.user_id, "a": acct.available, "h": acct.held, "d": acct.debt}
    )
    acct.entries = []


async def set_remaining(conn: AsyncConnection, changes: list[tuple[int, int]]) -> None:
    """Sets `remaining` for each (grant id, new remaining)."""
    if changes:
        await conn.execute(_SET_REMAINING, [{"gid": g, "rem": r} for g, r in changes])


def new_id(result: CursorResult[Any]) -> int:
    """The primary key of the row an INSERT just wrote."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def lapsed(expires_at: datetime | None, now: datetime) -> bool:
    """A grant's unheld credits expire at `expires_at` exactly, never before."""
    return expires_at is not None and expires_at <= now
