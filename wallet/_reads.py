"""Read-only views of a wallet: balance and the ledger history.

`balance_on` is the same balance read for a caller already inside a synchronous read
transaction (`core.db.run_read`): the chat reads who is talking and their balance in one
crossing to the driver.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ._book import lapsed
from ._exceptions import UnknownUser
from ._types import Balance, LedgerEntry
from .tables import accounts, grants, ledger

EXPIRY_WINDOW = timedelta(days=7)

_ACCOUNT = select(accounts.c.available, accounts.c.held, accounts.c.debt).where(
    accounts.c.user_id == bindparam("uid"))
_EXPIRING = select(grants.c.remaining, grants.c.expires_at).where(
    grants.c.user_id == bindparam("uid"), grants.c.remaining > 0,
    grants.c.expires_at.is_not(None))


async def balance(conn: AsyncConnection, user_id: int, now: datetime) -> Balance:
    acct = (await conn.execute(_ACCOUNT, {"uid": user_id})).first()
    if acct is None:
        raise UnknownUser(user_id)
    return _balance(acct, (await conn.execute(_EXPIRING, {"uid": user_id})).all(), now)


def balance_on(conn: Connection, user_id: int, now: datetime) -> Balance:
    """`balance` on a synchronous connection, inside the caller's transaction."""
    acct = conn.execute(_ACCOUNT, {"uid": user_id}).first()
    if acct is None:
        raise UnknownUser(user_id)
    return _balance(acct, conn.execute(_EXPIRING, {"uid": user_id}).all(), now)


def _balance(acct: Any, expiring: Any, now: datetime) -> Balance:
    gone = soon = 0
    upcoming: list[datetime] = []
    for r in expiring:
        if lapsed(r.expires_at, now):
            gone += r.remaining  # lapsed, waiting for the expiry sweep: no longer usable
        else:
            upcoming.append(r.expires_at)
            if r.expires_at <= now + EXPIRY_WINDOW:
                soon += r.remaining
    return Balance(acct.available - gone, acct.held, acct.debt, soon, min(upcoming, default=None))


async def history(
    conn: AsyncConnection, user_id: int, *, limit: int, before_id: int | None,
) -> list[LedgerEntry]:
    q = select(ledger).where(ledger.c.user_id == user_id)
    if before_id is not None:
        q = q.where(ledger.c.id < before_id)
    rows = (await conn.execute(q.order_by(ledger.c.id.desc()).limit(limit))).all()
    return [
        LedgerEntry(r.id, r.kind, r.amount, r.held_delta, r.debt_delta, r.balance_after,
                    r.held_after, r.debt_after, r.ref, r.note, r.actor, r.created_at)
        for r in rows
    ]
