"""Creem end to end: the checkout call against a local Creem, then events signed with Creem's
`creem-signature` HMAC posted to the real server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from payments import PaymentUnavailable, ProviderFailed, UnknownPackage
from tests.fakes import Reply
from tests.fakes import creem as fake
from tests.integration.test_payments_stack import (
    ADMIN_TELEGRAM_ID,
    CREEM_WEBHOOK_SECRET,
    ITEM,
    PayStack,
)


async def test_checkout_posts_the_product_and_our_order_and_returns_the_url(
    pay: PayStack,
) -> None:
    user = await pay.buyer()
    url = await pay.payments.checkout(user_id=user, channel="wechat", package_id="starter",
                                        method="creem", **ITEM)
    assert url == "https://checkout.creem.io/ch_test_1"
    [body] = pay.creem.create_calls
    order_id = body["request_id"]
    assert body == {"product_id": "prod_starter", "request_id": order_id,
                    "success_url": "https://t.me/videofly_bot?start=paid",
                    "metadata": {"order_id": order_id, "user_id": str(user),
                                 "package_id": "starter", "credits": "100"}}
    assert pay.creem.authorizations == [pay.creem.api_key]
    order = await pay.order(order_id)
    assert (order.provider, order.checkout_id, order.state) == ("creem", "ch_test_1", "pending")


async def test_packages_without_a_creem_product_and_creem_failures(pay: PayStack) -> None:
    user = await pay.buyer()
    with pytest.raises(UnknownPackage):  # "pro" has no creem_product_id
        await pay.payments.checkout(user_id=user, channel="wechat", package_id="pro",
                                      method="creem", **ITEM)
    with pytest.raises(PaymentUnavailable):
        await pay.payments.checkout(user_id=user, channel="wechat", package_id="starter",
                                      method="paypal", **ITEM)
    pay.creem.script_next("create", Reply(status=500, json={"error": "oops"}))
    with pytest.raises(ProviderFailed):
        await pay.payments.checkout(user_id=user, channel="wechat", package_id="starter",
                                      method="creem", **ITEM)
    assert len(pay.creem.create_calls) == 1  # no retry of a create without idempotency


async def test_a_completed_checkout_credits_once_even_ten_times_at_once(
    pay: PayStack,
) -> None:
    user = await pay.buyer()
    checkout = await pay.creem_checkout(user)
    event = fake.checkout_completed(checkout, amount=499, order_id="ord_once")
    async with asyncio.timeout(30):
        results = await asyncio.gather(*(pay.creem_event(event) for _ in range(10)))
    assert sorted(body["outcome"] for _, body in results) == ["applied"] + ["duplicate"] * 9
    assert await pay.available(user) == 100
    order = await pay.order(checkout["request_id"])
    assert (order.state, order.payment_ref, order.amount) == ("paid", "ord_once", 499)
    assert len(await pay.outbox("payment.credited")) == 1


async def test_refunds_claw_back_each_refund_once(pay: PayStack) -> None:
    user = await pay.buyer()
    checkout = await pay.creem_checkout(user)
    await pay.creem_event(fake.checkout_completed(checkout, amount=499, order_id="ord_r"))
    half = fake.refund_created(checkout, refund_amount=250, order_amount=499, order_id="ord_r")
    for _ in range(3):
        assert (await pay.creem_event(half))[0] == 200
    assert await pay.available(user) == 100 - 51  # ceil(100 × 250 / 499), once
    rest = fake.refund_created(checkout, refund_amount=249, order_amount=499, order_id="ord_r")
    await pay.creem_event(rest)
    assert await pay.available(user) == 0
    order = await pay.order(checkout["request_id"])
    assert (order.state, order.refunded, order.clawed) == ("refunded", 499, 100)


async def test_a_dispute_claws_back_and_tells_the_admins(pay: PayStack) -> None:
    user = await pay.buyer()
    checkout = await pay.creem_checkout(user)
    await pay.creem_event(fake.checkout_completed(checkout, amount=499, order_id="ord_d"))
    hold = await pay.wallet.hold(user, 30, ref="job:creem")
    await pay.wallet.settle(hold.id)
    assert (await pay.creem_event(fake.dispute_created(checkout, amount=499,
                                                         order_id="ord_d")))[0] == 200
    balance = await pay.wallet.balance(user)
    assert (balance.available, balance.debt) == (-30, 30)
    admin = await pay.wallet.open_account("telegram", str(ADMIN_TELEGRAM_ID))
    [note] = await pay.outbox("admin.dispute")
    assert (note.user_id, note.payload["provider"], note.payload["user_id"]) == (
        admin, "creem", user)
    [reversed_] = await pay.outbox("payment.reversed")
    assert reversed_.payload == {"credits": 100, "debt": 30, "reason": "dispute"}


async def test_bad_or_missing_signatures_are_401_and_change_nothing(pay: PayStack) -> None:
    user = await pay.buyer()
    checkout = await pay.creem_checkout(user)
    event = fake.checkout_completed(checkout, amount=499)
    body, headers = fake.sign(event, CREEM_WEBHOOK_SECRET)
    before = await pay.counts()
    attempts: list[tuple[bytes, dict[str, str]]] = [
        (body, {}),
        (body, fake.sign(event, "another-secret")[1]),
        (body + b" ", headers),
        (body, {"creem-signature": "zz" * 32}),
        (body, {"creem-signature": "ü"}),
    ]
    for raw, hdrs in attempts:
        status, data = await pay.post("/payments/creem", raw, hdrs)
        assert (status, data["error"]) == (401, "bad signature")
    assert await pay.counts() == before
    assert await pay.available(user) == 0


async def test_signed_but_unreadable_bodies_are_400(pay: PayStack) -> None:
    for payload in (b"nope", b"[]", b'{"eventType": "checkout.completed", "object": {}}',
                    b'{"id": "evt_1", "eventType": "checkout.completed", "object": 5}'):
        headers = {"creem-signature": fake.signature(payload, CREEM_WEBHOOK_SECRET)}
        status, data = await pay.post("/payments/creem", payload, headers)
        assert (status, data["error"]) == (400, "malformed event")
    assert await pay.counts() == (0, 0, 0)


async def test_a_wrong_product_or_an_unknown_order_credits_nothing(pay: PayStack) -> None:
    user = await pay.buyer()
    checkout = await pay.creem_checkout(user)
    status, data = await pay.creem_event(
        fake.checkout_completed(checkout, amount=499, product="prod_cheap"))
    assert (status, data["outcome"]) == (200, "problem")
    assert await pay.available(user) == 0
    stray: dict[str, Any] = {"id": "ch_unknown", "product": "prod_starter", "metadata": {}}
    status, data = await pay.creem_event(
        fake.checkout_completed(stray, amount=499, order_id="ord_stray"))
    assert (status, data["outcome"]) == (200, "problem")  # no user, no package named
    refund = fake.refund_created(stray, refund_amount=499, order_amount=499, order_id="ord_x")
    assert (await pay.creem_event(refund))[1]["outcome"] == "problem"
    assert await pay.available(user) == 0
