"""The payments' tables: one row per order, and every provider event seen.

`payments` holds one row per order (a checkout we made, or a paid order a provider told us of):
our `order_id`, the provider, the buyer, what was sold (package, credits, their expiry in days)
at what price (`amount` in the currency's minor units; Stars are counted as themselves, currency
XTR), and the provider's ids: `checkout_id` (Stripe Checkout Session id, Creem checkout id),
`payment_ref` (Stripe PaymentIntent id, Creem order id) and `charge_id` (Stripe charge id,
Telegram's `telegram_payment_charge_id`). What was sold is copied at checkout, so a package
edited or removed later does not change an order in flight.

Money state: `state` is pending → paid → refunded | disputed. `refunded` is the cumulative amount
refunded (minor units) and `disputed_at` when a dispute opened; both may arrive before the payment
itself (events come out of order) and are acted on once it is paid. `clawed` is how many credits
were taken back so far: each event moves it towards its target, so no event takes twice.

`payment_events` has one row per (provider, event id): inserted first in the transaction that
applies the event, so a second delivery (even a concurrent one) finds it and changes nothing.
Its `outcome` says what the event did and `note` why it did nothing (unknown package or user,
amount mismatch), for the operator.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
)

from core.db import Id, UTCDateTime, metadata

__all__ = ["STATES", "payment_events", "payments"]

STATES = ("pending", "paid", "refunded", "disputed")

payments = Table(
    "payments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("order_id", String(40), nullable=False, unique=True),
    Column("provider", String(16), nullable=False),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("package_id", String(64), nullable=False),
    Column("credits", BigInteger, nullable=False),
    Column("expires_days", Integer, nullable=False, server_default="0"),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("state", String(16), nullable=False, server_default="pending"),
    Column("checkout_id", String(255), nullable=True),
    Column("payment_ref", String(255), nullable=True),
    Column("charge_id", String(255), nullable=True),
    Column("refunded", BigInteger, nullable=False, server_default="0"),
    Column("disputed_at", UTCDateTime(), nullable=True),
    Column("clawed", BigInteger, nullable=False, server_default="0"),
    Column("event_ids", JSON, nullable=False),
    Column("problem", String(500), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("paid_at", UTCDateTime(), nullable=True),
    CheckConstraint("state IN ('pending', 'paid', 'refunded', 'disputed')", name="state_known"),
    CheckConstraint("credits > 0", name="credits_positive"),
    CheckConstraint("amount >= 0 AND refunded >= 0", name="amounts_non_negative"),
    CheckConstraint("clawed >= 0 AND clawed <= credits", name="clawed_in_range"),
    UniqueConstraint("provider", "checkout_id"),
    UniqueConstraint("provider", "charge_id"),
    Index("ix_payments_payment_ref", "provider", "payment_ref"),
    Index("ix_payments_user_id_id", "user_id", "id"),
    Index("ix_payments_paid_at", "paid_at"),
)

payment_events = Table(
    "payment_events",
    metadata,
    Column("provider", String(16), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("type", String(64), nullable=False),
    Column("order_id", String(40), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("note", String(500), nullable=True),
    Column("received_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("provider", "event_id"),
)
