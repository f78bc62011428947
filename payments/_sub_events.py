"""Subscription webhooks (Stripe, Creem) reduced to `memberships.SubscriptionEvent`s; no I/O.

Stripe: `invoice.paid` whose `billing_reason` is `subscription_create` or `subscription_cycle`
is one paid period: the subscription line's `period` (`start`, `end`, Unix seconds), the
subscription id (`subscription`, or `parent.subscription_details.subscription` since API
2025-03-31), our metadata (`subscription_details.metadata`, `parent.subscription_details.
metadata`, or the line's, which mirrors the subscription's), the price (`price.id`, or
`pricing.price_details.price`), and the payment (`payment_intent`, `charge`) for refunds.
Other billing reasons (`subscription_update`: a proration) are no new period.
`customer.subscription.updated` gives the price and `cancel_at_period_end`;
`customer.subscription.deleted` (and a status `canceled`) ends the renewals.

Creem: `subscription.paid` is one paid period (`current_period_start_date`,
`current_period_end_date`, ISO 8601; `last_transaction_id` names the payment; the product and
`metadata` as set at checkout); `subscription.update` a change of product; `subscription.canceled`
and `subscription.expired` end the renewals. `subscription.active` is for synchronisation only
(Creem's docs say to grant on `subscription.paid`) and is ignored.

Anything odd (no subscription id, no usable period) gives None: the event is recorded as
ignored, answered 200, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from memberships import SubscriptionEvent

__all__ = ["CREEM_TYPES", "STRIPE_TYPES", "creem_subscription", "stripe_subscription"]

STRIPE_TYPES = ("invoice.paid", "customer.subscription.updated",
                "customer.subscription.deleted")
CREEM_TYPES = ("subscription.paid", "subscription.update", "subscription.canceled",
               "subscription.expired", "subscription.active")
_PERIOD_REASONS = ("subscription_create", "subscription_cycle")
_MAX = 255
_EPOCH_MAX = 32503680000  # year 3000


def _d(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= _MAX else None


def _ref(value: Any) -> str | None:
    return _s(_d(value).get("id")) if isinstance(value, Mapping) else _s(value)


def _user(meta: Mapping[str, Any]) -> int | None:
    v = meta.get("user_id")
    if isinstance(v, str) and v.isascii() and v.isdigit() and len(v) <= 18:
        return int(v)
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def _epoch(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < _EPOCH_MAX:
        return datetime.fromtimestamp(value, UTC)
    return None


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _lines(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    data = _d(obj.get("lines")).get("data")
    return [_d(x) for x in data[:20]] if isinstance(data, list) else []


def stripe_subscription(kind: str, obj: Mapping[str, Any]) -> SubscriptionEvent | None:
    if kind == "invoice.paid":
        return _stripe_invoice(obj)
    sub_id = _s(obj.get("id"))
    if sub_id is None:
        return None
    meta = _d(obj.get("metadata"))
    items = _d(obj.get("items")).get("data")
    item = _d(items[0]) if isinstance(items, list) and items else {}
    ended = kind == "customer.subscription.deleted" or obj.get("status") in (
        "canceled", "incomplete_expired")
    cancel = obj.get("cancel_at_period_end")
    return SubscriptionEvent(
        kind="ended" if ended else "updated", source="stripe", subscription_id=sub_id,
        user_id=_user(meta), plan_id=_s(meta.get("plan_id")),
        price_id=_ref(item.get("price")),
        cancel_at_period_end=cancel if isinstance(cancel, bool) else None)


def _stripe_invoice(obj: Mapping[str, Any]) -> SubscriptionEvent | None:
    if obj.get("billing_reason") not in _PERIOD_REASONS or obj.get("status", "paid") != "paid":
        return None
    parent = _d(_d(obj.get("parent")).get("subscription_details"))
    old = _d(obj.get("subscription_details"))
    lines = _lines(obj)
    line = next((ln for ln in lines if _d(ln.get("period")).get("end")), None)
    if line is None:
        return None
    line_parent = _d(_d(line.get("parent")).get("subscription_item_details"))
    sub_id = (_ref(obj.get("subscription")) or _ref(parent.get("subscription"))
              or _ref(line.get("subscription")) or _ref(line_parent.get("subscription")))
    period = _d(line.get("period"))
    start, end = _epoch(period.get("start")), _epoch(period.get("end"))
    if sub_id is None or start is None or end is None:
        return None
    meta = {**_d(line.get("metadata")), **_d(old.get("metadata")), **_d(parent.get("metadata"))}
    price = _ref(line.get("price")) or _s(_d(_d(line.get("pricing")).get("price_details"))
                                         .get("price"))
    return SubscriptionEvent(
        kind="paid", source="stripe", subscription_id=sub_id, user_id=_user(meta),
        plan_id=_s(meta.get("plan_id")), price_id=price, starts_at=start, ends_at=end,
        payment_ref=_ref(obj.get("payment_intent")) or _s(obj.get("id")),
        charge_ref=_ref(obj.get("charge")))


def creem_subscription(kind: str, obj: Mapping[str, Any]) -> SubscriptionEvent | None:
    if kind == "subscription.active" or obj.get("object", "subscription") != "subscription":
        return None
    sub_id = _s(obj.get("id"))
    if sub_id is None:
        return None
    meta = _d(obj.get("metadata"))
    common: dict[str, Any] = {
        "source": "creem", "subscription_id": sub_id, "user_id": _user(meta),
        "plan_id": _s(meta.get("plan_id")), "price_id": _ref(obj.get("product"))}
    if kind == "subscription.paid":
        start = _iso(obj.get("current_period_start_date"))
        end = _iso(obj.get("current_period_end_date"))
        if start is None or end is None:
            return None
        return SubscriptionEvent(kind="paid", starts_at=start, ends_at=end,
                                 payment_ref=_s(obj.get("last_transaction_id")), **common)
    if kind in ("subscription.canceled", "subscription.expired"):
        return SubscriptionEvent(kind="ended", **common)
    status = obj.get("status")
    cancel = True if status == "scheduled_cancel" else False if status == "active" else None
    return SubscriptionEvent(kind="updated", cancel_at_period_end=cancel, **common)
