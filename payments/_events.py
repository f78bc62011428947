"""Provider webhooks in, `PaymentEvent` out: verification and parsing, no database.

Stripe: `stripe.Webhook.construct_event` checks the `Stripe-Signature` header (HMAC-SHA256 of
`{t}.{body}`, 300 s tolerance) with the library's own code (imported by `stripe_event`, on the
first Stripe webhook: the library is heavy and most processes never read one). Creem:
`creem-signature` is the hex HMAC-SHA256 of the raw body, compared in constant time.

A body that is not signed right raises `BadSignature`; one whose envelope cannot be read (not
JSON, no event id or type) raises `BadEvent`. A signed event whose content is odd (a paid session
without an amount, a refund naming nothing we know) is not an error here: it becomes an event
that the service records with a note, so the provider is answered 200 and stops retrying.

Stripe ids used: `checkout.session.*` → session id (`checkout_id`), `payment_intent`
(`payment_ref`), `metadata.order_id`; `charge.refunded` → charge id, `payment_intent`,
`amount_refunded` (cumulative), `metadata.order_id` (copied from `payment_intent_data`);
`charge.dispute.created` → `charge`, `payment_intent`. Creem: `checkout.completed` →
`request_id` (our order id), checkout id, `order.id` (`payment_ref`), `order.amount_paid` or
`order.amount`, `product`; `refund.created` → `refund_amount` (this refund alone), the order and
checkout it names; `dispute.created` → the order and checkout.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._exceptions import BadEvent, BadSignature
from ._money import is_order_id

__all__ = ["Action", "PaymentEvent", "creem_event", "stripe_event"]

Action = Literal["paid", "refund", "dispute", "ignore"]
MAX_HEADER = 2048  # a signature header longer than this is not one
_MAX_ID = 255


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentEvent:
    """One verified provider event, reduced to what moves money."""

    provider: str  # "stripe" | "creem"
    event_id: str
    type: str
    action: Action
    order_id: str | None = None  # ours, when the event names it
    checkout_id: str | None = None
    payment_ref: str | None = None
    charge_id: str | None = None
    user_id: int | None = None
    package_id: str | None = None
    credits: int | None = None
    product_id: str | None = None
    amount: int | None = None  # paid, minor units
    currency: str | None = None
    refund_total: int | None = None  # cumulative refunded (Stripe)
    refund_amount: int | None = None  # this refund alone (Creem)


def _text(value: Any, limit: int = _MAX_ID) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def _count(value: Any) -> int | None:
    """A non-negative integer, from an int or a string of digits (Stripe metadata)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def _ref(value: Any) -> str | None:
    """An id given either as a string or as an expanded object with an `id`."""
    if isinstance(value, Mapping):
        return _text(value.get("id"))
    return _text(value)


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _currency(value: Any) -> str | None:
    text = _text(value, 3)
    return text.upper() if text and len(text) == 3 and text.isalpha() else None


def _order(value: Any) -> str | None:
    return value if is_order_id(value) else None


def _envelope_text(value: Any, what: str) -> str:
    text = _text(value)
    if text is None:
        raise BadEvent(f"event without a usable {what}")
    return text


# --- Stripe -----------------------------------------------------------------------------------

_STRIPE_ACTIONS: dict[str, Action] = {
    "checkout.session.completed": "paid",
    "checkout.session.async_payment_succeeded": "paid",
    "charge.refunded": "refund",
    "charge.dispute.created": "dispute",
}


def stripe_event(raw: bytes, header: str | None, secret: str) -> PaymentEvent:
    """Verifies a Stripe webhook with the library and reduces it to a `PaymentEvent`."""
    # The library compares with hmac.compare_digest, which raises TypeError on non-ASCII text.
    if not header or len(header) > MAX_HEADER or not header.isascii():
        raise BadSignature("missing or malformed Stripe-Signature")
    import stripe  # here, not at start-up: see the module docstring

    try:
        event = stripe.Webhook.construct_event(raw, header, secret)
        data = event.to_dict()
    except stripe.SignatureVerificationError:
        raise BadSignature("bad Stripe signature") from None
    except (ValueError, TypeError, AttributeError, KeyError):
        raise BadEvent("unreadable Stripe event") from None
    event_id = _envelope_text(data.get("id"), "id")
    kind = _envelope_text(data.get("type"), "type")
    obj = _dict(_dict(data.get("data")).get("object"))
    action = _STRIPE_ACTIONS.get(kind, "ignore")

    def make(**kw: Any) -> PaymentEvent:
        return PaymentEvent(provider="stripe", event_id=event_id, type=kind[:64], **kw)

    meta = _dict(obj.get("metadata"))
    if action == "paid":
        paid = obj.get("payment_status") == "paid" and obj.get("mode", "payment") == "payment"
        user = _count(obj.get("client_reference_id"))
        return make(
            action="paid" if paid else "ignore",
            order_id=_order(meta.get("order_id")), checkout_id=_text(obj.get("id")),
            payment_ref=_ref(obj.get("payment_intent")),
            user_id=user if user is not None else _count(meta.get("user_id")),
            package_id=_text(meta.get("package_id"), 64), credits=_count(meta.get("credits")),
            amount=_count(obj.get("amount_total")), currency=_currency(obj.get("currency")))
    if action == "refund":
        return make(
            action="refund", order_id=_order(meta.get("order_id")),
            charge_id=_text(obj.get("id")), payment_ref=_ref(obj.get("payment_intent")),
            refund_total=_count(obj.get("amount_refunded")),
            amount=_count(obj.get("amount")), currency=_currency(obj.get("currency")))
    if action == "dispute":
        return make(
            action="dispute", charge_id=_ref(obj.get("charge")),
            payment_ref=_ref(obj.get("payment_intent")),
            amount=_count(obj.get("amount")), currency=_currency(obj.get("currency")))
    return make(action="ignore")


# --- Creem ------------------------------------------------------------------------------------

_CREEM_ACTIONS: dict[str, Action] = {
    "checkout.completed": "paid",
    "refund.created": "refund",
    "dispute.created": "dispute",
}


def creem_signature(raw: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def creem_event(raw: bytes, header: str | None, secret: str) -> PaymentEvent:
    """Verifies a Creem webhook (`creem-signature`) and reduces it to a `PaymentEvent`."""
    if not secret:
        raise BadSignature("no Creem webhook secret")
    if not header or len(header) > MAX_HEADER or not header.isascii():
        raise BadSignature("missing or malformed creem-signature")
    expected = creem_signature(raw, secret)
    if not hmac.compare_digest(expected.encode(), header.strip().lower().encode()):
        raise BadSignature("bad Creem signature")
    try:
        data = json.loads(raw)
    except ValueError:
        raise BadEvent("unreadable Creem event") from None
    if not isinstance(data, dict):
        raise BadEvent("unreadable Creem event")
    event_id = _envelope_text(data.get("id"), "id")
    kind = _envelope_text(data.get("eventType"), "eventType")
    obj = data.get("object")
    if not isinstance(obj, dict):
        raise BadEvent("Creem event without an object")
    action = _CREEM_ACTIONS.get(kind, "ignore")

    def make(**kw: Any) -> PaymentEvent:
        return PaymentEvent(provider="creem", event_id=event_id, type=kind[:64], **kw)

    if action == "ignore":
        return make(action="ignore")
    checkout = obj if action == "paid" else _dict(obj.get("checkout"))
    order = _dict(obj.get("order"))
    meta = {**_dict(checkout.get("metadata")), **_dict(obj.get("metadata"))}
    order_id = _order(checkout.get("request_id")) or _order(meta.get("order_id"))
    ids = {"order_id": order_id, "payment_ref": _ref(obj.get("order")),
           "checkout_id": _text(obj.get("id")) if action == "paid" else _ref(obj.get("checkout"))}
    if action == "paid":
        paid = obj.get("status", "completed") == "completed" and \
            order.get("status", "paid") == "paid"
        amount = _count(order.get("amount_paid"))
        return make(
            **ids, action="paid" if paid else "ignore",
            user_id=_count(meta.get("user_id")), package_id=_text(meta.get("package_id"), 64),
            credits=_count(meta.get("credits")),
            product_id=_ref(obj.get("product")) or _ref(order.get("product")),
            amount=amount if amount is not None else _count(order.get("amount")),
            currency=_currency(order.get("currency")))
    if action == "refund":
        return make(
            **ids, action="refund", refund_amount=_count(obj.get("refund_amount")),
            currency=_currency(obj.get("refund_currency") or order.get("currency")))
    return make(**ids, action="dispute", amount=_count(obj.get("amount")),
                currency=_currency(obj.get("currency")))
