"""The account book: lock a user's counters, write ledger rows, save the counters.

Every wallet operation runs inside one write transaction and follows the same shape:
`lock()` the account row (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the
write lock), read what it needs, write its rows, `entry()` one ledger row per change, `save()`.

`save()` is a guarded relative update: it adds the changes to the counters only where they
still hold what `lock()` read (`SET available = available + :da … WHERE available = :a0 AND …`)
and checks that it changed one row. Under the lock nothing can differ; but should a transaction
ever read a stale state (an engine that does not take SQLite's write lock at BEGIN, a caller's
own transaction), it raises `StaleAccount` and writes nothing instead of writing back counters
and ledger balances computed from that state; `Wallet` then runs the operation again.
Every change of a grant's `remaining` goes with a change of the account's counters in the same
transaction, so the account's guard covers the grants too.
Statements are `Prepared` once (see `core.prepared`): the hot path only binds parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from core.prepared import Prepared

from ._exceptions import HoldNotFound, StaleAccount, UnknownUser
from .tables import accounts, grants, holds, ledger

_LOCK = Prepared(
    select(accounts.c.available, accounts.c.held, accounts.c.debt)
    .where(accounts.c.user_id == bindparam("uid"))
    .with_for_update()
)
# The hold's row and its owner's counters in one statement; FOR UPDATE locks both rows, so a
# concurrent settle or release of the same hold waits and then reads the hold's new status.
_LOCK_HOLD = Prepared(
    select(holds, accounts.c.available, accounts.c.held, accounts.c.debt)
    .join_from(holds, accounts, accounts.c.user_id == holds.c.user_id)
    .where(holds.c.id == bindparam("hid"))
    .with_for_update()
)
# The counters, and the hold already made under `ref` if any (NULLs when none). Only the account
# row is locked; a hold inserted concurrently under the same ref shows up as a unique-key error,
# on which the caller runs the operation again (see Wallet._write).
_LOCK_WITH_REF = Prepared(
    select(accounts.c.available, accounts.c.held, accounts.c.debt, holds)
    .select_from(accounts.outerjoin(holds, holds.c.ref == bindparam("ref")))
    .where(accounts.c.user_id == bindparam("uid"))
    .with_for_update(of=accounts)
)
_SAVE = Prepared(
    update(accounts)
    .where(accounts.c.user_id == bindparam("uid"), accounts.c.available == bindparam("a0"),
           accounts.c.held == bindparam("h0"), accounts.c.debt == bindparam("d0"))
    .values(available=accounts.c.available + bindparam("da"),
            held=accounts.c.held + bindparam("dh"), debt=accounts.c.debt + bindparam("dd"))
)
_ENTRY_COLUMNS = ("user_id", "kind", "amount", "held_delta", "debt_delta", "balance_after",
                  "held_after", "debt_after", "ref", "grant_id", "hold_id", "note", "actor",
                  "created_at")
_ENTRY = Prepared(insert(ledger).values({c: bindparam(c) for c in _ENTRY_COLUMNS}))
_SET_REMAINING = Prepared(
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
    read: tuple[int, int, int] = (0, 0, 0)  # the counters as locked, for save()'s guard

    def __post_init__(self) -> None:
        self.read = (self.available, self.held, self.debt)


def lock(conn: Connection, user_id: int) -> Account:
    row = _LOCK.first(conn, uid=user_id)
    if row is None:
        raise UnknownUser(user_id)
    return Account(user_id, row.available, row.held, row.debt, [])


def lock_hold(conn: Connection, hold_id: int) -> tuple[Account, Any]:
    """Locks a hold and its owner's account; returns the counters and the hold's row."""
    row = _LOCK_HOLD.first(conn, hid=hold_id)
    if row is None:
        raise HoldNotFound(hold_id)
    return Account(row.user_id, row.available, row.held, row.debt, []), row


def lock_with_ref(conn: Connection, user_id: int, ref: str) -> tuple[Account, Any]:
    """Locks the user's account; returns the counters and the hold made under `ref`, if any."""
    row = _LOCK_WITH_REF.first(conn, uid=user_id, ref=ref)
    if row is None:
        raise UnknownUser(user_id)
    return Account(user_id, row.available, row.held, row.debt, []), (
        row if row.id is not None else None)


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


def save(conn: Connection, acct: Account) -> None:
    """Writes the queued ledger rows and the counters; a no-op when nothing changed."""
    if not acct.entries:
        return
    _ENTRY.many(conn, acct.entries)
    a0, h0, d0 = acct.read
    if _SAVE.count(conn, uid=acct.user_id, a0=a0, h0=h0, d0=d0, da=acct.available - a0,
                   dh=acct.held - h0, dd=acct.debt - d0) != 1:
        raise StaleAccount(acct.user_id)
    acct.read = (acct.available, acct.held, acct.debt)
    acct.entries = []


def set_remaining(conn: Connection, changes: list[tuple[int, int]]) -> None:
    """Sets `remaining` for each (grant id, new remaining)."""
    if changes:
        _SET_REMAINING.many(conn, [{"gid": g, "rem": r} for g, r in changes])


def lapsed(expires_at: datetime | None, now: datetime) -> bool:
    """A grant's unheld credits expire at `expires_at` exactly, never before."""
    return expires_at is not None and expires_at <= now
