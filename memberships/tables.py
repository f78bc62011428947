"""The memberships' tables: the current membership of each user, its paid periods, its audit.

`memberships` has at most one row per user: the plan and tier they have now, where it came from
(`source`: stripe | creem | stars | admin | redeem) and the provider's subscription id, the paid
period that runs (`period_start`..`period_end`) and `ends_at`, when the tier goes back to free
unless a renewal arrives first (period end + grace for paid periods). `state` is active →
canceling (will not renew; keeps the tier to `ends_at`) → ended. `next_plan_id` is a change of
plan that waits for the next renewal. `reminded_for` is the period end a renewal reminder was
sent for, so each period is reminded once.

`membership_periods` has one row per paid period, unique on `period_key` (source, subscription
or charge id, and the period's start): a renewal delivered twice finds its row and grants
nothing more. `credits` is what the period granted (plus an immediate upgrade's difference), so
a refund of the period claws back exactly that. `payment_ref`/`charge_ref` name the provider's
payment (Stripe PaymentIntent and charge, Creem transaction, Stars charge) for refunds.

`membership_events` is the audit: every change of tier or plan with its reason.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    text,
)

from core.db import Id, UTCDateTime, metadata

__all__ = ["membership_events", "membership_periods", "memberships"]

memberships = Table(
    "memberships",
    metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("plan_id", String(64), nullable=True),  # None for a manual tier without a plan
    Column("tier", String(32), nullable=False),
    Column("source", String(16), nullable=False),
    Column("subscription_id", String(255), nullable=True),
    Column("state", String(16), nullable=False),
    Column("period_start", UTCDateTime(), nullable=False),
    Column("period_end", UTCDateTime(), nullable=False),
    Column("ends_at", UTCDateTime(), nullable=False),
    Column("next_plan_id", String(64), nullable=True),
    Column("reminded_for", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("state IN ('active', 'canceling', 'ended')", name="state_known"),
    Index("ix_memberships_due", "ends_at",
          postgresql_where=text("state != 'ended'"), sqlite_where=text("state != 'ended'")),
    Index("ix_memberships_subscription", "source", "subscription_id"),
)

membership_periods = Table(
    "membership_periods",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("period_key", String(200), nullable=False, unique=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("source", String(16), nullable=False),
    Column("subscription_id", String(255), nullable=False),
    Column("plan_id", String(64), nullable=False),
    Column("credits", BigInteger, nullable=False),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("ends_at", UTCDateTime(), nullable=False),
    Column("payment_ref", String(255), nullable=True),
    Column("charge_ref", String(255), nullable=True),
    Column("state", String(16), nullable=False, server_default="paid"),
    Column("created_at", UTCDateTime(), nullable=False),
    CheckConstraint("state IN ('paid', 'refunded')", name="state_known"),
    CheckConstraint("credits >= 0", name="credits_non_negative"),
    Index("ix_membership_periods_user", "user_id", "starts_at"),
    Index("ix_membership_periods_payment", "source", "payment_ref"),
    Index("ix_membership_periods_charge", "source", "charge_ref"),
)

membership_events = Table(
    "membership_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("from_tier", String(32), nullable=True),
    Column("to_tier", String(32), nullable=True),
    Column("plan_id", String(64), nullable=True),
    Column("reason", String(300), nullable=True),
    Column("actor", String(64), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_membership_events_user", "user_id", "id"),
)
