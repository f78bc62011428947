"""Telegram Stars at the service level: invoices, the pre-checkout check, crediting once per
`telegram_payment_charge_id`, and the admin refund through an injected refundStarPayment.
(The flow through the fake Bot API server belongs with the Telegram adapter.)"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Secrets
from handlers.ports import TopUp
from handlers.types import StarsPayment
from payments import (
    PaymentNotFound,
    Payments,
    PaymentUnavailable,
    RefundFailed,
    StarsInvoice,
    UnknownPackage,
)
from tests.integration.test_payments_stack import (
    ITEM,
    PACKAGES,
    PayStack,
    pay_config,
    pay_secrets,
)
from wallet import Wallet


async def invoice(pay: PayStack, user: int, package: str = "starter") -> StarsInvoice:
    made = await pay.payments.checkout(user_id=user, channel="telegram", package_id=package,
                                         method="stars", **ITEM)
    assert isinstance(made, StarsInvoice)
    return made


def paid(inv: StarsInvoice, charge: str = "tg_charge_1", **changes: object) -> StarsPayment:
    payment = StarsPayment(charge_id=charge, payload=inv.payload, currency="XTR",
                           total_amount=inv.stars)
    return replace(payment, **changes)  # type: ignore[arg-type]


async def test_methods_follow_the_keys_the_channel_and_the_packages(
    engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient,
) -> None:
    def service(secrets: Secrets, **kw: object) -> Payments:
        config = pay_config("http://127.0.0.1:9", "http://127.0.0.1:9", **kw)  # type: ignore
        return Payments(engine=engine, wallet=wallet, config=config, secrets=secrets, http=http)

    full = service(pay_secrets())
    assert full.methods("telegram") == ["stripe", "creem", "stars"]
    assert full.methods("wechat") == ["stripe", "creem"]
    assert service(Secrets({})).methods("telegram") == ["stars"]
    assert service(Secrets({})).methods("console") == []
    no_stars = tuple(replace(p, stars=0, creem_product_id="") for p in PACKAGES)
    assert service(pay_secrets(), packages=no_stars).methods("telegram") == ["stripe"]
    assert [p.id for p in full.packages_for("creem")] == ["starter"]
    topup: TopUp = full  # the chat's port, checked by mypy
    assert topup.methods("telegram")
    too_fine = (replace(PACKAGES[0], price=Decimal("4.999")),)
    with pytest.raises(ValueError, match="decimals"):
        service(pay_secrets(), packages=too_fine)


async def test_an_invoice_names_the_order_and_the_package_in_its_payload(
    pay: PayStack,
) -> None:
    user = await pay.buyer()
    inv = await invoice(pay, user)
    assert (inv.stars, inv.package_id) == (250, "starter")  # the chat writes the words
    assert len(inv.payload.encode()) <= 128
    assert inv.payload.endswith(":starter")
    order = await pay.order(inv.payload.split(":")[1])
    assert (order.provider, order.amount, order.currency, order.state) == (
        "stars", 250, "XTR", "pending")
    with pytest.raises(PaymentUnavailable):
        await pay.payments.checkout(user_id=user, channel="wechat", package_id="starter",
                                      method="stars", **ITEM)
    with pytest.raises(UnknownPackage):
        await pay.payments.checkout(user_id=user, channel="telegram", package_id="gold",
                                      method="stars", **ITEM)


async def test_the_pre_checkout_check(pay: PayStack, engine: AsyncEngine, wallet: Wallet,
                                      http: httpx.AsyncClient) -> None:
    user = await pay.buyer()
    inv = await invoice(pay, user)
    check = pay.payments.check_stars_payload
    assert await check(inv.payload, total_amount=250, currency="XTR")
    assert not await check(inv.payload, total_amount=249, currency="XTR")
    assert not await check(inv.payload, total_amount=250, currency="USD")
    assert not await check("vf1:vf_000000000000000000000000:starter")  # not an order of ours
    assert not await check("something else entirely")
    assert not await check(inv.payload.replace(":starter", ":gold"))
    repriced = tuple(replace(p, stars=300) if p.id == "starter" else p for p in PACKAGES)
    later = Payments(engine=engine, wallet=wallet, secrets=pay_secrets(), http=http,
                     config=pay_config("http://x", "http://x", packages=repriced))
    assert not await later.check_stars_payload(inv.payload, total_amount=250)
    removed = tuple(p for p in PACKAGES if p.id != "starter")
    gone = Payments(engine=engine, wallet=wallet, secrets=pay_secrets(), http=http,
                    config=pay_config("http://x", "http://x", packages=removed))
    assert not await gone.check_stars_payload(inv.payload)


async def test_a_stars_payment_credits_once_per_charge(pay: PayStack) -> None:
    user = await pay.buyer()
    inv = await invoice(pay, user)
    assert await pay.payments.stars_paid(user, paid(inv)) == 100
    assert await pay.payments.stars_paid(user, paid(inv)) == 0
    async with asyncio.timeout(30):
        again = await asyncio.gather(*(pay.payments.stars_paid(user, paid(inv))
                                       for _ in range(5)))
    assert again == [0] * 5
    assert await pay.available(user) == 100
    [message] = await pay.outbox("payment.credited")
    assert message.payload == {"credits": 100, "package_id": "starter", "provider": "stars"}
    order = await pay.order(inv.payload.split(":")[1])
    assert (order.state, order.charge_id) == ("paid", "tg_charge_1")


async def test_concurrent_first_deliveries_credit_once(pay: PayStack) -> None:
    user = await pay.buyer()
    inv = await invoice(pay, user)
    async with asyncio.timeout(30):
        results = await asyncio.gather(*(pay.payments.stars_paid(user, paid(inv))
                                         for _ in range(8)))
    assert sorted(results) == [0] * 7 + [100]
    assert await pay.available(user) == 100


async def test_a_second_charge_for_the_same_invoice_is_an_order_of_its_own(
    pay: PayStack,
) -> None:
    user, friend = await pay.buyer(), await pay.buyer()
    inv = await invoice(pay, user)
    assert await pay.payments.stars_paid(user, paid(inv, "c1")) == 100
    assert await pay.payments.stars_paid(user, paid(inv, "c2")) == 100  # paid twice: twice
    assert await pay.payments.stars_paid(friend, paid(inv, "c3")) == 100  # a forwarded one
    assert (await pay.available(user), await pay.available(friend)) == (200, 100)
    assert len(await pay.payments.recent_for_user(user)) == 2


async def test_a_payment_that_does_not_match_its_invoice_credits_nothing(
    pay: PayStack,
) -> None:
    user = await pay.buyer()
    inv = await invoice(pay, user)
    assert await pay.payments.stars_paid(user, paid(inv, "w1", total_amount=1)) == 0
    assert await pay.payments.stars_paid(user, paid(inv, "w2", currency="USD")) == 0
    assert await pay.payments.stars_paid(user, paid(inv, "w3", payload="junk")) == 0
    assert await pay.available(user) == 0
    row = await pay.event_row("stars", "w1")
    assert (row.outcome, row.note) == ("problem", "paid 1 XTR, expected 250 XTR")


async def test_an_admin_refund_calls_telegram_then_claws_back_once(pay: PayStack) -> None:
    user = await pay.buyer()
    inv = await invoice(pay, user)
    await pay.payments.stars_paid(user, paid(inv, "tg_refund_me"))
    hold = await pay.wallet.hold(user, 40, ref="job:stars")
    await pay.wallet.settle(hold.id)
    assert await pay.payments.refund_stars("tg_refund_me", actor="admin:1") == 100
    telegram_id = int(await pay.wallet_identity(user))
    assert pay.refunds == [(telegram_id, "tg_refund_me")]
    balance = await pay.wallet.balance(user)
    assert (balance.available, balance.debt) == (-40, 40)
    claw = [e for e in await pay.wallet.history(user) if e.kind == "clawback"]
    assert claw[0].actor == "admin:1"
    assert await pay.payments.refund_stars("tg_refund_me", actor="admin:1") == 0
    assert len(pay.refunds) == 1  # not asked of Telegram twice
    [reversed_] = await pay.outbox("payment.reversed")
    assert reversed_.payload == {"credits": 100, "debt": 40, "reason": "refund"}


async def test_a_refund_telegram_refuses_takes_nothing_back(pay: PayStack) -> None:
    user = await pay.buyer()
    inv = await invoice(pay, user)
    await pay.payments.stars_paid(user, paid(inv, "tg_refused"))

    async def refuse(user_id: int, charge_id: str) -> None:
        raise RuntimeError("CHARGE_ALREADY_REFUNDED secret-ish detail")

    pay.payments.stars_refund = refuse
    with pytest.raises(RefundFailed) as err:
        await pay.payments.refund_stars("tg_refused", actor="admin:1")
    assert "secret-ish" not in str(err.value)
    assert await pay.available(user) == 100
    with pytest.raises(PaymentNotFound):
        await pay.payments.refund_stars("no_such_charge", actor="admin:1")
    pay.payments.stars_refund = None
    with pytest.raises(PaymentUnavailable):
        await pay.payments.refund_stars("tg_refused", actor="admin:1")


async def test_a_payload_naming_another_providers_order_gets_an_order_of_its_own(
    pay: PayStack,
) -> None:
    user = await pay.buyer()
    session = await pay.stripe_checkout(user)
    stripe_order = session["metadata"]["order_id"]
    payment = StarsPayment(charge_id="tg_cross", payload=f"vf1:{stripe_order}:starter",
                           currency="XTR", total_amount=250)
    assert await pay.payments.stars_paid(user, payment) == 100
    assert (await pay.order(stripe_order)).state == "pending"  # the Stripe order untouched
    assert {r.provider for r in await pay.payments.recent_for_user(user)} == {"stripe",
                                                                                "stars"}
