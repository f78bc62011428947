"""Shared reads and steps for the membership tests (not a test module)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from core.db import read
from memberships.tables import membership_events, membership_periods, memberships
from tests.integration.test_payments_stack import PayStack
from wallet.tables import users

DAY = 86_400
PERIOD = 30 * DAY


def ts(when: datetime) -> int:
    return int(when.timestamp())


async def tier(pay: PayStack, user: int) -> str:
    async with read(pay.engine) as conn:
        return str((await conn.execute(select(users.c.tier).where(users.c.id == user)))
                   .scalar_one())


async def membership(pay: PayStack, user: int) -> Any:
    async with read(pay.engine) as conn:
        return (await conn.execute(select(memberships).where(
            memberships.c.user_id == user))).first()


async def audit_kinds(pay: PayStack, user: int) -> list[tuple[str, str | None, str | None]]:
    e = membership_events.c
    async with read(pay.engine) as conn:
        rows = (await conn.execute(select(e.kind, e.from_tier, e.to_tier).where(
            e.user_id == user).order_by(e.id))).all()
    return [(r.kind, r.from_tier, r.to_tier) for r in rows]


async def periods(pay: PayStack, user: int) -> list[Any]:
    p = membership_periods.c
    async with read(pay.engine) as conn:
        return list((await conn.execute(select(membership_periods).where(
            p.user_id == user).order_by(p.starts_at))).all())


async def kinds(pay: PayStack, user: int) -> list[str]:
    return [m.kind for m in await pay.outbox() if m.user_id == user]


async def stripe_subscribe(pay: PayStack, user: int, plan: str = "plus") -> dict[str, Any]:
    """Checks out a plan through the Stripe fake and lets it make the subscription."""
    url = await pay.payments.subscribe(user_id=user, channel="telegram", plan_id=plan,
                                       method="stripe", title="Plus", description="monthly")
    session = pay.stripe.sessions[url.rsplit("/", 1)[1]]
    return pay.stripe.subscribe(session)


def period(base: int, n: int = 0) -> tuple[int, int]:
    """The n-th 30-day period from `base` (Unix seconds)."""
    start = base + n * PERIOD
    return start, start + PERIOD


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


GRACE = timedelta(hours=48)
