"""Memberships through Stripe, end to end: the Stripe client against the local fake (Checkout
in subscription mode, subscription updates), then `invoice.paid` and subscription events signed
as Stripe signs them, posted to the real web application. Each paid period grants once; tiers
follow; late, repeated and out-of-order events change nothing twice; refunds claw back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import MembershipsConfig
from memberships import NotSubscribed
from tests.factories import FakeClock
from tests.fakes import stripe as fake
from tests.integration._members import (
    DAY,
    GRACE,
    PERIOD,
    at,
    audit_kinds,
    kinds,
    membership,
    period,
    periods,
    stripe_subscribe,
    tier,
    ts,
)
from tests.integration.test_payments_stack import PayStack, pay_stack
from wallet import Wallet


async def applied(pay: PayStack, event: dict, outcome: str = "applied") -> None:  # type: ignore[type-arg]
    status, body = await pay.stripe_event(event)
    assert (status, body["outcome"]) == (200, outcome)


async def subscribed(pay: PayStack, plan: str = "plus") -> tuple[int, dict, int]:  # type: ignore[type-arg]
    """A buyer subscribed to `plan` with the first period paid: (user, subscription, base)."""
    user = await pay.buyer()
    sub = await stripe_subscribe(pay, user, plan)
    base = ts(pay.clock.now)
    start, end = period(base)
    await applied(pay, fake.invoice_paid(sub, start=start, end=end,
                                         reason="subscription_create"))
    return user, sub, base


@pytest.fixture
async def immediate(engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient,
                    clock: FakeClock, tmp_path: Path) -> AsyncIterator[PayStack]:
    policy = MembershipsConfig(upgrade_policy="immediate")
    async with pay_stack(engine, wallet, http, clock, tmp_path, memberships=policy) as built:
        yield built


async def test_checkout_is_a_subscription_session_naming_the_user_and_plan(
    pay: PayStack,
) -> None:
    user = await pay.buyer()
    url = await pay.payments.subscribe(user_id=user, channel="telegram", plan_id="plus",
                                       method="stripe", title="Plus", description="monthly")
    assert url.startswith("https://checkout.stripe.com/c/pay/cs_test_")
    form = pay.stripe.create_calls[0]
    assert form["mode"] == "subscription"
    assert form["line_items[0][price]"] == "price_plus"
    assert form["subscription_data[metadata][user_id]"] == str(user)
    assert form["subscription_data[metadata][plan_id]"] == "plus"
    assert form["client_reference_id"] == str(user)
    assert str(pay.stripe.idempotency_keys[0]).startswith("videofly-subscribe-")
    assert await membership(pay, user) is None  # nothing until it is paid


async def test_the_first_paid_invoice_grants_the_plan_and_its_tier(pay: PayStack) -> None:
    user, sub, base = await subscribed(pay)
    start, end = period(base)
    assert await pay.available(user) == 300
    balance = await pay.wallet.balance(user)
    assert balance.next_expiry == at(end) + GRACE
    assert await tier(pay, user) == "plus"
    m = await membership(pay, user)
    assert (m.plan_id, m.tier, m.state, m.source, m.subscription_id) == (
        "plus", "plus", "active", "stripe", sub["id"])
    assert (m.period_start, m.period_end, m.ends_at) == (at(start), at(end), at(end) + GRACE)
    assert await kinds(pay, user) == ["membership.started"]
    assert await audit_kinds(pay, user) == [("subscribed", "free", "plus")]
    [grant] = [e for e in await pay.wallet.history(user) if e.kind == "grant"]
    assert grant.ref is not None
    assert sub["id"] in grant.ref
    current = await pay.payments.memberships.current(user)
    assert current is not None
    assert current.credits_this_period == 300
    assert current.renews


async def test_a_renewal_delivered_twice_grants_once_and_a_cycle_renews(pay: PayStack) -> None:
    user, sub, base = await subscribed(pay)
    start, end = period(base, 1)
    renewal = fake.invoice_paid(sub, start=start, end=end, payment_intent="pi_2", charge="ch_2")
    await applied(pay, renewal)
    await applied(pay, renewal, "duplicate")  # the same event id again
    again = fake.invoice_paid(sub, start=start, end=end, payment_intent="pi_2", charge="ch_2")
    await applied(pay, again, "duplicate")  # another event for the same period
    assert await pay.available(user) == 600
    m = await membership(pay, user)
    assert (m.period_start, m.period_end, m.state) == (at(start), at(end), "active")
    assert await kinds(pay, user) == ["membership.started", "membership.renewed"]
    assert len(await periods(pay, user)) == 2


async def test_the_2025_invoice_shape_is_read_as_well(pay: PayStack) -> None:
    user = await pay.buyer()
    sub = await stripe_subscribe(pay, user, "pro")
    start, end = period(ts(pay.clock.now))
    await applied(pay, fake.invoice_paid(sub, start=start, end=end, basil=True,
                                         reason="subscription_create"))
    assert (await pay.available(user), await tier(pay, user)) == (1000, "pro")


async def test_an_update_before_the_first_invoice_changes_nothing_then_the_invoice_does(
    pay: PayStack,
) -> None:
    user = await pay.buyer()
    sub = await stripe_subscribe(pay, user)
    await applied(pay, fake.subscription_updated(sub), "ignored")  # no membership yet
    start, end = period(ts(pay.clock.now))
    await applied(pay, fake.invoice_paid(sub, start=start, end=end,
                                         reason="subscription_create"))
    assert (await pay.available(user), await tier(pay, user)) == (300, "plus")


async def test_an_old_period_paid_after_a_newer_one_grants_but_moves_nothing_back(
    pay: PayStack,
) -> None:
    user, sub, base = await subscribed(pay)
    s2, e2 = period(base, 2)
    s1, e1 = period(base, 1)
    await applied(pay, fake.invoice_paid(sub, start=s2, end=e2, payment_intent="pi_3"))
    await applied(pay, fake.invoice_paid(sub, start=s1, end=e1, payment_intent="pi_2"))
    assert await pay.available(user) == 900
    m = await membership(pay, user)
    assert (m.period_start, m.period_end) == (at(s2), at(e2))
    assert (await kinds(pay, user))[-1] == "membership.credited"


async def test_a_proration_invoice_is_no_new_period(pay: PayStack) -> None:
    user, sub, base = await subscribed(pay)
    start, end = period(base)
    await applied(pay, fake.invoice_paid(sub, start=start + DAY, end=end,
                                         reason="subscription_update"), "ignored")
    assert await pay.available(user) == 300


async def test_an_upgrade_waits_for_the_next_cycle_by_default(pay: PayStack) -> None:
    user, sub, base = await subscribed(pay)
    m = await pay.payments.change_plan(user, "pro")
    assert (m.tier, m.plan_id, m.next_plan_id) == ("plus", "plus", "pro")
    [(sub_id, form)] = pay.stripe.subscription_calls
    assert sub_id == sub["id"]
    assert form["items[0][price]"] == "price_pro"
    assert form["proration_behavior"] == "none"
    assert form["metadata[plan_id]"] == "pro"
    assert await tier(pay, user) == "plus"
    assert await pay.available(user) == 300
    await applied(pay, fake.subscription_updated(sub), "ignored")  # Stripe says the same
    start, end = period(base, 1)
    await applied(pay, fake.invoice_paid(sub, start=start, end=end))
    assert (await tier(pay, user), await pay.available(user)) == ("pro", 1300)
    m2 = await membership(pay, user)
    assert (m2.plan_id, m2.next_plan_id) == ("pro", None)
    assert [k for k, _, _ in await audit_kinds(pay, user)] == [
        "subscribed", "change_scheduled", "changed"]


async def test_an_immediate_upgrade_grants_the_prorated_difference_once(
    immediate: PayStack,
) -> None:
    pay = immediate
    user, sub, _base = await subscribed(pay)
    pay.clock.advance(days=10)  # 20 of 30 days left
    m = await pay.payments.change_plan(user, "pro")
    assert (m.tier, m.plan_id, m.next_plan_id) == ("pro", "pro", None)
    assert pay.stripe.subscription_calls[-1][1]["proration_behavior"] == "always_invoice"
    assert await tier(pay, user) == "pro"
    assert await pay.available(user) == 300 + (1000 - 300) * 20 // 30  # 766
    assert not await pay.outbox("membership.upgraded")  # the chat that asked answers it
    await applied(pay, fake.subscription_updated(sub), "ignored")
    assert await pay.available(user) == 766
    [p] = await periods(pay, user)
    assert p.credits == 766  # a refund of the period takes the difference back too


async def test_a_downgrade_waits_for_the_next_cycle_even_under_immediate(
    immediate: PayStack,
) -> None:
    pay = immediate
    user, sub, base = await subscribed(pay, "pro")
    m = await pay.payments.change_plan(user, "plus")
    assert (m.tier, m.next_plan_id) == ("pro", "plus")
    assert pay.stripe.subscription_calls[-1][1]["proration_behavior"] == "none"
    start, end = period(base, 1)
    await applied(pay, fake.invoice_paid(sub, start=start, end=end))
    assert (await tier(pay, user), await pay.available(user)) == ("plus", 1300)


async def test_cancel_keeps_the_tier_to_the_end_of_the_paid_period(pay: PayStack) -> None:
    user, sub, base = await subscribed(pay)
    _start, end = period(base)
    m = await pay.payments.cancel_subscription(user)
    assert (m.state, m.ends_at, m.tier) == ("canceling", at(end), "plus")
    assert pay.stripe.subscription_calls[-1][1] == {"cancel_at_period_end": "true"}
    assert sub["cancel_at_period_end"] is True
    await applied(pay, fake.subscription_updated(sub), "ignored")
    memberships = pay.payments.memberships
    assert await memberships.end_due(at(end) - GRACE) == 0
    assert await tier(pay, user) == "plus"
    await applied(pay, fake.subscription_deleted(sub), "ignored")  # already canceling
    assert await memberships.end_due(at(end)) == 1
    assert await memberships.end_due(at(end)) == 0
    assert await tier(pay, user) == "free"
    assert (await kinds(pay, user))[-1] == "membership.ended"
    assert "membership.canceled" not in await kinds(pay, user)  # answered in the chat
    assert await memberships.current(user) is None
    with pytest.raises(NotSubscribed):
        await pay.payments.cancel_subscription(user)
    # The period's credits lapse through the wallet's own expiry, after the grace period.
    assert await pay.wallet.expire(at(end) + GRACE) == 300


async def test_a_cancel_undone_at_stripe_renews_again(pay: PayStack) -> None:
    user, sub, base = await subscribed(pay)
    await pay.payments.cancel_subscription(user)
    sub["cancel_at_period_end"] = False
    await applied(pay, fake.subscription_updated(sub))
    m = await membership(pay, user)
    assert (m.state, m.ends_at) == ("active", at(period(base)[1]) + GRACE)


async def test_a_period_not_renewed_lapses_after_the_grace_period_once(pay: PayStack) -> None:
    user, _, base = await subscribed(pay)
    end = at(period(base)[1])
    memberships = pay.payments.memberships
    assert await memberships.end_due(end + GRACE / 2) == 0
    assert await tier(pay, user) == "plus"
    ended = [await memberships.end_due(end + GRACE) for _ in range(3)]
    assert ended == [1, 0, 0]
    assert await tier(pay, user) == "free"
    assert await audit_kinds(pay, user) == [("subscribed", "free", "plus"),
                                            ("ended", "plus", "free")]


async def test_a_renewal_before_the_sweep_keeps_the_member(pay: PayStack) -> None:
    user, sub, base = await subscribed(pay)
    s1, e1 = period(base, 1)
    await applied(pay, fake.invoice_paid(sub, start=s1, end=e1))
    assert await pay.payments.memberships.end_due(at(e1)) == 0
    assert await tier(pay, user) == "plus"


async def test_reminders_go_three_days_before_each_renewal_once(pay: PayStack) -> None:
    _user, sub, base = await subscribed(pay)
    memberships = pay.payments.memberships
    end = at(period(base)[1])
    assert await memberships.remind_due(end - 4 * GRACE) == 0  # 8 days before
    assert [await memberships.remind_due(end - 3 * GRACE / 2) for _ in range(2)] == [1, 0]
    s1, e1 = period(base, 1)
    await applied(pay, fake.invoice_paid(sub, start=s1, end=e1))
    assert await memberships.remind_due(at(e1) - GRACE) == 1
    reminders = await pay.outbox("membership.reminder")
    assert [r.payload["renews_at"] for r in reminders] == [end.isoformat(), at(e1).isoformat()]


async def test_a_refunded_period_is_clawed_back_and_ends_the_membership(pay: PayStack) -> None:
    user, _sub, _base = await subscribed(pay)
    refund = fake.charge_refunded(charge_id="ch_sub_1", payment_intent="pi_sub_1", amount=999,
                                  refunded=999)
    await applied(pay, refund)
    assert await pay.available(user) == 0
    assert await tier(pay, user) == "free"
    assert (await membership(pay, user)).state == "ended"
    [msg] = await pay.outbox("membership.reversed")
    assert msg.payload == {"credits": 300, "debt": 0, "reason": "refund", "ended": True}
    again = fake.charge_refunded(charge_id="ch_sub_1", payment_intent="pi_sub_1", amount=999,
                                 refunded=999)
    await applied(pay, again, "duplicate")
    assert await pay.available(user) == 0


async def test_a_disputed_period_after_spending_leaves_debt(pay: PayStack) -> None:
    user, _sub, _base = await subscribed(pay)
    hold = await pay.wallet.hold(user, 200, ref="job:1")
    await pay.wallet.settle(hold.id)
    await applied(pay, fake.dispute_created(charge_id="ch_sub_1", payment_intent="pi_sub_1",
                                            amount=999))
    balance = await pay.wallet.balance(user)
    assert (balance.available, balance.debt) == (-200, 200)  # the next grants pay it first
    assert await tier(pay, user) == "free"


async def test_a_cycle_long_after_an_ended_membership_starts_it_again(pay: PayStack) -> None:
    user, sub, base = await subscribed(pay)
    await pay.payments.memberships.end_due(at(period(base)[1]) + GRACE)
    s2, e2 = period(base, 2)
    await applied(pay, fake.invoice_paid(sub, start=s2, end=e2))
    assert (await tier(pay, user), (await membership(pay, user)).state) == ("plus", "active")
    assert PERIOD == 30 * DAY


async def test_one_period_delivered_concurrently_as_different_events_grants_once(
    pay: PayStack,
) -> None:
    import asyncio

    user = await pay.buyer()
    sub = await stripe_subscribe(pay, user)
    start, end = period(ts(pay.clock.now))
    events = [fake.invoice_paid(sub, start=start, end=end, reason="subscription_create")
              for _ in range(6)]
    answers = await asyncio.gather(*(pay.stripe_event(e) for e in events))
    assert sorted(body["outcome"] for _, body in answers) == ["applied"] + ["duplicate"] * 5
    assert await pay.available(user) == 300
    assert await kinds(pay, user) == ["membership.started"]


async def test_a_cancel_made_at_stripe_is_told_through_the_outbox(pay: PayStack) -> None:
    user, sub, base = await subscribed(pay)
    sub["cancel_at_period_end"] = True
    await applied(pay, fake.subscription_updated(sub))
    [msg] = await pay.outbox("membership.canceled")
    assert msg.payload["ends_at"] == at(period(base)[1]).isoformat()
    assert (await membership(pay, user)).state == "canceling"
