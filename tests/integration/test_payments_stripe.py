"""Stripe end to end: the Stripe client against a local Checkout Sessions API, then events signed
with the library's scheme posted to the real server. Paid → credited once, however often and
however concurrently delivered; refunds and disputes claw back (debt where spent); refusals
change nothing; events we cannot credit are recorded and answered 200."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import stripe

from payments import ProviderFailed
from tests.fakes import Reply
from tests.fakes import stripe as fake
from tests.integration.test_payments_stack import (
    ADMIN_TELEGRAM_ID,
    ITEM,
    STRIPE_WEBHOOK_SECRET,
    PayStack,
)


async def paid(pay: PayStack, user: int, package: str = "starter",
               payment_intent: str = "pi_1") -> dict[str, Any]:
    """Checks out, posts the signed completion; the session."""
    session = await pay.stripe_checkout(user, package)
    status, body = await pay.stripe_event(fake.completed(session, payment_intent=payment_intent))
    assert (status, body["outcome"]) == (200, "applied")
    return session


# --- checkout ----------------------------------------------------------------------------------


async def test_checkout_creates_a_session_with_the_order_and_an_idempotency_key(
    pay: PayStack,
) -> None:
    user = await pay.buyer()
    url = await pay.payments.checkout(user_id=user, channel="telegram", package_id="starter",
                                        method="stripe", **ITEM)
    assert isinstance(url, str)
    assert url.startswith("https://checkout.stripe.com/c/pay/cs_test_")
    form = pay.stripe.create_calls[0]
    order_id = form["metadata[order_id]"]
    assert form["mode"] == "payment"
    assert form["client_reference_id"] == str(user)
    assert (form["metadata[package_id]"], form["metadata[credits]"]) == ("starter", "100")
    assert form["metadata[user_id]"] == str(user)
    assert form["payment_intent_data[metadata][order_id]"] == order_id
    assert form["line_items[0][price_data][currency]"] == "usd"
    assert form["line_items[0][price_data][unit_amount]"] == "499"
    assert form["line_items[0][price_data][product_data][name]"] == "100 VideoFly credits"
    assert form["line_items[0][quantity]"] == "1"
    assert form["success_url"] == "https://t.me/videofly_bot?start=paid"
    assert pay.stripe.idempotency_keys == [f"videofly-checkout-{order_id}"]
    assert pay.stripe.authorizations == [f"Bearer {pay.stripe.api_key}"]
    order = await pay.order(order_id)
    assert (order.state, order.amount, order.currency, order.credits) == ("pending", 499, "USD",
                                                                          100)
    assert order.checkout_id == url.rsplit("/", 1)[1]


async def test_a_checkout_retried_after_a_network_error_reuses_its_idempotency_key(
    pay: PayStack,
) -> None:
    user = await pay.buyer()
    pay.stripe.script_next("create", Reply(drop=True))
    url = await pay.payments.checkout(user_id=user, channel="telegram", package_id="pro",
                                        method="stripe", **ITEM)
    assert isinstance(url, str)
    keys = pay.stripe.idempotency_keys
    assert len(keys) == 2
    assert keys[0] == keys[1]  # the library retried, with the same key
    assert len(pay.stripe.sessions) == 1
    assert url.endswith(next(iter(pay.stripe.sessions)))


async def test_a_refused_checkout_is_a_provider_failure_without_a_secret_in_it(
    pay: PayStack, caplog: pytest.LogCaptureFixture,
) -> None:
    user = await pay.buyer()
    pay.stripe.script_next("create", Reply(status=400, json={"error": {
        "type": "invalid_request_error", "message": "bad currency"}}))
    with pytest.raises(ProviderFailed) as err, caplog.at_level(logging.WARNING):
        await pay.payments.checkout(user_id=user, channel="telegram", package_id="starter",
                                      method="stripe", **ITEM)
    assert pay.stripe.api_key not in str(err.value) + caplog.text
    assert "InvalidRequestError" in caplog.text


# --- paid --------------------------------------------------------------------------------------


async def test_a_paid_session_credits_once_with_the_package_expiry(pay: PayStack) -> None:
    user = await pay.buyer()
    session = await paid(pay, user)
    assert await pay.available(user) == 100
    grant = [e for e in await pay.wallet.history(user) if e.kind == "grant"]
    assert len(grant) == 1
    balance = await pay.wallet.balance(user)
    assert balance.next_expiry == pay.clock.now + timedelta(days=365)
    order = await pay.order(session["metadata"]["order_id"])
    assert (order.state, order.payment_ref, order.paid_at) == ("paid", "pi_1", pay.clock.now)
    [message] = await pay.outbox("payment.credited")
    assert (message.user_id, message.payload) == (
        user, {"credits": 100, "package_id": "starter", "provider": "stripe"})


async def test_the_same_event_ten_times_in_a_row_credits_once(pay: PayStack) -> None:
    user = await pay.buyer()
    session = await pay.stripe_checkout(user)
    event = fake.completed(session)
    outcomes = [(await pay.stripe_event(event))[1]["outcome"] for _ in range(10)]
    assert outcomes == ["applied"] + ["duplicate"] * 9
    assert await pay.available(user) == 100
    assert len(await pay.outbox("payment.credited")) == 1
    assert len((await pay.order(session["metadata"]["order_id"])).event_ids) == 1


async def test_the_same_event_ten_times_at_once_credits_once(pay: PayStack) -> None:
    user = await pay.buyer()
    session = await pay.stripe_checkout(user)
    event = fake.completed(session)
    async with asyncio.timeout(30):
        results = await asyncio.gather(*(pay.stripe_event(event) for _ in range(10)))
    assert [status for status, _ in results] == [200] * 10
    assert sorted(body["outcome"] for _, body in results) == ["applied"] + ["duplicate"] * 9
    assert await pay.available(user) == 100
    assert len(await pay.outbox("payment.credited")) == 1


async def test_completed_and_async_succeeded_for_one_order_credit_once(pay: PayStack) -> None:
    user = await pay.buyer()
    session = await pay.stripe_checkout(user)
    unpaid = fake.completed(session, payment_status="unpaid")
    assert (await pay.stripe_event(unpaid))[1]["outcome"] == "ignored"
    assert await pay.available(user) == 0
    later = fake.completed(session, kind="checkout.session.async_payment_succeeded")
    again = fake.completed(session)  # a different event id for the same order
    async with asyncio.timeout(30):
        results = await asyncio.gather(pay.stripe_event(later), pay.stripe_event(again))
    assert sorted(body["outcome"] for _, body in results) == ["applied", "duplicate"]
    assert await pay.available(user) == 100


# --- refunds and disputes ---------------------------------------------------------------------


async def test_a_refund_after_the_credits_were_spent_is_debt_paid_by_the_next_top_up(
    pay: PayStack,
) -> None:
    user = await pay.buyer()
    session = await paid(pay, user, payment_intent="pi_spent")
    hold = await pay.wallet.hold(user, 80, ref="job:spent")
    await pay.wallet.settle(hold.id)
    refund = fake.charge_refunded(charge_id="ch_1", payment_intent="pi_spent", amount=499,
                                  refunded=499)
    assert (await pay.stripe_event(refund))[0] == 200
    balance = await pay.wallet.balance(user)
    assert (balance.available, balance.debt) == (-80, 80)
    [reversed_] = await pay.outbox("payment.reversed")
    assert reversed_.payload == {"credits": 100, "debt": 80, "reason": "refund"}
    order = await pay.order(session["metadata"]["order_id"])
    assert (order.state, order.refunded, order.clawed, order.charge_id) == (
        "refunded", 499, 100, "ch_1")
    assert (await pay.stripe_event(refund))[1]["outcome"] == "duplicate"
    await paid(pay, user, payment_intent="pi_next")
    balance = await pay.wallet.balance(user)
    assert (balance.available, balance.debt) == (20, 0)


async def test_partial_refunds_claw_back_in_proportion_cumulatively(pay: PayStack) -> None:
    user = await pay.buyer()
    session = await paid(pay, user, payment_intent="pi_part")
    first = fake.charge_refunded(charge_id="ch_p", payment_intent="pi_part", amount=499,
                                 refunded=100)
    second = fake.charge_refunded(charge_id="ch_p", payment_intent="pi_part", amount=499,
                                  refunded=499)
    await pay.stripe_event(first)
    assert await pay.available(user) == 100 - 21  # ceil(100 × 100 / 499)
    await pay.stripe_event(second)
    assert await pay.available(user) == 0
    await pay.stripe_event(fake.charge_refunded(  # an older total, delivered late: nothing
        charge_id="ch_p", payment_intent="pi_part", amount=499, refunded=100))
    assert await pay.available(user) == 0
    credits = [m.payload["credits"] for m in await pay.outbox("payment.reversed")]
    assert credits == [21, 79]
    assert (await pay.order(session["metadata"]["order_id"])).clawed == 100


async def test_a_refund_before_the_payment_is_acted_on_when_the_payment_arrives(
    pay: PayStack,
) -> None:
    user = await pay.buyer()
    session = await pay.stripe_checkout(user)
    order_id = session["metadata"]["order_id"]
    refund = fake.charge_refunded(charge_id="ch_early", payment_intent="pi_early", amount=499,
                                  refunded=499, metadata={"order_id": order_id})
    assert (await pay.stripe_event(refund))[1]["outcome"] == "applied"
    assert await pay.available(user) == 0
    assert (await pay.order(order_id)).state == "pending"
    await pay.stripe_event(fake.completed(session, payment_intent="pi_early"))
    assert await pay.available(user) == 0
    order = await pay.order(order_id)
    assert (order.state, order.clawed) == ("refunded", 100)
    kinds = [m.kind for m in await pay.outbox()]
    assert kinds == ["payment.credited", "payment.reversed"]


async def test_a_dispute_claws_back_and_tells_the_admins_once(pay: PayStack) -> None:
    user = await pay.buyer()
    session = await paid(pay, user, payment_intent="pi_dispute")
    dispute = fake.dispute_created(charge_id="ch_d", payment_intent="pi_dispute", amount=499)
    assert (await pay.stripe_event(dispute))[0] == 200
    assert await pay.available(user) == 0
    admin = await pay.wallet.open_account("telegram", str(ADMIN_TELEGRAM_ID))
    order_id = session["metadata"]["order_id"]
    [note] = await pay.outbox("admin.dispute")
    assert (note.user_id, note.payload) == (admin, {
        "provider": "stripe", "order_id": order_id, "user_id": user, "credits": 100})
    [reversed_] = await pay.outbox("payment.reversed")
    assert reversed_.payload == {"credits": 100, "debt": 0, "reason": "dispute"}
    another = fake.dispute_created(charge_id="ch_d", payment_intent="pi_dispute", amount=499)
    await pay.stripe_event(another)
    assert len(await pay.outbox("admin.dispute")) == 1
    assert (await pay.order(order_id)).state == "disputed"


# --- refused, and recorded without credit ----------------------------------------------------


async def test_bad_or_missing_signatures_are_401_and_change_nothing(pay: PayStack) -> None:
    user = await pay.buyer()
    session = await pay.stripe_checkout(user)
    payload = fake.completed(session)
    body, headers = fake.sign(payload, STRIPE_WEBHOOK_SECRET)
    stale, stale_headers = fake.sign(payload, STRIPE_WEBHOOK_SECRET,
                                     timestamp=int(time.time()) - 3600)
    before = await pay.counts()
    attempts = [
        (body, {}),  # no header
        (body, fake.sign(payload, "whsec_someone_else")[1]),
        (body.replace(b'"paid"', b'"paid" '), headers),  # the body changed after signing
        (stale, stale_headers),  # older than the 300 s tolerance
        (body, {"Stripe-Signature": "t=1,v1=é"}),  # non-ASCII: refused, not a crash
        (body, {"Stripe-Signature": "garbage"}),
    ]
    for raw, hdrs in attempts:
        status, data = await pay.post("/payments/stripe", raw, hdrs)
        assert (status, data) == (401, {"ok": False, "error": "bad signature"})
    assert await pay.counts() == before
    assert await pay.available(user) == 0


async def test_a_signed_body_that_is_not_an_event_is_400(pay: PayStack) -> None:
    for raw in (b"not json", b"[1, 2]", b'{"object": "event"}'):
        header = stripe.WebhookSignature.generate_signature_header(
            raw.decode(), STRIPE_WEBHOOK_SECRET)
        status, data = await pay.post("/payments/stripe", raw, {"Stripe-Signature": header})
        assert (status, data["error"]) == (400, "malformed event")
    assert await pay.counts() == (0, 0, 0)


async def test_unknown_package_or_user_is_recorded_and_reported_without_credit(
    pay: PayStack, caplog: pytest.LogCaptureFixture,
) -> None:
    """A session we have no order for (a payment link, say) is credited only when it names an
    existing user and package at the package's price."""
    user = await pay.buyer()

    def stray(**meta: str) -> dict[str, Any]:
        session = {"id": f"cs_stray_{len(meta)}_{meta.get('package_id')}", "mode": "payment",
                   "amount_total": 499, "currency": "usd",
                   "client_reference_id": meta.pop("client", str(user)), "metadata": meta}
        return fake.completed(session)

    cases = {
        "unknown package 'gold'": stray(package_id="gold"),
        "unknown user 999999": stray(package_id="starter", client="999999"),
        "paid 499 USD, expected 1999 USD": stray(package_id="pro"),
    }
    with caplog.at_level(logging.WARNING, logger="payments"):
        for note, event in cases.items():
            status, data = await pay.stripe_event(event)
            assert (status, data["outcome"]) == (200, "problem")
            row = await pay.event_row("stripe", str(event["id"]))
            assert (row.outcome, row.note) == ("problem", note)
            assert note in caplog.text
    assert await pay.available(user) == 0
    assert await pay.counts() == (0, 3, 0)
    status, data = await pay.stripe_event(stray(package_id="starter"))  # this one is fine
    assert data["outcome"] == "applied"
    assert await pay.available(user) == 100


async def test_an_amount_that_does_not_match_the_order_credits_nothing(pay: PayStack) -> None:
    user = await pay.buyer()
    session = await pay.stripe_checkout(user)
    status, data = await pay.stripe_event(fake.completed(session, amount_total=1))
    assert (status, data["outcome"]) == (200, "problem")
    order = await pay.order(session["metadata"]["order_id"])
    assert (order.state, order.problem) == ("pending", "paid 1 USD, expected 499 USD")
    assert await pay.available(user) == 0


async def test_revenue_and_recent_orders(pay: PayStack) -> None:
    user = await pay.buyer()
    since = pay.clock.now
    await paid(pay, user, "starter", payment_intent="pi_r1")
    await paid(pay, user, "pro", payment_intent="pi_r2")
    await pay.stripe_event(fake.charge_refunded(charge_id="ch_r", payment_intent="pi_r1",
                                                  amount=499, refunded=99))
    await pay.stripe_checkout(user)  # pending: no revenue
    revenue = await pay.payments.revenue(since)
    assert (revenue.totals, revenue.paid) == ({"USD": Decimal("23.99")}, 2)
    assert (await pay.payments.revenue(since + timedelta(seconds=1))).paid == 0
    recent = await pay.payments.recent_for_user(user, limit=2)
    assert [(r.package_id, r.state) for r in recent] == [("starter", "pending"), ("pro", "paid")]
    assert recent[1].amount == Decimal("19.99")
