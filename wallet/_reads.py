"""Read-only views of a wallet: balance and the ledger history.

`balance_on` is the same balance read for a caller already inside a synchronous read
transaction (`core.db.read`): the chat reads who is talking and their balance in one
crossing to the driver.

`balance_columns` / `balance_of` are the same balance as columns of the caller's own SELECT
(the account's row through an outer join, the lapsing grants as three correlated aggregates), so
a caller can read who is talking and their balance in one statement: on PostgreSQL one round
trip, with no BEGIN/COMMIT, since a single statement reads one snapshot. The aggregates compute
exactly what `_balance` computes from the grant rows (`lapsed`: `expires_at <= now`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Label, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import UTCDateTime

from ._book import lapsed
from ._exceptions import UnknownUser
from ._types import Balance, LedgerEntry
from .tables import OPEN, accounts, grants, ledger

EXPIRY_WINDOW = timedelta(days=7)

_ACCOUNT = select(accounts.c.available, accounts.c.held, accounts.c.debt).where(
    accounts.c.user_id == bindparam("uid"))
_EXPIRING = select(grants.c.remaining, grants.c.expires_at).where(
    grants.c.user_id == bindparam("uid"), OPEN,
    grants.c.expires_at.is_not(None))
_NOW = bindparam("balance_now", type_=UTCDateTime())
_SOON = bindparam("balance_soon", type_=UTCDateTime())


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


def balance_columns(user_id: ColumnElement[Any]) -> list[Label[Any]]:
    """The balance of the user `user_id` as labelled columns of a SELECT that outer-joins
    `accounts` on that user (`balance_join`); bind them with `balance_params`."""
    open_ = (grants.c.user_id == user_id, OPEN,
             grants.c.expires_at.is_not(None))
    total = func.coalesce(func.sum(grants.c.remaining), 0)
    return [accounts.c.user_id.label("balance_account"),
            accounts.c.available.label("balance_available"),
            accounts.c.held.label("balance_held"), accounts.c.debt.label("balance_debt"),
            select(total).where(*open_, grants.c.expires_at <= _NOW)
            .scalar_subquery().label("balance_gone"),
            select(total).where(*open_, grants.c.expires_at > _NOW, grants.c.expires_at <= _SOON)
            .scalar_subquery().label("balance_soon"),
            select(func.min(grants.c.expires_at)).where(*open_, grants.c.expires_at > _NOW)
            .scalar_subquery().label("balance_next")]


def balance_join(query: Select[Any], user_id: ColumnElement[Any]) -> Select[Any]:
    """`query` with the user's account row outer-joined, for `balance_columns`."""
    return query.outerjoin(accounts, accounts.c.user_id == user_id)


def balance_params(now: datetime) -> dict[str, datetime]:
    return {"balance_now": now, "balance_soon": now + EXPIRY_WINDOW}


def balance_of(row: Any, user_id: int) -> Balance:
    """The balance from a row read with `balance_columns`."""
    if row.balance_account is None:
        raise UnknownUser(user_id)
    return Balance(row.balance_available - row.balance_gone, row.balance_held, row.balance_debt,
                   row.balance_soon, row.balance_next)


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
