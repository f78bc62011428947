"""Scheduler work: end memberships at their time and remind before renewals, each once.

Both find candidates with a plain read, then claim each row with a conditional UPDATE in its own
short write transaction (`… WHERE state != 'ended' AND ends_at <= now`, `… WHERE reminded_for
IS DISTINCT FROM period_end`): two replicas running the sweep together find one winner per row,
and only the winner changes the tier or queues the message.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import read, write
from core.outbox import enqueue

from ._book import Context, audit
from ._types import RENEWING
from .tables import memberships

__all__ = ["end_due", "remind_due"]

M = memberships.c
BATCH = 500  # rows per sweep; the next run takes the rest


async def end_due(engine: AsyncEngine, ctx: Context) -> int:
    """Ends every membership past its `ends_at`; the user goes back to free. Returns how many
    this call ended."""
    async with read(engine) as conn:
        due = (await conn.execute(select(M.user_id).where(
            M.state != "ended", M.ends_at <= ctx.now).order_by(M.ends_at)
            .limit(BATCH))).scalars().all()
    ended = 0
    for user_id in due:
        async with write(engine) as conn:
            await ctx.wallet.lock_tier(user_id, conn=conn)
            claimed = await conn.execute(update(memberships).where(
                M.user_id == user_id, M.state != "ended", M.ends_at <= ctx.now)
                .values(state="ended", updated_at=ctx.now).returning(M.tier, M.plan_id))
            row = claimed.first()
            if row is None:
                continue  # renewed, or ended by another replica, since we looked
            old = await ctx.wallet.set_tier(user_id, "free", conn=conn)
            await audit(conn, ctx, user_id, "ended", from_tier=old, to_tier="free",
                        plan_id=row.plan_id, reason="the paid period ended without renewal")
            await enqueue(conn, user_id=user_id, kind="membership.ended", now=ctx.now,
                          payload={"tier": row.tier, "plan_id": row.plan_id})
            ended += 1
    return ended


async def remind_due(engine: AsyncEngine, ctx: Context) -> int:
    """Queues one reminder per renewing period, `remind_days` before it renews."""
    soon = ctx.now + timedelta(days=ctx.config.memberships.remind_days)
    fresh = or_(M.reminded_for.is_(None), M.reminded_for != M.period_end)
    due_rows = and_(M.state == "active", M.source.in_(RENEWING), M.period_end <= soon,
                    M.period_end > ctx.now, fresh)
    async with read(engine) as conn:
        due = (await conn.execute(select(M.user_id).where(due_rows).order_by(M.period_end)
                                  .limit(BATCH))).scalars().all()
    sent = 0
    for user_id in due:
        async with write(engine) as conn:
            claimed = await conn.execute(update(memberships).where(
                M.user_id == user_id, due_rows).values(reminded_for=M.period_end)
                .returning(M.plan_id, M.period_end))
            row = claimed.first()
            if row is None:
                continue
            await enqueue(conn, user_id=user_id, kind="membership.reminder", now=ctx.now,
                          payload={"plan_id": row.plan_id,
                                   "renews_at": _iso(row.period_end)})
            sent += 1
    return sent


def _iso(value: datetime) -> str:
    return value.isoformat()
