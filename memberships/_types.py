"""What the memberships module takes in and hands out: plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = ["Membership", "Outcome", "RedeemResult", "SubscriptionEvent"]

Kind = Literal["paid", "updated", "ended"]
RENEWING = ("stripe", "creem", "stars")  # sources that renew by themselves


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionEvent:
    """One provider event about a subscription, reduced to what the membership needs.

    paid: a period `starts_at`..`ends_at` was paid (`payment_ref`/`charge_ref` name the payment).
    updated: the subscription now sells `plan_id`/`price_id` and/or will (not) renew at the end
    of its period (`cancel_at_period_end`). ended: it will not renew (deleted, expired,
    canceled); the member keeps the tier to the end of the period already paid.
    """

    kind: Kind
    source: str  # stripe | creem | stars
    subscription_id: str
    user_id: int | None = None
    plan_id: str | None = None  # ours, from the metadata we set at checkout
    price_id: str | None = None  # the provider's price or product, matched against [[plans]]
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    cancel_at_period_end: bool | None = None
    payment_ref: str | None = None
    charge_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    outcome: str  # applied | ignored | problem | duplicate
    note: str | None = None
    credited: int = 0
    clawed: int = 0


@dataclass(frozen=True, slots=True)
class Membership:
    user_id: int
    plan_id: str | None
    tier: str
    source: str
    subscription_id: str | None
    state: str  # active | canceling | ended
    period_start: datetime
    period_end: datetime
    ends_at: datetime
    next_plan_id: str | None
    credits_this_period: int  # granted for the current paid period (0 for manual ones)

    @property
    def renews(self) -> bool:
        return self.state == "active" and self.source in RENEWING


@dataclass(frozen=True, slots=True)
class RedeemResult:
    credits: int
    tier: str | None  # the membership tier the code gave, if any
    ends_at: datetime | None
