"""What admins see of payments: a user's recent orders (`/user`) and revenue (`/stats`).

Revenue is net: per currency, what orders paid since a time brought in less what was refunded
of them; a disputed order counts as paid but brings nothing (the bank holds the money). Stars
are counted in their own currency, XTR.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ._money import from_minor
from .tables import payments

__all__ = ["PaymentRecord", "Revenue", "recent_for_user", "revenue"]

P = payments.c


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    order_id: str
    provider: str
    package_id: str
    credits: int
    amount: Decimal
    currency: str
    state: str  # pending | paid | refunded | disputed
    refunded: Decimal
    clawed: int  # credits taken back so far
    created_at: datetime
    paid_at: datetime | None
    problem: str | None


@dataclass(frozen=True, slots=True)
class Revenue:
    totals: dict[str, Decimal]  # currency → net amount
    paid: int  # orders paid since the time asked


def record(row: Any) -> PaymentRecord:
    return PaymentRecord(
        order_id=row.order_id, provider=row.provider, package_id=row.package_id,
        credits=int(row.credits), amount=from_minor(row.amount, row.currency),
        currency=row.currency, state=row.state, refunded=from_minor(row.refunded, row.currency),
        clawed=int(row.clawed), created_at=row.created_at, paid_at=row.paid_at,
        problem=row.problem)


async def recent_for_user(conn: AsyncConnection, user_id: int, limit: int) -> list[PaymentRecord]:
    rows = await conn.execute(select(payments).where(P.user_id == user_id)
                              .order_by(P.id.desc()).limit(limit))
    return [record(r) for r in rows]


async def revenue(conn: AsyncConnection, since: datetime) -> Revenue:
    rows = (await conn.execute(
        select(P.currency, P.state, func.sum(P.amount - P.refunded), func.count())
        .where(P.paid_at >= since).group_by(P.currency, P.state))).all()
    totals: dict[str, Decimal] = {}
    paid = 0
    for currency, state, net, count in rows:
        paid += int(count)
        if state != "disputed":
            totals[currency] = totals.get(currency, Decimal(0)) + from_minor(int(net), currency)
    return Revenue(totals, paid)
