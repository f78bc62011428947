"""`Memberships`: the membership service the payments, the chat, the admin and the scheduler use.

Subscription events come from `payments` inside its event transaction (`apply`,
`refund_period`), so the event row, the grant, the tier and the message commit together. The
other calls open their own transaction: `manual` (an admin's `/tier USER TIER DAYS`), `redeem`
(a code's credits and membership days in one go), the sweeps, and the reads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.config import FREE, Config
from core.db import read, utcnow, write
from wallet import Wallet

from . import _apply, _rules, _sweeps
from ._book import Context, audit, load, move, period_credits, to_membership
from ._exceptions import UnknownTier
from ._types import Membership, Outcome, RedeemResult, SubscriptionEvent
from .tables import membership_events, membership_periods

__all__ = ["Memberships"]


class Memberships:
    """Plans, tiers and paid periods of every user."""

    def __init__(self, *, engine: AsyncEngine, wallet: Wallet, config: Config,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.engine, self.wallet, self.config, self.clock = engine, wallet, config, clock

    def _ctx(self, actor: str | None = None, now: datetime | None = None) -> Context:
        return Context(wallet=self.wallet, config=self.config, now=now or self.clock(),
                       actor=actor)

    # --- inside a payment event's transaction ------------------------------------------------

    async def apply(self, conn: AsyncConnection, ev: SubscriptionEvent, *,
                    actor: str | None = None) -> Outcome:
        return await _apply.apply(conn, self._ctx(actor), ev)

    async def refund_period(self, conn: AsyncConnection, *, source: str,
                            payment_ref: str | None, charge_ref: str | None, reason: str,
                            actor: str | None = None) -> Outcome | None:
        return await _apply.refund_period(conn, self._ctx(actor), source=source,
                                          payment_ref=payment_ref, charge_ref=charge_ref,
                                          reason=reason)

    # --- reads -------------------------------------------------------------------------------

    async def current(self, user_id: int) -> Membership | None:
        """The membership that runs now (active or canceling), or None for a free user."""
        async with read(self.engine) as conn:
            row = await load(conn, user_id)
            if row is None or row.state == "ended":
                return None
            return to_membership(row, await period_credits(conn, row))

    async def first_charge(self, user_id: int, source: str, subscription_id: str) -> str | None:
        """The charge id of a subscription's first paid period (Telegram names a Stars
        subscription by it in editUserStarSubscription)."""
        p = membership_periods.c
        async with read(self.engine) as conn:
            found = (await conn.execute(select(p.charge_ref).where(
                p.user_id == user_id, p.source == source, p.subscription_id == subscription_id)
                .order_by(p.starts_at).limit(1))).scalar()
        return None if found is None else str(found)

    async def period_by_charge(self, source: str, charge_ref: str) -> Any:
        """The paid period a provider's charge paid (user_id, state, …), or None."""
        p = membership_periods.c
        async with read(self.engine) as conn:
            return (await conn.execute(select(membership_periods).where(
                p.source == source, p.charge_ref == charge_ref).limit(1))).first()

    async def events(self, user_id: int, limit: int = 10) -> list[Any]:
        """The user's membership audit, newest first."""
        e = membership_events.c
        async with read(self.engine) as conn:
            return list((await conn.execute(select(membership_events).where(
                e.user_id == user_id).order_by(e.id.desc()).limit(limit))).all())

    # --- admin and redeem codes --------------------------------------------------------------

    async def manual(self, user_id: int, tier: str, days: int, *, actor: str) -> Membership | None:
        """An admin's membership: `tier` for `days` from now, replacing what runs (a paid
        subscription keeps renewing at its provider; its next paid period takes over again).
        Tier free, or 0 days, ends the membership now."""
        if tier not in self.config.tiers:
            raise UnknownTier(tier)
        if days < 0:
            raise ValueError("days must be >= 0")
        ctx = self._ctx(actor)
        async with write(self.engine) as conn:
            if await self.wallet.lock_tier(user_id, conn=conn) is None:
                raise ValueError(f"unknown user {user_id}")
            row = await load(conn, user_id)
            if tier == FREE or days == 0:
                if row is not None and row.state != "ended":
                    await move(conn, ctx, user_id, row, kind="manual_end",
                               reason=f"set to free by {actor}",
                               message=("membership.ended", {"tier": row.tier,
                                                             "plan_id": row.plan_id}),
                               state="ended", ends_at=ctx.now)
                return None
            end = ctx.now + timedelta(days=days)
            await move(conn, ctx, user_id, row, kind="manual",
                       reason=f"{tier} for {days} days by {actor}",
                       message=("membership.manual", {"tier": tier, "ends_at": end.isoformat()}),
                       plan_id=None, tier=tier, source="admin", subscription_id=None,
                       state="active", period_start=ctx.now, period_end=end, ends_at=end,
                       next_plan_id=None, reminded_for=None)
        return await self.current(user_id)

    async def redeem(self, user_id: int, code: str) -> RedeemResult:
        """Redeems a code: its credits (the wallet's rules) and its membership days, in one
        transaction. Days of the tier that runs extend it; days of a higher tier start now;
        days of a lower tier than the one running are not used (the audit says so)."""
        ctx = self._ctx()
        async with write(self.engine) as conn:
            await self.wallet.lock_tier(user_id, conn=conn)
            grant = await self.wallet.redeem(user_id, code, conn=conn)
            info = await self.wallet.code_info(code, conn=conn)
            if info is None or not info.membership_days or not info.membership_tier or \
                    info.membership_tier not in self.config.tiers:
                return RedeemResult(grant.credits, None, None)
            tier, days = info.membership_tier, timedelta(days=info.membership_days)
            row = await load(conn, user_id)
            running = row is not None and row.state != "ended"
            reason = f"code {info.code}: {tier} for {info.membership_days} days"
            if running and row.tier == tier:
                end = row.ends_at + days
                await move(conn, ctx, user_id, row, kind="redeem_extend", reason=reason,
                           message=None, ends_at=end, period_end=row.period_end + days)
                return RedeemResult(grant.credits, tier, end)
            tiers = list(self.config.tiers)
            if running and _rules.rank(tiers, tier) < _rules.rank(tiers, row.tier):
                await _book_note(conn, ctx, user_id, row, reason)
                return RedeemResult(grant.credits, None, None)
            end = ctx.now + days
            await move(conn, ctx, user_id, row, kind="redeem", reason=reason, message=None,
                       plan_id=None, tier=tier, source="redeem", subscription_id=None,
                       state="active", period_start=ctx.now, period_end=end, ends_at=end,
                       next_plan_id=None, reminded_for=None)
            return RedeemResult(grant.credits, tier, end)

    # --- scheduler -----------------------------------------------------------------------------

    async def end_due(self, now: datetime | None = None) -> int:
        return await _sweeps.end_due(self.engine, self._ctx(now=now))

    async def remind_due(self, now: datetime | None = None) -> int:
        return await _sweeps.remind_due(self.engine, self._ctx(now=now))


async def _book_note(conn: AsyncConnection, ctx: Context, user_id: int, row: Any,
                     reason: str) -> None:
    await audit(conn, ctx, user_id, "redeem_unused", from_tier=row.tier, to_tier=row.tier,
                plan_id=row.plan_id, reason=f"{reason}: a higher tier runs")
