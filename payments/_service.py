"""`Payments`: the payments service the chat (`handlers.ports.TopUp`) and the routes use.

Which ways to pay are offered: Stripe when both `STRIPE_SECRET_KEY` and `STRIPE_WEBHOOK_SECRET`
are set (a checkout whose payment could never be credited is not offered; a warning names the
missing one), Creem likewise with `CREEM_API_KEY` and `CREEM_WEBHOOK_SECRET` and a package with a
`creem_product_id`, Stars on Telegram when `[payments] stars` is on and a package has stars.

A checkout first writes the pending order (so the event that pays it finds what was sold, even if
the package changes meanwhile), then asks the provider. Events go through `apply`: one write
transaction that inserts the event's (provider, event id) row (a second delivery, even a
concurrent one, finds it or loses the insert and changes nothing), then applies it to the order
(`_apply`). Stars payments are events too, keyed by `telegram_payment_charge_id`.

Admin accounts told of disputes are resolved before the transaction, since opening an account
is a write of its own. A package whose price does not fit its currency (4.999 USD) stops the
construction with a ValueError: better at start than at a buyer's checkout.

Payments writes no chat text: a checkout answers a URL or a `StarsInvoice` (data), and the
conversation that asked writes the words (the Stripe item's name comes in with the call).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.config import Config, PackageConfig, Secrets
from core.db import read, utcnow, write
from memberships import Memberships
from wallet import Wallet, queries

from . import _apply, _reads
from ._clients import create_creem_checkout
from ._events import PaymentEvent, creem_event, stripe_event
from ._exceptions import (
    BadEvent,
    PaymentNotFound,
    PaymentUnavailable,
    RefundFailed,
    UnknownPackage,
)
from ._money import STARS_CURRENCY, new_order_id, parse_stars_payload, stars_payload, to_minor
from ._plans import PlanSales, parse_plan_payload
from ._types import StarsCharge, StarsInvoice
from .tables import payment_events, payments

if TYPE_CHECKING:
    import stripe

__all__ = ["Payments", "StarsRefund"]

log = logging.getLogger("payments")
StarsRefund = Callable[[int, str], Awaitable[Any]]  # (telegram user id, charge id)
MAX_CHARGE_ID = 200
P, E = payments.c, payment_events.c


class Payments(PlanSales):
    """Top-ups and memberships through Stripe, Creem and Telegram Stars."""

    def __init__(self, *, engine: AsyncEngine, wallet: Wallet, config: Config, secrets: Secrets,
                 http: httpx.AsyncClient, clock: Callable[[], datetime] = utcnow,
                 stars_refund: StarsRefund | None = None,
                 memberships: Memberships | None = None) -> None:
        self.engine, self.wallet, self.config, self.clock = engine, wallet, config, clock
        self.memberships = memberships or Memberships(engine=engine, wallet=wallet,
                                                      config=config, clock=clock)
        self.http = http
        # Set by the Telegram adapter when it exists: it calls refundStarPayment.
        self.stars_refund = stars_refund
        self._secrets = secrets
        self._packages = {p.id: p for p in config.packages}
        prices = [(p.price, p.currency) for p in config.packages]
        prices += [(p.price, p.currency) for p in config.plans]
        for price, currency in prices:
            to_minor(price, currency)  # a price finer than its currency stops the start
        self._ready = {
            "stripe": self._pair("stripe", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"),
            "creem": self._pair("creem", "CREEM_API_KEY", "CREEM_WEBHOOK_SECRET"),
        }
        self._stripe: stripe.StripeClient | None = None
        if self._ready["stripe"]:
            from ._stripe import stripe_client  # the library loads only when Stripe is sold

            self._stripe = stripe_client(secrets["STRIPE_SECRET_KEY"], http,
                                         config.payments.stripe_api_base)
        self._admins: list[int] | None = None

    def _pair(self, name: str, key: str, webhook: str) -> bool:
        has_key, has_hook = bool(self._secrets.get(key)), bool(self._secrets.get(webhook))
        if has_key != has_hook:
            log.warning("%s is not offered: set both %s and %s", name, key, webhook)
        return has_key and has_hook

    # --- what is offered -------------------------------------------------------------------

    def packages_for(self, method: str) -> list[PackageConfig]:
        """The packages sold by `method`, in config order."""
        sold: dict[str, Callable[[PackageConfig], bool]] = {
            "stripe": lambda p: p.price > 0,
            "creem": lambda p: bool(p.creem_product_id),
            "stars": lambda p: p.stars > 0,
        }
        test = sold.get(method)
        return [p for p in self.config.packages if test(p)] if test else []

    def methods(self, channel: str) -> list[str]:
        """The ways to pay offered on `channel`, in display order."""
        offered = [m for m in ("stripe", "creem") if self._ready[m]]
        if channel == "telegram" and self.config.payments.stars:
            offered.append("stars")
        return [m for m in offered if self.packages_for(m)]

    # --- checkout --------------------------------------------------------------------------

    async def checkout(self, *, user_id: int, channel: str, package_id: str, method: str,
                       title: str, description: str) -> str | StarsInvoice:
        """A payment page URL (Stripe, Creem) or a Stars invoice for one package. `title` and
        `description` name the item on Stripe's checkout page (the caller writes them)."""
        if method not in self.methods(channel):
            raise PaymentUnavailable(method)
        pkg = next((p for p in self.packages_for(method) if p.id == package_id), None)
        if pkg is None:
            raise UnknownPackage(package_id)
        order_id = new_order_id()
        if method == "stars":
            amount, currency = pkg.stars, STARS_CURRENCY
        else:
            amount, currency = to_minor(pkg.price, pkg.currency), pkg.currency
        payload = stars_payload(order_id, pkg.id) if method == "stars" else ""
        now = self.clock()
        async with write(self.engine) as conn:
            await conn.execute(insert(payments).values(
                order_id=order_id, provider=method, user_id=user_id, package_id=pkg.id,
                credits=pkg.credits, expires_days=pkg.expires_days, amount=amount,
                currency=currency, event_ids=[], created_at=now, updated_at=now))
        if method == "stars":
            return StarsInvoice(payload=payload, stars=pkg.stars, package_id=pkg.id)
        meta = {"order_id": order_id, "user_id": str(user_id), "package_id": pkg.id,
                "credits": str(pkg.credits)}
        cfg = self.config.payments
        if method == "stripe":
            from ._stripe import create_stripe_session  # loaded with the client, above

            assert self._stripe is not None
            params: dict[str, Any] = {
                "mode": "payment", "client_reference_id": str(user_id), "metadata": meta,
                "payment_intent_data": {"metadata": meta},  # so charges name the order too
                "line_items": [{"quantity": 1, "price_data": {
                    "currency": pkg.currency.lower(), "unit_amount": amount,
                    "product_data": {"name": title, "description": description}}}],
                "success_url": cfg.success_url, "cancel_url": cfg.cancel_url,
            }
            if cfg.stripe_methods:
                params["payment_method_types"] = list(cfg.stripe_methods)
            if "wechat_pay" in cfg.stripe_methods:  # Stripe requires the client kind for it
                params["payment_method_options"] = {"wechat_pay": {"client": "web"}}
            made = await create_stripe_session(self._stripe, params,
                                               idempotency_key=f"videofly-checkout-{order_id}")
        else:
            made = await create_creem_checkout(
                self.http, api_base=cfg.creem_api_base, api_key=self._secrets["CREEM_API_KEY"],
                body={"product_id": pkg.creem_product_id, "request_id": order_id,
                      "success_url": cfg.success_url, "metadata": meta})
        async with write(self.engine) as conn:
            await conn.execute(update(payments).where(P.order_id == order_id)
                               .values(checkout_id=made.id, updated_at=self.clock()))
        return made.url

    # --- webhooks ----------------------------------------------------------------------------

    def webhook_ready(self, provider: str) -> bool:
        return self._ready.get(provider, False)

    def verify_stripe(self, raw: bytes, signature: str | None) -> PaymentEvent:
        return stripe_event(raw, signature, self._secrets.get("STRIPE_WEBHOOK_SECRET", ""))

    def verify_creem(self, raw: bytes, signature: str | None) -> PaymentEvent:
        return creem_event(raw, signature, self._secrets.get("CREEM_WEBHOOK_SECRET", ""))

    async def apply(self, event: PaymentEvent, *, actor: str | None = None,
                    _again: bool = False) -> _apply.Outcome:
        """Applies one verified event once; a repeat (even a concurrent one) changes nothing.
        Another event for the same order committed first (a unique order or checkout id):
        applied once more, it then finds that order and answers as for any repeat."""
        admins = await self._admin_ids() if event.action == "dispute" else []
        now = self.clock()
        key = (E.provider == event.provider) & (E.event_id == event.event_id)
        try:
            async with write(self.engine) as conn:
                if (await conn.execute(select(E.outcome).where(key))).first() is not None:
                    return _apply.Outcome("duplicate", note="event seen before")
                await conn.execute(insert(payment_events).values(
                    provider=event.provider, event_id=event.event_id, type=event.type,
                    outcome="received", received_at=now))
                outcome = await self._apply(conn, event, admins, now, actor)
                await conn.execute(update(payment_events).where(key).values(
                    outcome=outcome.outcome, order_id=outcome.order_id,
                    note=outcome.note[:500] if outcome.note else None))
        except IntegrityError:
            async with read(self.engine) as conn:
                seen = (await conn.execute(select(E.outcome).where(key))).first() is not None
            if seen:
                return _apply.Outcome("duplicate", note="event applied concurrently")
            if _again:
                raise
            return await self.apply(event, actor=actor, _again=True)
        if outcome.outcome == "problem":
            log.warning("%s event %s (%s) credited nothing: %s", event.provider,
                        event.event_id, event.type, outcome.note)
        else:
            log.info("%s event %s (%s): %s order %s", event.provider, event.event_id,
                     event.type, outcome.outcome, outcome.order_id)
        return outcome

    async def _apply(self, conn: AsyncConnection, event: PaymentEvent, admins: list[int],
                     now: datetime, actor: str | None) -> _apply.Outcome:
        """A subscription event goes to the memberships; a refund or dispute that matches no
        order may be of a subscription's period."""
        if event.subscription is not None:
            sub = await self.memberships.apply(conn, event.subscription, actor=actor)
            return _apply.Outcome(sub.outcome, note=sub.note, credited=sub.credited)
        ctx = _apply.Context(wallet=self.wallet, packages=self._packages, admins=admins,
                             now=now, actor=actor)
        outcome = await _apply.apply(conn, ctx, event)
        if outcome.order_id is None and event.action in ("refund", "dispute"):
            period = await self.memberships.refund_period(
                conn, source=event.provider, payment_ref=event.payment_ref,
                charge_ref=event.charge_id, reason=event.action, actor=actor)
            if period is not None:
                return _apply.Outcome(period.outcome, note=period.note, clawed=period.clawed)
        return outcome

    async def _admin_ids(self) -> list[int]:
        if self._admins is None:
            ids = [await self.wallet.open_account("telegram", str(a))
                   for a in self.config.telegram.admins]
            ids += [await self.wallet.open_account("wechat", a) for a in self.config.wechat.admins]
            self._admins = list(dict.fromkeys(ids))
        return self._admins

    # --- Telegram Stars ----------------------------------------------------------------------

    async def check_stars_payload(self, payload: str, *, total_amount: int | None = None,
                                  currency: str | None = None) -> bool:
        """For the pre-checkout answer: the invoice is ours, its package is still sold for
        Stars, at the price the invoice asks."""
        plan_pay = parse_plan_payload(payload)
        if plan_pay is not None:  # a subscription's first payment or a renewal
            plan = self.config.plan(plan_pay[0])
            return plan is not None and plan.stars > 0 and self.config.payments.stars and \
                currency in (None, STARS_CURRENCY) and total_amount in (None, plan.stars)
        parsed = parse_stars_payload(payload)
        pkg = self._packages.get(parsed[1]) if parsed else None
        if parsed is None or pkg is None or pkg.stars <= 0 or not self.config.payments.stars:
            return False
        if currency is not None and currency != STARS_CURRENCY:
            return False
        async with read(self.engine) as conn:
            asked = (await conn.execute(select(P.amount).where(
                P.order_id == parsed[0], P.provider == "stars"))).scalar()
        return asked == pkg.stars and (total_amount is None or total_amount == asked)

    async def stars_paid(self, user_id: int, payment: StarsCharge) -> int:
        """Credits a successful Stars payment once; returns the credits added (0 if seen)."""
        if not 0 < len(payment.charge_id) <= MAX_CHARGE_ID:
            raise BadEvent("unusable telegram_payment_charge_id")
        order_id, package_id = parse_stars_payload(payment.payload) or (None, None)
        outcome = await self.apply(PaymentEvent(
            provider="stars", event_id=payment.charge_id, type="successful_payment",
            action="paid", order_id=order_id, charge_id=payment.charge_id, user_id=user_id,
            package_id=package_id, amount=payment.total_amount, currency=payment.currency))
        return outcome.credited

    async def refund_stars(self, charge_id: str, *, actor: str) -> int:
        """Refunds a Stars payment through Telegram and claws its credits back; returns them."""
        async with read(self.engine) as conn:
            row = (await conn.execute(select(payments).where(
                P.provider == "stars", P.charge_id == charge_id[:MAX_CHARGE_ID]))).first()
            if row is None:
                return await self.refund_stars_period(charge_id, actor=actor)
            if row.state == "pending":
                raise PaymentNotFound("no Stars payment with that charge id")
            telegram_id = await queries.address(conn, row.user_id, "telegram")
        if row.refunded >= row.amount:
            return 0
        if self.stars_refund is None:
            raise PaymentUnavailable("stars", "refunds need the Telegram bot")
        if telegram_id is None or not str(telegram_id).isdigit():
            raise RefundFailed("the payer has no Telegram identity")
        try:
            await self.stars_refund(int(telegram_id), charge_id)
        except Exception as exc:  # the adapter's errors are Telegram's; none may clawback
            log.warning("refundStarPayment for order %s failed: %s", row.order_id,
                        type(exc).__name__)
            raise RefundFailed("Telegram did not refund the payment") from None
        outcome = await self.apply(PaymentEvent(
            provider="stars", event_id=f"refund:{charge_id}", type="refund", action="refund",
            order_id=row.order_id, charge_id=charge_id, refund_amount=row.amount), actor=actor)
        return outcome.clawed

    # --- reads ---------------------------------------------------------------------------------

    async def recent_for_user(self, user_id: int, limit: int = 5) -> list[_reads.PaymentRecord]:
        async with read(self.engine) as conn:
            return await _reads.recent_for_user(conn, user_id, limit)

    async def revenue(self, since: datetime) -> _reads.Revenue:
        async with read(self.engine) as conn:
            return await _reads.revenue(conn, since)
