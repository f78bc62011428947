"""Concurrent duplicates: six different event ids for ONE checkout, delivered at once, to the
real server (on PostgreSQL when VIDEOFLY_TEST_DATABASE_URL is set, where they really race).
All six are answered 200, one applies and five are duplicates; the money moves once and no
ERROR reaches the log. Both with the checkout's order row in place and with it lost (the
order is then made from the event, and the racers clash on its unique ids)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import delete

from payments.tables import payments
from tests.fakes import creem as creem_fake
from tests.fakes import stripe as stripe_fake
from tests.integration.test_payments_stack import PayStack

COPIES = 6


def _no_errors(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, "\n".join(f"{r.name}: {r.getMessage()}" for r in errors)


async def _lose_order_rows(pay: PayStack) -> None:
    async with pay.engine.begin() as conn:
        await conn.execute(delete(payments))


async def _six_at_once(pay: PayStack, provider: str, events: list[dict[str, Any]]
                       ) -> list[tuple[int, str]]:
    send = pay.stripe_event if provider == "stripe" else pay.creem_event
    answers = await asyncio.gather(*(send(e) for e in events))
    return [(status, body["outcome"] if body else "") for status, body in answers]


@pytest.mark.parametrize("order_row", ["kept", "lost"])
async def test_six_stripe_event_ids_for_one_session_at_once(
        pay: PayStack, caplog: pytest.LogCaptureFixture, order_row: str) -> None:
    caplog.set_level(logging.INFO)
    user = await pay.buyer()
    session = await pay.stripe_checkout(user)
    if order_row == "lost":
        await _lose_order_rows(pay)
    events = [stripe_fake.completed(session, payment_intent="pi_race") for _ in range(COPIES)]
    assert len({e["id"] for e in events}) == COPIES
    answers = await _six_at_once(pay, "stripe", events)
    assert {status for status, _ in answers} == {200}, answers
    assert Counter(outcome for _, outcome in answers) == {"applied": 1, "duplicate": 5}
    assert await pay.available(user) == 100 + 0  # the starter package, once
    assert await pay.wallet.audit() == []
    _no_errors(caplog)


@pytest.mark.parametrize("order_row", ["kept", "lost"])
async def test_six_creem_event_ids_for_one_checkout_at_once(
        pay: PayStack, caplog: pytest.LogCaptureFixture, order_row: str) -> None:
    caplog.set_level(logging.INFO)
    user = await pay.buyer()
    checkout = await pay.creem_checkout(user)
    if order_row == "lost":
        await _lose_order_rows(pay)
    events = [creem_fake.checkout_completed(checkout, amount=499, order_id="ord_race")
              for _ in range(COPIES)]
    answers = await _six_at_once(pay, "creem", events)
    assert {status for status, _ in answers} == {200}, answers
    assert Counter(outcome for _, outcome in answers) == {"applied": 1, "duplicate": 5}
    assert await pay.available(user) == 100
    assert await pay.wallet.audit() == []
    _no_errors(caplog)
