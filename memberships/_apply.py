"""Subscription events applied to a membership, inside the caller's write transaction.

Each starts by locking the user's row (`wallet.lock_tier`), so the events of one user apply one
after the other, whatever order and however many times they arrive:

- paid: the period is recorded once (`period_key`) and grants the plan's credits once, source
  `subscription`, expiring at the period's end plus grace. The newest period drives the
  membership (plan, tier, dates); an older period paid late still grants its credits but moves
  nothing back. A paid subscription takes over from a manual or redeemed membership.
- updated: a new plan waits for the next renewal (`next_plan_id`), except an upgrade under
  `upgrade_policy = "immediate"`, which takes the new tier now and grants the prorated credit
  difference once (its key names the period and the plan). A cancel at the period's end keeps
  the tier to the end of the paid period; undoing it restores the renewal.
- ended: no renewal will come; the tier stays until the paid period ends (the sweep ends it).
- refund/dispute of a period: its credits are clawed back once (debt where spent) and the
  membership ends now.
An event for a subscription we do not know (an update before its first payment) changes nothing:
the paid event that follows carries everything.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.config import PlanConfig
from core.outbox import enqueue

from . import _rules
from ._book import Context, load, move
from ._types import Outcome, SubscriptionEvent
from .tables import membership_periods, memberships

__all__ = ["apply", "refund_period", "resolve_plan"]

M, PR = memberships.c, membership_periods.c


def resolve_plan(ctx: Context, ev: SubscriptionEvent) -> PlanConfig | None:
    """The plan an event sells: the provider's price or product when a plan names it, else
    the plan id from our own metadata."""
    if ev.price_id:
        for plan in ctx.config.plans:
            if ev.price_id in (plan.stripe_price_id, plan.creem_product_id):
                return plan
    return ctx.config.plan(ev.plan_id) if ev.plan_id else None


async def _user_of(conn: AsyncConnection, ev: SubscriptionEvent) -> int | None:
    if ev.user_id is not None:
        return ev.user_id
    found = (await conn.execute(select(PR.user_id).where(
        PR.source == ev.source, PR.subscription_id == ev.subscription_id).limit(1))).scalar()
    if found is None:
        found = (await conn.execute(select(M.user_id).where(
            M.source == ev.source, M.subscription_id == ev.subscription_id))).scalar()
    return None if found is None else int(found)


async def apply(conn: AsyncConnection, ctx: Context, ev: SubscriptionEvent) -> Outcome:
    user_id = await _user_of(conn, ev)
    if user_id is None:
        return Outcome("problem", "no user for this subscription")
    if await ctx.wallet.lock_tier(user_id, conn=conn) is None:
        return Outcome("problem", f"unknown user {user_id}")
    row = await load(conn, user_id)
    if ev.kind == "paid":
        return await _paid(conn, ctx, ev, user_id, row)
    ours = row is not None and row.state != "ended" and row.source == ev.source and \
        row.subscription_id == ev.subscription_id
    if not ours:
        return Outcome("ignored", "not the user's running subscription")
    if ev.kind == "ended":
        return await _cancel(conn, ctx, row, "the subscription ended at the provider")
    return await _updated(conn, ctx, ev, row)


async def _paid(conn: AsyncConnection, ctx: Context, ev: SubscriptionEvent, user_id: int,
                row: Any) -> Outcome:
    plan = resolve_plan(ctx, ev)
    if plan is None:
        return Outcome("problem", f"no plan for {ev.plan_id or ev.price_id!r}")
    start, end = ev.starts_at, ev.ends_at
    if start is None or end is None or end <= start:
        return Outcome("problem", "a paid period without a usable start and end")
    key = _rules.period_key(ev.source, ev.subscription_id, start)
    seen = (await conn.execute(select(PR.id).where(PR.period_key == key))).first()
    if seen is not None:
        return Outcome("duplicate", "period granted before")
    grace = timedelta(hours=ctx.config.memberships.grace_hours)
    await conn.execute(insert(membership_periods).values(
        period_key=key, user_id=user_id, source=ev.source, subscription_id=ev.subscription_id,
        plan_id=plan.id, credits=plan.credits, starts_at=start, ends_at=end,
        payment_ref=ev.payment_ref, charge_ref=ev.charge_ref, created_at=ctx.now))
    await ctx.wallet.grant(
        user_id, plan.credits, source="subscription", key=_rules.grant_key(key),
        expires_at=end + grace, note=f"{plan.id} {start:%Y-%m-%d}..{end:%Y-%m-%d}",
        actor=ctx.actor, conn=conn)
    running = row is not None and row.state != "ended"
    paid_source = running and row.source in ("stripe", "creem", "stars")
    if paid_source and end <= row.period_end:
        # An older period paid late (or a second subscription's shorter one): credits only.
        await enqueue(conn, user_id=user_id, kind="membership.credited", now=ctx.now,
                      payload={"plan_id": plan.id, "credits": plan.credits})
        return Outcome("applied", "an earlier period: credits only", credited=plan.credits)
    same = paid_source and row.source == ev.source and row.subscription_id == ev.subscription_id
    kind = "renewed" if same and row.plan_id == plan.id else "changed" if same else "subscribed"
    payload = {"plan_id": plan.id, "tier": plan.tier, "credits": plan.credits,
               "renews_at": end.isoformat()}
    await move(conn, ctx, user_id, row, kind=kind,
               reason=f"{ev.source} {ev.subscription_id} paid {start:%Y-%m-%d}..{end:%Y-%m-%d}",
               message=("membership.renewed" if same else "membership.started", payload),
               plan_id=plan.id, tier=plan.tier, source=ev.source,
               subscription_id=ev.subscription_id, state="active", period_start=start,
               period_end=end, ends_at=end + grace, next_plan_id=None)
    return Outcome("applied", credited=plan.credits)


async def _cancel(conn: AsyncConnection, ctx: Context, row: Any, reason: str) -> Outcome:
    """No renewal: the tier stays to the end of the paid period, no grace."""
    if row.state == "canceling":
        return Outcome("ignored", "already canceling")
    ends_at = max(ctx.now, row.period_end)
    await move(conn, ctx, row.user_id, row, kind="canceled", reason=reason,
               message=None if ctx.by_user else (
                   "membership.canceled", {"plan_id": row.plan_id, "tier": row.tier,
                                           "ends_at": ends_at.isoformat()}),
               state="canceling", ends_at=ends_at, next_plan_id=None)
    return Outcome("applied")


async def _updated(conn: AsyncConnection, ctx: Context, ev: SubscriptionEvent,
                   row: Any) -> Outcome:
    done = False
    if ev.cancel_at_period_end is True and row.state == "active":
        await _cancel(conn, ctx, row, f"{ev.source} subscription set to cancel")
        row, done = await load(conn, row.user_id), True
    elif ev.cancel_at_period_end is False and row.state == "canceling":
        grace = timedelta(hours=ctx.config.memberships.grace_hours)
        await move(conn, ctx, row.user_id, row, kind="resumed",
                   reason=f"{ev.source} subscription renews again",
                   message=("membership.resumed", {"plan_id": row.plan_id,
                                                   "renews_at": row.period_end.isoformat()}),
                   state="active", ends_at=row.period_end + grace)
        row, done = await load(conn, row.user_id), True
    plan = resolve_plan(ctx, ev)
    if plan is not None and plan.id not in (row.plan_id, row.next_plan_id):
        await _change(conn, ctx, row, plan)
        done = True
    return Outcome("applied" if done else "ignored")


async def _change(conn: AsyncConnection, ctx: Context, row: Any, plan: PlanConfig) -> None:
    tiers = list(ctx.config.tiers)
    old = ctx.config.plan(row.plan_id) if row.plan_id else None
    up = _rules.is_upgrade(tiers, old, plan)
    if not (up and ctx.config.memberships.upgrade_policy == "immediate"):
        await move(conn, ctx, row.user_id, row, kind="change_scheduled",
                   reason=f"{row.plan_id} → {plan.id} at the next renewal",
                   message=None if ctx.by_user else ("membership.change_scheduled", {
                       "plan_id": plan.id, "tier": plan.tier,
                       "at": row.period_end.isoformat()}),
                   next_plan_id=plan.id)
        return
    diff = _rules.prorated(old.credits if old else 0, plan.credits, now=ctx.now,
                           start=row.period_start, end=row.period_end)
    key = _rules.period_key(row.source, row.subscription_id, row.period_start)
    if diff > 0:
        grace = timedelta(hours=ctx.config.memberships.grace_hours)
        await ctx.wallet.grant(
            row.user_id, diff, source="subscription", key=f"{_rules.grant_key(key)}:{plan.id}",
            expires_at=row.period_end + grace, note=f"upgrade to {plan.id}, prorated",
            actor=ctx.actor, conn=conn)
        # The period's refund takes back the difference too.
        await conn.execute(update(membership_periods).where(PR.period_key == key)
                           .values(credits=PR.credits + diff))
    await move(conn, ctx, row.user_id, row, kind="upgraded",
               reason=f"{row.plan_id} → {plan.id} now ({diff} credits prorated)",
               message=None if ctx.by_user else (
                   "membership.upgraded", {"plan_id": plan.id, "tier": plan.tier,
                                           "credits": diff}),
               plan_id=plan.id, tier=plan.tier, next_plan_id=None)


async def refund_period(conn: AsyncConnection, ctx: Context, *, source: str,
                        payment_ref: str | None, charge_ref: str | None,
                        reason: str) -> Outcome | None:
    """Claws back a refunded or disputed period's credits and ends its membership; None when
    no period of ours matches."""
    refs = sorted({r for r in (payment_ref, charge_ref) if r})
    if not refs:
        return None
    # Providers name a payment differently in the refund than in the period (Creem: order vs
    # transaction), so either id may match either column.
    tests = [PR.payment_ref.in_(refs), PR.charge_ref.in_(refs)]
    found = (await conn.execute(select(PR.user_id).where(PR.source == source, or_(*tests))
                                .limit(1))).scalar()
    if found is None:
        return None
    await ctx.wallet.lock_tier(int(found), conn=conn)
    period = (await conn.execute(select(membership_periods).where(
        PR.source == source, or_(*tests)).order_by(PR.id).limit(1))).one()
    if period.state == "refunded":
        return Outcome("duplicate", "period refunded before")
    await conn.execute(update(membership_periods).where(PR.id == period.id)
                       .values(state="refunded"))
    taken_debt, clawed = 0, 0
    if period.credits > 0:
        taken = await ctx.wallet.clawback(
            period.user_id, period.credits, key=f"{_rules.grant_key(period.period_key)}:clawback",
            note=f"{reason} of {source} period {period.starts_at:%Y-%m-%d}", actor=ctx.actor,
            conn=conn)
        taken_debt, clawed = taken.debt, period.credits
    row = await load(conn, period.user_id)
    payload = {"credits": clawed, "debt": taken_debt, "reason": reason}
    if row is not None and row.state != "ended" and row.source == source and \
            row.subscription_id == period.subscription_id:
        await move(conn, ctx, period.user_id, row, kind="ended",
                   reason=f"{reason} of the period {period.starts_at:%Y-%m-%d}",
                   message=("membership.reversed", {**payload, "ended": True}),
                   state="ended", ends_at=ctx.now)
    else:
        await enqueue(conn, user_id=period.user_id, kind="membership.reversed", now=ctx.now,
                      payload={**payload, "ended": False})
    return Outcome("applied", clawed=clawed)
