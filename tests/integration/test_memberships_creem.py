"""Memberships through Creem, end to end: a checkout of the plan's subscription product, then
Creem's subscription events signed as Creem signs them, posted to the real web application."""

from __future__ import annotations

from typing import Any

from tests.fakes import creem as fake
from tests.integration._members import audit_kinds, kinds, membership, tier
from tests.integration.test_payments_stack import PayStack

P1 = ("2026-03-01T12:00:00.000Z", "2026-03-31T12:00:00.000Z")
P2 = ("2026-03-31T12:00:00.000Z", "2026-04-30T12:00:00.000Z")


async def applied(pay: PayStack, event: dict[str, Any], outcome: str = "applied") -> None:
    status, body = await pay.creem_event(event)
    assert (status, body["outcome"]) == (200, outcome)


async def subscribed(pay: PayStack, plan: str = "plus") -> tuple[int, dict[str, Any]]:
    user = await pay.buyer()
    url = await pay.payments.subscribe(user_id=user, channel="wechat", plan_id=plan,
                                       method="creem", title="Plus", description="monthly")
    checkout = pay.creem.checkouts[url.rsplit("/", 1)[1]]
    await applied(pay, fake.subscription_event("subscription.paid", checkout, start=P1[0],
                                               end=P1[1], transaction="tran_1"))
    return user, checkout


async def test_checkout_sells_the_plans_product_with_our_ids(pay: PayStack) -> None:
    user, _checkout = await subscribed(pay)
    body = pay.creem.create_calls[0]
    assert body["product_id"] == "prod_plus"
    assert body["metadata"] == {"user_id": str(user), "plan_id": "plus"}
    assert (await pay.available(user), await tier(pay, user)) == (300, "plus")
    assert await kinds(pay, user) == ["membership.started"]


async def test_the_checkout_event_of_a_subscription_credits_nothing_by_itself(
    pay: PayStack,
) -> None:
    user, checkout = await subscribed(pay)
    completed = fake.checkout_completed(checkout, amount=999)
    completed["object"]["subscription"] = {"id": "sub_creem_1", "object": "subscription"}
    await applied(pay, completed, "ignored")
    active = fake.subscription_event("subscription.active", checkout, start=P1[0], end=P1[1])
    await applied(pay, active, "ignored")
    assert await pay.available(user) == 300


async def test_renewals_grant_once_each(pay: PayStack) -> None:
    user, checkout = await subscribed(pay)
    again = fake.subscription_event("subscription.paid", checkout, start=P1[0], end=P1[1])
    await applied(pay, again, "duplicate")
    renewal = fake.subscription_event("subscription.paid", checkout, start=P2[0], end=P2[1],
                                      transaction="tran_2")
    await applied(pay, renewal)
    await applied(pay, renewal, "duplicate")
    assert await pay.available(user) == 600
    assert (await membership(pay, user)).period_end.isoformat().startswith("2026-04-30")


async def test_a_product_change_waits_for_the_next_period(pay: PayStack) -> None:
    user, checkout = await subscribed(pay)
    m = await pay.payments.change_plan(user, "pro")
    assert m.next_plan_id == "pro"
    assert pay.creem.subscription_calls == [("sub_creem_1", "upgrade", {
        "product_id": "prod_pro", "update_behavior": "proration-none"})]
    await applied(pay, fake.subscription_event("subscription.update", checkout,
                                               product="prod_pro"), "ignored")
    await applied(pay, fake.subscription_event("subscription.paid", checkout, start=P2[0],
                                               end=P2[1], product="prod_pro",
                                               transaction="tran_2"))
    assert (await tier(pay, user), await pay.available(user)) == ("pro", 1300)


async def test_cancel_and_then_creems_canceled_event(pay: PayStack) -> None:
    user, checkout = await subscribed(pay)
    m = await pay.payments.cancel_subscription(user)
    assert m.state == "canceling"
    assert pay.creem.subscription_calls == [("sub_creem_1", "cancel", {})]
    await applied(pay, fake.subscription_event("subscription.canceled", checkout,
                                               status="canceled"), "ignored")
    assert await tier(pay, user) == "plus"
    assert [k for k, _, _ in await audit_kinds(pay, user)] == ["subscribed", "canceled"]


async def test_an_expired_subscription_ends_at_its_period_end(pay: PayStack) -> None:
    user, checkout = await subscribed(pay)
    await applied(pay, fake.subscription_event("subscription.expired", checkout,
                                               status="expired"))
    m = await membership(pay, user)
    assert (m.state, m.ends_at.isoformat()[:10]) == ("canceling", "2026-03-31")
    assert await pay.payments.memberships.end_due(m.ends_at) == 1
    assert await tier(pay, user) == "free"


async def test_a_refunded_subscription_payment_is_clawed_back(pay: PayStack) -> None:
    user, _checkout = await subscribed(pay)
    await applied(pay, fake.subscription_refund(transaction="tran_1", amount=999))
    assert (await pay.available(user), await tier(pay, user)) == (0, "free")
    [msg] = await pay.outbox("membership.reversed")
    assert msg.payload["credits"] == 300
