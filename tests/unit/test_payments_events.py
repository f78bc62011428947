"""Webhook verification and parsing: Stripe through the library's own signature check, Creem's
HMAC; what each event type is reduced to."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from payments import BadEvent, BadSignature
from payments._events import creem_event, stripe_event
from tests.fakes import creem as creem_fake
from tests.fakes import stripe as stripe_fake

SECRET = "whsec_unit"
ORDER = "vf_0123456789abcdef01234567"


def stripe_signed(payload: dict[str, Any], **kw: Any) -> tuple[bytes, str]:
    body, headers = stripe_fake.sign(payload, SECRET, **kw)
    return body, headers["Stripe-Signature"]


def session(**changes: Any) -> dict[str, Any]:
    return {"id": "cs_1", "mode": "payment", "amount_total": 499, "currency": "usd",
            "client_reference_id": "7", "payment_intent": "pi_1",
            "metadata": {"order_id": ORDER, "package_id": "starter", "credits": "100",
                         "user_id": "7"}, **changes}


def test_a_paid_session_is_read_whole() -> None:
    ev = stripe_event(*stripe_signed(stripe_fake.completed(session(), payment_intent="pi_1")),
                      SECRET)
    assert (ev.action, ev.order_id, ev.checkout_id, ev.payment_ref) == (
        "paid", ORDER, "cs_1", "pi_1")
    assert (ev.user_id, ev.package_id, ev.credits, ev.amount, ev.currency) == (
        7, "starter", 100, 499, "USD")


def test_what_does_not_pay_is_ignored() -> None:
    unpaid = stripe_fake.completed(session(), payment_status="unpaid")
    assert stripe_event(*stripe_signed(unpaid), SECRET).action == "ignore"
    subscription = stripe_fake.completed(session(mode="subscription"))
    assert stripe_event(*stripe_signed(subscription), SECRET).action == "ignore"
    other = stripe_fake.event("customer.created", {"id": "cus_1"})
    assert stripe_event(*stripe_signed(other), SECRET).action == "ignore"


def test_odd_values_are_dropped_not_trusted() -> None:
    odd = session(client_reference_id="-3", amount_total=True, currency="dollars",
                  payment_intent={"id": "pi_expanded"},
                  metadata={"order_id": "not-ours", "credits": "1e3", "user_id": "x"})
    paid = stripe_fake.event("checkout.session.completed", {**odd, "payment_status": "paid"})
    ev = stripe_event(*stripe_signed(paid), SECRET)
    assert (ev.user_id, ev.amount, ev.currency, ev.order_id, ev.credits) == (
        None, None, None, None, None)
    assert ev.payment_ref == "pi_expanded"


def test_refunds_and_disputes() -> None:
    refund = stripe_fake.charge_refunded(charge_id="ch_1", payment_intent="pi_1", amount=499,
                                         refunded=200, metadata={"order_id": ORDER})
    ev = stripe_event(*stripe_signed(refund), SECRET)
    assert (ev.action, ev.charge_id, ev.refund_total, ev.order_id) == (
        "refund", "ch_1", 200, ORDER)
    dispute = stripe_fake.dispute_created(charge_id="ch_1", payment_intent="pi_1", amount=499)
    ev = stripe_event(*stripe_signed(dispute), SECRET)
    assert (ev.action, ev.charge_id, ev.payment_ref) == ("dispute", "ch_1", "pi_1")


def test_stripe_signatures_are_the_librarys() -> None:
    body, header = stripe_signed(stripe_fake.completed(session()))
    for bad in (None, "", "t=1", "x" * 5000, "t=1,v1=ñ", header.replace("v1=", "v1=0")):
        with pytest.raises(BadSignature):
            stripe_event(body, bad, SECRET)
    with pytest.raises(BadSignature):
        stripe_event(body, header, "whsec_other")
    with pytest.raises(BadSignature):
        stripe_event(body, header, "")
    old_body, old = stripe_signed(stripe_fake.completed(session()),
                                  timestamp=int(time.time()) - 301)
    with pytest.raises(BadSignature):
        stripe_event(old_body, old, SECRET)


def test_a_signed_stripe_body_without_an_id_or_type_is_malformed() -> None:
    for payload in ({"object": "event", "type": "x", "data": {"object": {}}},
                    {"object": "event", "id": "evt_1", "data": {}}):
        with pytest.raises(BadEvent):
            stripe_event(*stripe_signed(payload), SECRET)
    body = b"\xff\xfe"
    with pytest.raises(BadEvent):
        stripe_event(body, "t=1,v1=00", SECRET)


def creem_signed(payload: dict[str, Any]) -> tuple[bytes, str]:
    body, headers = creem_fake.sign(payload, SECRET)
    return body, headers["creem-signature"]


CHECKOUT = {"id": "ch_1", "product": "prod_s", "request_id": ORDER,
            "metadata": {"user_id": "7", "package_id": "starter", "credits": "100"}}


def test_creem_events_are_read() -> None:
    done = creem_fake.checkout_completed(CHECKOUT, amount=499, order_id="ord_1")
    ev = creem_event(*creem_signed(done), SECRET)
    assert (ev.action, ev.order_id, ev.checkout_id, ev.payment_ref, ev.product_id) == (
        "paid", ORDER, "ch_1", "ord_1", "prod_s")
    assert (ev.user_id, ev.package_id, ev.amount, ev.currency) == (7, "starter", 499, "USD")
    refund = creem_fake.refund_created(CHECKOUT, refund_amount=100, order_amount=499,
                                       order_id="ord_1")
    ev = creem_event(*creem_signed(refund), SECRET)
    assert (ev.action, ev.refund_amount, ev.order_id, ev.checkout_id, ev.payment_ref) == (
        "refund", 100, ORDER, "ch_1", "ord_1")
    dispute = creem_fake.dispute_created(CHECKOUT, amount=499, order_id="ord_1")
    ev = creem_event(*creem_signed(dispute), SECRET)
    assert (ev.action, ev.checkout_id, ev.payment_ref) == ("dispute", "ch_1", "ord_1")
    other = {"id": "evt_9", "eventType": "subscription.paid", "object": {}}
    assert creem_event(*creem_signed(other), SECRET).action == "ignore"


def test_creem_signatures_are_checked_in_constant_time_and_case_insensitively() -> None:
    body, signature = creem_signed(creem_fake.checkout_completed(CHECKOUT, amount=499))
    assert creem_event(body, signature.upper(), SECRET).action == "paid"
    for bad in (None, "", signature[:-1], "ü" * 64, "0" * 64):
        with pytest.raises(BadSignature):
            creem_event(body, bad, SECRET)
    with pytest.raises(BadSignature):
        creem_event(body, signature, "")


@pytest.mark.parametrize("payload", [b"{", b"[]", b'{"id": "e", "object": {}}',
                                     b'{"id": "e", "eventType": "x", "object": []}',
                                     json.dumps({"id": 5, "eventType": "x", "object": {}})
                                     .encode()])
def test_a_signed_creem_body_that_is_no_event_is_malformed(payload: bytes) -> None:
    with pytest.raises(BadEvent):
        creem_event(payload, creem_fake.signature(payload, SECRET), SECRET)
