"""Memberships: plans that grant credits every paid period and the tier that unlocks limits.

    memberships = Memberships(engine=engine, wallet=wallet, config=config)  # bot/app.py
    payments = Payments(..., memberships=memberships)   # subscription events and checkouts
    scheduler: memberships.end_due(), memberships.remind_due()

Decisions:
- Domain rules only: no channel or HTTP code. Providers' events arrive as `SubscriptionEvent`s
  (payments/ parses and verifies them) and are applied inside the payment event's transaction,
  so the event record, the grant, the tier, the audit row and the outbox message commit together.
- A paid period is the unit of money: recorded once per (source, subscription, period start),
  granting the plan's credits once with source `subscription`, expiring at the period's end plus
  `[memberships] grace_hours`. The tier lasts as long (end + grace) unless the subscription was
  canceled, when it lasts to the end of the paid period exactly.
- The tier lives in `users.tier` (the wallet's table, set through `Wallet.set_tier`); every change
  is in `membership_events` with its reason. The limits read it (`[tiers.<name>]`).
- Changes of plan wait for the next renewal; `upgrade_policy = "immediate"` applies upgrades now
  with the prorated credit difference. A refund or dispute of a period claws back its credits
  and ends the membership.
- Outbox kinds: membership.started / renewed {plan_id, tier, credits, renews_at},
  membership.credited {plan_id, credits}, membership.upgraded {plan_id, tier, credits},
  membership.change_scheduled {plan_id, tier, at}, membership.canceled {plan_id, tier, ends_at},
  membership.resumed {plan_id, renews_at}, membership.reminder {plan_id, renews_at},
  membership.ended {tier, plan_id}, membership.manual {tier, ends_at},
  membership.reversed {credits, debt, reason, ended}.

Modules: `_service` (Memberships), `_apply` (events), `_sweeps` (scheduler), `_book` (rows and
audit), `_rules` (keys, proration, tier order), `_types`, `tables`. Exceptions: `_exceptions`.
"""

from ._book import Context
from ._exceptions import MembershipError, NotSubscribed, UnknownPlan, UnknownTier
from ._rules import is_upgrade, period_key, prorated
from ._service import Memberships
from ._types import Membership, Outcome, RedeemResult, SubscriptionEvent

__all__ = [
    "Context",
    "Membership",
    "MembershipError",
    "Memberships",
    "NotSubscribed",
    "Outcome",
    "RedeemResult",
    "SubscriptionEvent",
    "UnknownPlan",
    "UnknownTier",
    "is_upgrade",
    "period_key",
    "prorated",
]
