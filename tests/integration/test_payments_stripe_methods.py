"""`[payments] stripe_methods`: the Checkout Session asks Stripe for those payment methods
(WeChat Pay with its required `client = "web"`), checked against the local Stripe; WeChat is
never offered Stars."""

from __future__ import annotations

from dataclasses import replace

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from payments import Payments
from tests.factories import FakeClock
from tests.fakes.creem import CreemFake
from tests.fakes.stripe import StripeFake
from tests.integration.test_payments_stack import pay_config, pay_secrets
from wallet import Wallet


async def checkout_forms(engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient,
                         *choices: tuple[str, ...]) -> tuple[list[dict[str, str]], list[str]]:
    """One Stripe checkout from WeChat per `choices` (its stripe_methods); the forms the local
    Stripe got, and the ways to pay WeChat is offered."""
    async with StripeFake() as stripe, CreemFake() as creem:
        base = pay_config(stripe.url, creem.url)
        user = await wallet.open_account("wechat", "oBuyer")
        for methods in choices:
            config = replace(base, payments=replace(base.payments, stripe_methods=methods))
            payments = Payments(engine=engine, wallet=wallet, config=config,
                                secrets=pay_secrets(), http=http, clock=FakeClock())
            url = await payments.checkout(user_id=user, channel="wechat", package_id="starter",
                                          method="stripe", title="100 credits",
                                          description="VideoFly")
            assert isinstance(url, str)
            assert url.startswith("https://checkout.stripe.com/")
        return stripe.create_calls, payments.methods("wechat")


async def test_the_session_asks_for_the_configured_methods(
        engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient) -> None:
    [form], offered = await checkout_forms(engine, wallet, http,
                                           ("card", "wechat_pay", "alipay"))
    assert [form[f"payment_method_types[{i}]"] for i in range(3)] == \
        ["card", "wechat_pay", "alipay"]
    assert form["payment_method_options[wechat_pay][client]"] == "web"
    assert offered == ["stripe", "creem"]  # Stars never on WeChat


async def test_without_methods_stripe_chooses(engine: AsyncEngine, wallet: Wallet,
                                              http: httpx.AsyncClient) -> None:
    [default, card_only], _ = await checkout_forms(engine, wallet, http, (), ("card",))
    assert not any(k.startswith("payment_method") for k in default)
    assert card_only["payment_method_types[0]"] == "card"
    assert not any(k.startswith("payment_method_options") for k in card_only)
