"""Telegram Stars subscriptions in the payments service: the invoice link through the adapter's
port, each recurring `successful_payment` a period, cancel through editUserStarSubscription.
(The Bot API calls themselves are the Telegram adapter's, tested against the fake Bot API.)"""

from __future__ import annotations

from datetime import timedelta

import pytest

from payments import BadEvent, PlanInvoice
from tests.integration._members import kinds, membership, tier
from tests.integration.test_payments_stack import PayStack

MONTH = timedelta(seconds=2_592_000)


async def stars_subscriber(pay: PayStack) -> tuple[int, list[PlanInvoice], list[tuple]]:  # type: ignore[type-arg]
    links: list[PlanInvoice] = []
    edits: list[tuple] = []  # type: ignore[type-arg]

    async def link(invoice: PlanInvoice) -> str:
        links.append(invoice)
        return "https://t.me/$sub_invoice"

    async def edit(telegram_id: int, charge_id: str, canceled: bool) -> bool:
        edits.append((telegram_id, charge_id, canceled))
        return True

    pay.payments.stars_subscription_link = link
    pay.payments.stars_subscription_edit = edit
    return await pay.buyer(), links, edits


async def test_a_stars_subscription_is_an_invoice_link_with_a_30_day_period(
    pay: PayStack,
) -> None:
    user, links, _ = await stars_subscriber(pay)
    plus = pay.payments.config.plan("plus")
    assert plus is not None
    assert pay.payments.plan_methods("telegram", plus) == ["stripe", "creem", "stars"]
    assert "stars" not in pay.payments.plan_methods("wechat", plus)
    url = await pay.payments.subscribe(user_id=user, channel="telegram", plan_id="plus",
                                       method="stars", title="Plus", description="30 days")
    assert url == "https://t.me/$sub_invoice"
    [invoice] = links
    assert (invoice.stars, invoice.subscription_period) == (500, 2_592_000)
    assert await pay.payments.check_stars_payload(invoice.payload, total_amount=500,
                                                  currency="XTR")
    assert not await pay.payments.check_stars_payload(invoice.payload, total_amount=1,
                                                      currency="XTR")


async def test_each_recurring_payment_is_a_period_granted_once(pay: PayStack) -> None:
    user, links, edits = await stars_subscriber(pay)
    await pay.payments.subscribe(user_id=user, channel="telegram", plan_id="plus",
                                 method="stars", title="Plus", description="30 days")
    payload = links[0].payload
    first_end = pay.clock.now + MONTH
    paid = pay.payments.stars_subscription_paid
    got = await paid(user, charge_id="stxA", payload=payload, total_amount=500, currency="XTR",
                     expires_at=first_end)
    assert got == 300
    assert await paid(user, charge_id="stxA", payload=payload, total_amount=500,
                      currency="XTR", expires_at=first_end) == 0
    assert await tier(pay, user) == "plus"
    got = await paid(user, charge_id="stxB", payload=payload, total_amount=500, currency="XTR",
                     expires_at=first_end + MONTH)
    assert (got, await pay.available(user)) == (300, 600)
    assert await kinds(pay, user) == ["membership.started", "membership.renewed"]
    m = await pay.payments.cancel_subscription(user)
    assert m.state == "canceling"
    assert m.ends_at == first_end + MONTH
    telegram = int(await pay.wallet_identity(user))
    assert edits == [(telegram, "stxA", True)]
    with pytest.raises(BadEvent):
        await paid(user, charge_id="stxC", payload="vf1:nope", total_amount=500,
                   currency="XTR", expires_at=first_end)
    assert (await membership(pay, user)).source == "stars"


async def test_an_admin_refund_of_a_period_goes_through_telegram_and_claws_back(
    pay: PayStack,
) -> None:
    user, links, _ = await stars_subscriber(pay)
    await pay.payments.subscribe(user_id=user, channel="telegram", plan_id="plus",
                                 method="stars", title="Plus", description="30 days")
    await pay.payments.stars_subscription_paid(
        user, charge_id="stxR", payload=links[0].payload, total_amount=500, currency="XTR",
        expires_at=pay.clock.now + MONTH)
    assert await pay.payments.refund_stars("stxR", actor="admin:1") == 300
    assert pay.refunds == [(int(await pay.wallet_identity(user)), "stxR")]
    assert (await pay.available(user), await tier(pay, user)) == (0, "free")
    assert await pay.payments.refund_stars("stxR", actor="admin:1") == 0
    assert len(pay.refunds) == 1
