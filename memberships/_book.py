"""Row helpers inside the caller's write transaction: read, write and audit one membership.

Every change goes through `move`: it writes the membership row, sets the user's tier through the
wallet (which owns `users`), appends the audit row with the tier before and after and the reason,
and queues the user's message, all in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.config import FREE, Config
from core.outbox import enqueue
from wallet import Wallet

from ._types import Membership
from .tables import membership_events, membership_periods, memberships

__all__ = ["Context", "audit", "load", "move", "to_membership"]

M, PR = memberships.c, membership_periods.c


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    wallet: Wallet
    config: Config
    now: datetime
    actor: str | None = None

    @property
    def by_user(self) -> bool:
        """The user made this change in the chat, which answers it there: no outbox message
        repeats it (a change made at the provider, or by an admin, is told)."""
        return bool(self.actor and self.actor.startswith("user:"))


async def load(conn: AsyncConnection, user_id: int) -> Any:
    """The user's membership row (any state) or None. Call after `wallet.lock_tier`, which
    serialises every change to one user's membership on the user's row."""
    return (await conn.execute(select(memberships).where(M.user_id == user_id))).first()


async def period_credits(conn: AsyncConnection, row: Any) -> int:
    if row.source not in ("stripe", "creem", "stars") or row.subscription_id is None:
        return 0
    got = (await conn.execute(select(func.coalesce(func.sum(PR.credits), 0)).where(
        PR.user_id == row.user_id, PR.source == row.source,
        PR.subscription_id == row.subscription_id, PR.starts_at == row.period_start,
        PR.state == "paid"))).scalar()
    return int(got or 0)


def to_membership(row: Any, credits: int) -> Membership:
    return Membership(row.user_id, row.plan_id, row.tier, row.source, row.subscription_id,
                      row.state, row.period_start, row.period_end, row.ends_at,
                      row.next_plan_id, credits)


async def audit(conn: AsyncConnection, ctx: Context, user_id: int, kind: str, *,
                from_tier: str | None, to_tier: str | None, plan_id: str | None,
                reason: str) -> None:
    await conn.execute(insert(membership_events).values(
        user_id=user_id, kind=kind, from_tier=from_tier, to_tier=to_tier, plan_id=plan_id,
        reason=reason[:300], actor=ctx.actor, created_at=ctx.now))


async def move(conn: AsyncConnection, ctx: Context, user_id: int, existing: Any, *,
               kind: str, reason: str, message: tuple[str, dict[str, Any]] | None,
               **values: Any) -> None:
    """Writes the membership (insert or update), the user's tier, the audit row and the
    message. `values` are membership columns; `tier` among them sets the user's tier."""
    values["updated_at"] = ctx.now
    if existing is None:
        await conn.execute(insert(memberships).values(user_id=user_id, created_at=ctx.now,
                                                      **values))
    else:
        await conn.execute(update(memberships).where(M.user_id == user_id).values(**values))
    tier = values.get("tier", existing.tier if existing is not None else FREE)
    if values.get("state") == "ended":
        tier = FREE
    old = await ctx.wallet.set_tier(user_id, tier, conn=conn)
    await audit(conn, ctx, user_id, kind, from_tier=old, to_tier=tier,
                plan_id=values.get("plan_id", existing.plan_id if existing is not None
                                   else None), reason=reason)
    if message is not None:
        await enqueue(conn, user_id=user_id, kind=message[0], payload=message[1], now=ctx.now)
