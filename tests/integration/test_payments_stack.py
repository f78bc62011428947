"""The payment routes served by the real web application, and the stack the other
`test_payments_*` modules share.

`pay_stack()` builds `Payments` over the test database with its Stripe client and Creem calls
pointed at local fakes, serves `webhooks.create_app(WebDeps(..., payments=...))` on 127.0.0.1,
and posts events signed with each provider's own scheme. A recording coroutine stands in for
Telegram's refundStarPayment.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Config, PackageConfig, PaymentsConfig, Secrets, TelegramConfig
from core.db import read
from core.outbox import outbox
from generation import Catalogue, JobService
from payments import Payments
from payments.tables import payment_events, payments
from storage import LocalStorage
from tests.factories import FakeClock
from tests.fakes import creem as creem_fake
from tests.fakes import stripe as stripe_fake
from tests.fakes.creem import CreemFake
from tests.fakes.stripe import StripeFake
from tests.integration.test_webhooks_stack import LINK_SECRET, bound_socket
from wallet import Wallet
from wallet.tables import identities
from webhooks import AccessLogger, Metrics, WebDeps, create_app

# What the chat writes for the starter package (handlers/topup.py); payments passes it on.
ITEM = {"title": "100 VideoFly credits",
        "description": "100 credits for making videos, valid for 365 days."}
STRIPE_WEBHOOK_SECRET = "whsec_test_0123456789abcdef"
CREEM_WEBHOOK_SECRET = "creem_whsec_test_fedcba9876543210"
MAX_BODY = 64 * 1024
WAIT = 15.0
ADMIN_TELEGRAM_ID = 424242

PACKAGES = (
    PackageConfig(id="starter", credits=100, price=Decimal("4.99"), currency="USD", stars=250,
                  expires_days=365, creem_product_id="prod_starter"),
    PackageConfig(id="pro", credits=500, price=Decimal("19.99"), currency="USD", stars=1000,
                  expires_days=0, creem_product_id=""),
)


def pay_config(stripe_url: str, creem_url: str, *,
               packages: tuple[PackageConfig, ...] = PACKAGES) -> Config:
    return Config(
        telegram=TelegramConfig(admins=(ADMIN_TELEGRAM_ID,)), packages=packages,
        payments=PaymentsConfig(success_url="https://t.me/videofly_bot?start=paid",
                                cancel_url="https://t.me/videofly_bot", stars=True,
                                stripe_api_base=stripe_url, creem_api_base=creem_url))


def pay_secrets(**override: str) -> Secrets:
    values = {"STRIPE_SECRET_KEY": StripeFake.api_key,
              "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
              "CREEM_API_KEY": CreemFake.api_key, "CREEM_WEBHOOK_SECRET": CREEM_WEBHOOK_SECRET}
    return Secrets({**values, **override})


@dataclass
class PayStack:
    url: str
    payments: Payments
    wallet: Wallet
    engine: AsyncEngine
    clock: FakeClock
    stripe: StripeFake
    creem: CreemFake
    session: aiohttp.ClientSession
    refunds: list[tuple[int, str]] = field(default_factory=list)

    async def post(self, path: str, body: bytes,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.session.post(self.url + path, data=body, headers=headers or {}) as resp:
            data = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, data

    async def stripe_event(self, payload: dict[str, Any],
                           secret: str = STRIPE_WEBHOOK_SECRET) -> tuple[int, Any]:
        body, headers = stripe_fake.sign(payload, secret)
        return await self.post("/payments/stripe", body, headers)

    async def creem_event(self, payload: dict[str, Any],
                          secret: str = CREEM_WEBHOOK_SECRET) -> tuple[int, Any]:
        body, headers = creem_fake.sign(payload, secret)
        return await self.post("/payments/creem", body, headers)

    async def buyer(self) -> int:
        """A new user with a Telegram identity (numeric, as Telegram's are)."""
        return await self.wallet.open_account("telegram", str(uuid.uuid4().int % 10**12))

    async def stripe_checkout(self, user: int, package: str = "starter") -> dict[str, Any]:
        """Checks out through the Stripe fake; the session it made."""
        url = await self.payments.checkout(user_id=user, channel="telegram",
                                           package_id=package, method="stripe", **ITEM)
        assert isinstance(url, str)
        session_id = url.rsplit("/", 1)[1]
        return self.stripe.sessions[session_id]

    async def creem_checkout(self, user: int, package: str = "starter") -> dict[str, Any]:
        url = await self.payments.checkout(user_id=user, channel="wechat", package_id=package,
                                           method="creem", **ITEM)
        assert isinstance(url, str)
        return self.creem.checkouts[url.rsplit("/", 1)[1]]

    async def wallet_identity(self, user: int) -> str:
        """The user's Telegram id."""
        async with read(self.engine) as conn:
            return str((await conn.execute(select(identities.c.external_id).where(
                identities.c.user_id == user, identities.c.channel == "telegram"))).scalar_one())

    async def available(self, user: int) -> int:
        return (await self.wallet.balance(user)).available

    async def counts(self) -> tuple[int, int, int]:
        """(payment rows, event rows, outbox rows): what a refused request must not change."""
        async with read(self.engine) as conn:
            return tuple([(await conn.execute(select(func.count()).select_from(t))).scalar_one()
                          for t in (payments, payment_events, outbox)])  # type: ignore[return-value]

    async def outbox(self, kind: str | None = None) -> list[Any]:
        query = select(outbox).order_by(outbox.c.id)
        if kind is not None:
            query = query.where(outbox.c.kind == kind)
        async with read(self.engine) as conn:
            return list((await conn.execute(query)).all())

    async def order(self, order_id: str) -> Any:
        async with read(self.engine) as conn:
            return (await conn.execute(
                select(payments).where(payments.c.order_id == order_id))).one()

    async def event_row(self, provider: str, event_id: str) -> Any:
        async with read(self.engine) as conn:
            return (await conn.execute(select(payment_events).where(
                payment_events.c.provider == provider,
                payment_events.c.event_id == event_id))).one()


@asynccontextmanager
async def pay_stack(engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient,
                    clock: FakeClock, tmp_path: Path, *,
                    secrets: Secrets | None = None) -> AsyncIterator[PayStack]:
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with StripeFake() as stripe_server, CreemFake() as creem_server:
        refunds: list[tuple[int, str]] = []

        async def refund_star_payment(user_id: int, charge_id: str) -> bool:
            refunds.append((user_id, charge_id))
            return True

        payments_service = Payments(
            engine=engine, wallet=wallet, config=pay_config(stripe_server.url, creem_server.url),
            secrets=secrets or pay_secrets(), http=http, clock=clock,
            stars_refund=refund_star_payment)
        local = LocalStorage(tmp_path / "media", public_base=url, link_secret=LINK_SECRET,
                             durable=False)
        jobs = JobService(engine=engine, wallet=wallet, catalogue=Catalogue(()), providers={},
                          storage=local, http=http, config=Config().generation, public_url=url,
                          callback_secret="callback-secret", clock=clock)
        app = create_app(WebDeps(engine=engine, jobs=jobs, providers={}, storage=local,
                                 metrics=Metrics(), max_body_bytes=MAX_BODY,
                                 payments=payments_service))
        runner = web.AppRunner(app, access_log_class=AccessLogger, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as s:
                stack = PayStack(url, payments_service, wallet, engine, clock, stripe_server,
                                 creem_server, s)
                stack.refunds = refunds
                yield stack
        finally:
            await runner.cleanup()
            sock.close()


@pytest.fixture
async def stack(engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient,
                clock: FakeClock, tmp_path: Path) -> AsyncIterator[PayStack]:
    async with pay_stack(engine, wallet, http, clock, tmp_path) as built:
        yield built


# --- the routes themselves ---------------------------------------------------------------------


async def test_a_body_over_the_limit_is_413_and_changes_nothing(stack: PayStack) -> None:
    before = await stack.counts()
    for path in ("/payments/stripe", "/payments/creem"):
        status, _ = await stack.post(path, b"{" + b" " * MAX_BODY + b"}",
                                     {"Content-Type": "application/json"})
        assert status == 413
    assert await stack.counts() == before


async def test_only_post_is_allowed(stack: PayStack) -> None:
    async with stack.session.get(stack.url + "/payments/stripe") as resp:
        assert resp.status == 405


async def test_a_provider_without_its_webhook_secret_has_no_route(
    engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient, clock: FakeClock,
    tmp_path: Path,
) -> None:
    secrets = pay_secrets(STRIPE_WEBHOOK_SECRET="", CREEM_API_KEY="")
    async with pay_stack(engine, wallet, http, clock, tmp_path, secrets=secrets) as stack:
        payload = stripe_fake.event("checkout.session.completed", {"id": "cs_x"})
        body, headers = stripe_fake.sign(payload, STRIPE_WEBHOOK_SECRET)
        assert (await stack.post("/payments/stripe", body, headers))[0] == 404
        assert (await stack.creem_event(creem_fake._envelope("checkout.completed", {})))[0] == 404
        assert stack.payments.methods("telegram") == ["stars"]
        assert await stack.counts() == (0, 0, 0)


async def test_routes_exist_only_with_a_payments_service(
    engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient, clock: FakeClock,
    tmp_path: Path,
) -> None:
    local = LocalStorage(tmp_path, public_base="http://127.0.0.1", link_secret=LINK_SECRET)
    jobs = JobService(engine=engine, wallet=wallet, catalogue=Catalogue(()), providers={},
                      storage=local, http=http, config=Config().generation,
                      public_url="http://127.0.0.1", callback_secret="s", clock=clock)
    app = create_app(WebDeps(engine=engine, jobs=jobs, providers={}, storage=local,
                             metrics=Metrics(), max_body_bytes=MAX_BODY))
    assert not [r for r in app.router.routes() if r.name and r.name.startswith("payments")]
