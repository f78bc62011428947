"""Subscription webhooks reduced to what a membership needs; anything unusable gives None."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from payments._sub_events import creem_subscription, stripe_subscription

SUB = {"id": "sub_1", "customer": "cus_1", "metadata": {"user_id": "7", "plan_id": "plus"},
       "items": {"data": [{"id": "si_1", "price": {"id": "price_plus"}}]}}


def invoice(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "in_1", "status": "paid", "billing_reason": "subscription_cycle",
        "subscription": "sub_1", "payment_intent": "pi_1", "charge": "ch_1",
        "subscription_details": {"metadata": {"user_id": "7", "plan_id": "plus"}},
        "lines": {"data": [{"period": {"start": 1772366400, "end": 1774958400},
                            "price": {"id": "price_plus"}}]}}
    return {**base, **changes}


def test_a_cycle_invoice_is_a_paid_period() -> None:
    ev = stripe_subscription("invoice.paid", invoice())
    assert ev is not None
    assert (ev.kind, ev.subscription_id, ev.user_id, ev.plan_id, ev.price_id) == (
        "paid", "sub_1", 7, "plus", "price_plus")
    assert ev.starts_at == datetime.fromtimestamp(1772366400, UTC)
    assert (ev.payment_ref, ev.charge_ref) == ("pi_1", "ch_1")


def test_invoices_that_are_no_period_give_nothing() -> None:
    assert stripe_subscription("invoice.paid", invoice(billing_reason="manual")) is None
    assert stripe_subscription("invoice.paid", invoice(billing_reason="subscription_update")) \
        is None
    assert stripe_subscription("invoice.paid", invoice(lines={"data": []})) is None
    assert stripe_subscription("invoice.paid", invoice(lines="junk")) is None
    no_sub = invoice()
    del no_sub["subscription"]
    assert stripe_subscription("invoice.paid", no_sub) is None
    bad_period = invoice(lines={"data": [{"period": {"start": "x", "end": True}}]})
    assert stripe_subscription("invoice.paid", bad_period) is None


def test_subscription_updates_and_deletions() -> None:
    ev = stripe_subscription("customer.subscription.updated",
                             {**SUB, "cancel_at_period_end": True})
    assert ev is not None
    assert (ev.kind, ev.cancel_at_period_end, ev.price_id) == (
        "updated", True, "price_plus")
    gone = stripe_subscription("customer.subscription.deleted", SUB)
    assert gone is not None
    assert gone.kind == "ended"
    assert stripe_subscription("customer.subscription.updated", {"id": 5}) is None
    odd_user = stripe_subscription("customer.subscription.updated",
                                   {**SUB, "metadata": {"user_id": "7x"}})
    assert odd_user is not None
    assert odd_user.user_id is None


def test_creem_subscription_events() -> None:
    obj = {"id": "sub_c", "object": "subscription", "product": {"id": "prod_plus"},
           "metadata": {"user_id": "9"}, "last_transaction_id": "tran_1",
           "current_period_start_date": "2026-03-01T12:00:00.000Z",
           "current_period_end_date": "2026-03-31T12:00:00.000Z", "status": "active"}
    paid = creem_subscription("subscription.paid", obj)
    assert paid is not None
    assert (paid.user_id, paid.price_id, paid.payment_ref) == (
        9, "prod_plus", "tran_1")
    assert paid.ends_at == datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert creem_subscription("subscription.paid", {**obj, "current_period_end_date": "?"}) \
        is None
    assert creem_subscription("subscription.active", obj) is None
    ended = creem_subscription("subscription.expired", obj)
    assert ended is not None
    assert ended.kind == "ended"
    scheduled = creem_subscription("subscription.update", {**obj, "status": "scheduled_cancel"})
    assert scheduled is not None
    assert scheduled.cancel_at_period_end is True
