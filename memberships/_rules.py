"""Plain rules with no I/O: period keys, proration, the order of tiers.

An upgrade under `immediate` grants the credit difference for the part of the period left,
rounded down (the member has paid the prorated difference, or nothing, for it):
(new − old) × seconds left ÷ seconds in the period. A change is an upgrade when the new plan's
tier comes later in `[tiers]` (their order in the config: free, plus, pro), or the same tier
with more credits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from core.config import PlanConfig

__all__ = ["grant_key", "is_upgrade", "period_key", "prorated", "rank"]


def period_key(source: str, subscription_id: str, starts_at: datetime) -> str:
    """One paid period: the subscription (or Stars charge) and its start, to the second."""
    return f"{source}:{subscription_id[:150]}:{int(starts_at.astimezone(UTC).timestamp())}"


def grant_key(period: str) -> str:
    return f"membership:{period}"


def rank(tiers: Sequence[str], tier: str) -> int:
    return tiers.index(tier) if tier in tiers else 0


def is_upgrade(tiers: Sequence[str], old: PlanConfig | None, new: PlanConfig) -> bool:
    if old is None:
        return True
    a, b = rank(tiers, old.tier), rank(tiers, new.tier)
    return b > a or (b == a and new.credits > old.credits)


def prorated(old_credits: int, new_credits: int, *, now: datetime, start: datetime,
             end: datetime) -> int:
    """The credit difference for the rest of the period, rounded down; 0 when nothing is left."""
    total = (end - start).total_seconds()
    left = (end - max(now, start)).total_seconds()
    if total <= 0 or left <= 0 or new_credits <= old_credits:
        return 0
    return int((new_credits - old_credits) * int(left) // int(total))
