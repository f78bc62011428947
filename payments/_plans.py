"""Selling memberships: subscription checkouts, cancels and plan changes at the providers.

`PlanSales` is mixed into `Payments` (it uses its config, secrets, clients and `apply`).

- Stripe: a Checkout Session with `mode="subscription"`: the plan's `stripe_price_id`, or an
  inline recurring price (`interval` day × `period_days`); `subscription_data.metadata` carries
  our user and plan ids, so every invoice and subscription event names them. Cancel sets
  `cancel_at_period_end`; a change of plan swaps the subscription item's price
  (`proration_behavior` `always_invoice` for an immediate upgrade, `none` otherwise) and the
  metadata's plan id.
- Creem: a checkout of the plan's subscription product with the same metadata;
  `POST /v1/subscriptions/{id}/cancel` and `/upgrade`.
- Telegram Stars: an invoice link with `subscription_period` 30 days, made by the Telegram
  adapter (`stars_subscription_link`, a port, like `stars_refund`); its payload names the plan
  and a nonce that identifies the subscription across renewals. Each `successful_payment` of it
  is a paid period (`stars_subscription_paid`). Cancel goes through `editUserStarSubscription`
  (`stars_subscription_edit`). Stars subscriptions have a fixed price: no change of plan; the
  chat offers the new plan's subscription instead.

A cancel or change made here is applied to the membership at once, as the provider's own event
will say the same later (and then changes nothing). The texts of the checkout page (`title`,
`description`) are written by the caller, in the buyer's language.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Config, PlanConfig, Secrets
from core.db import read
from memberships import Membership, Memberships, NotSubscribed, SubscriptionEvent, UnknownPlan
from memberships import is_upgrade as _is_upgrade
from wallet import queries

from ._apply import Outcome
from ._clients import create_creem_checkout
from ._events import PaymentEvent
from ._exceptions import (
    BadEvent,
    PaymentNotFound,
    PaymentUnavailable,
    ProviderFailed,
    RefundFailed,
)
from ._money import STARS_CURRENCY, to_minor

if TYPE_CHECKING:
    import stripe

__all__ = ["STARS_PERIOD", "PlanInvoice", "PlanSales", "parse_plan_payload", "plan_payload"]

log = logging.getLogger("payments")
STARS_PERIOD = 2_592_000  # 30 days: the only subscription period Telegram allows
_PREFIX = "vfs1"
_MAX_CHARGE_ID = 200


@dataclass(frozen=True, slots=True)
class PlanInvoice:
    """What the Telegram adapter needs for `createInvoiceLink` with a subscription."""

    title: str
    description: str
    payload: str
    stars: int
    subscription_period: int = STARS_PERIOD


StarsLink = Callable[[PlanInvoice], Awaitable[str]]
StarsEdit = Callable[[int, str, bool], Awaitable[Any]]  # (telegram user, charge id, canceled)


def plan_payload(plan_id: str) -> str:
    payload = f"{_PREFIX}:{plan_id}:{secrets.token_hex(8)}"
    if len(payload.encode()) > 128:
        raise ValueError(f"plan id too long for a Stars payload: {plan_id[:64]!r}")
    return payload


def parse_plan_payload(payload: str) -> tuple[str, str] | None:
    """(plan id, nonce) from a subscription payload we made, or None."""
    parts = payload.split(":") if len(payload) <= 128 else []
    if len(parts) != 3 or parts[0] != _PREFIX or not parts[1]:
        return None
    nonce = parts[2]
    ok = len(nonce) == 16 and all(c in "0123456789abcdef" for c in nonce)
    return (parts[1], nonce) if ok else None


class PlanSales:
    """Subscription checkouts, cancels and changes; mixed into `Payments`."""

    engine: AsyncEngine
    config: Config
    http: httpx.AsyncClient
    clock: Callable[[], datetime]
    memberships: Memberships
    _secrets: Secrets
    _stripe: stripe.StripeClient | None
    _ready: dict[str, bool]
    stars_refund: Callable[[int, str], Awaitable[Any]] | None
    # Ports the Telegram adapter sets: createInvoiceLink with a subscription period, and
    # editUserStarSubscription.
    stars_subscription_link: StarsLink | None = None
    stars_subscription_edit: StarsEdit | None = None

    if TYPE_CHECKING:  # `Payments.apply`: records a provider's event once and acts on it
        async def apply(self, event: PaymentEvent, *, actor: str | None = None) -> Outcome: ...

    def plan_methods(self, channel: str, plan: PlanConfig) -> list[str]:
        """The ways to pay for `plan` offered on `channel`, in display order."""
        offered = []
        if self._ready["stripe"] and plan.price > 0:
            offered.append("stripe")
        if self._ready["creem"] and plan.creem_product_id:
            offered.append("creem")
        if channel == "telegram" and self.config.payments.stars and plan.stars > 0 and \
                self.stars_subscription_link is not None:
            offered.append("stars")
        return offered

    def _plan(self, plan_id: str) -> PlanConfig:
        plan = self.config.plan(plan_id)
        if plan is None:
            raise UnknownPlan(plan_id)
        return plan

    async def subscribe(self, *, user_id: int, channel: str, plan_id: str, method: str,
                        title: str, description: str) -> str:
        """A payment page URL (Stripe, Creem) or a Stars subscription invoice link."""
        plan = self._plan(plan_id)
        if method not in self.plan_methods(channel, plan):
            raise PaymentUnavailable(method)
        meta = {"user_id": str(user_id), "plan_id": plan.id}
        cfg = self.config.payments
        nonce = secrets.token_hex(12)
        if method == "stars":
            assert self.stars_subscription_link is not None
            return await self.stars_subscription_link(PlanInvoice(
                title=title, description=description, payload=plan_payload(plan.id),
                stars=plan.stars))
        if method == "stripe":
            assert self._stripe is not None
            item: dict[str, Any] = {"quantity": 1}
            if plan.stripe_price_id:
                item["price"] = plan.stripe_price_id
            else:
                item["price_data"] = {
                    "currency": plan.currency.lower(),
                    "unit_amount": to_minor(plan.price, plan.currency),
                    "recurring": {"interval": "day", "interval_count": plan.period_days},
                    "product_data": {"name": title, "description": description}}
            from ._stripe import create_stripe_session  # loaded with the client

            made = await create_stripe_session(self._stripe, {
                "mode": "subscription", "client_reference_id": str(user_id), "metadata": meta,
                "subscription_data": {"metadata": meta}, "line_items": [item],
                "success_url": cfg.success_url, "cancel_url": cfg.cancel_url,
            }, idempotency_key=f"videofly-subscribe-{nonce}")
            return made.url
        made = await create_creem_checkout(
            self.http, api_base=cfg.creem_api_base, api_key=self._secrets["CREEM_API_KEY"],
            body={"product_id": plan.creem_product_id, "request_id": f"sub_{nonce}",
                  "success_url": cfg.success_url, "metadata": meta})
        return made.url

    async def stars_subscription_paid(self, user_id: int, *, charge_id: str, payload: str,
                                      total_amount: int, currency: str,
                                      expires_at: datetime) -> int:
        """One paid period of a Stars subscription (`successful_payment` with
        `subscription_expiration_date`); returns the credits granted (0 when seen before)."""
        parsed = parse_plan_payload(payload)
        if not 0 < len(charge_id) <= _MAX_CHARGE_ID or parsed is None:
            raise BadEvent("not a Stars subscription payment of ours")
        plan = self.config.plan(parsed[0])
        if plan is None or currency != STARS_CURRENCY or total_amount != plan.stars:
            log.warning("stars subscription payment %s does not match a plan", charge_id[:40])
        start = expires_at - timedelta(seconds=STARS_PERIOD)
        sub = SubscriptionEvent(
            kind="paid", source="stars", subscription_id=parsed[1], user_id=user_id,
            plan_id=parsed[0], starts_at=start, ends_at=expires_at, payment_ref=charge_id,
            charge_ref=charge_id)
        outcome = await self.apply(PaymentEvent(
            provider="stars", event_id=charge_id, type="subscription_payment",
            action="subscription", subscription=sub, user_id=user_id))
        return outcome.credited

    async def refund_stars_period(self, charge_id: str, *, actor: str) -> int:
        """Refunds one paid period of a Stars subscription through Telegram, then claws its
        credits back and ends the membership; returns the credits taken back."""
        period = await self.memberships.period_by_charge("stars", charge_id[:_MAX_CHARGE_ID])
        if period is None:
            raise PaymentNotFound("no Stars payment with that charge id")
        if period.state == "refunded":
            return 0
        telegram = await self._telegram_id(period.user_id)
        if self.stars_refund is None:
            raise PaymentUnavailable("stars", "refunds need the Telegram bot")
        if telegram is None:
            raise RefundFailed("the payer has no Telegram identity")
        try:
            await self.stars_refund(telegram, charge_id)
        except Exception as exc:  # the adapter's errors are Telegram's; none may clawback
            log.warning("refundStarPayment of a subscription period failed: %s",
                        type(exc).__name__)
            raise RefundFailed("Telegram did not refund the payment") from None
        outcome = await self.apply(PaymentEvent(
            provider="stars", event_id=f"refund:{charge_id}"[:255], type="refund",
            action="refund", charge_id=charge_id), actor=actor)
        return outcome.clawed

    async def _telegram_id(self, user_id: int) -> int | None:
        async with read(self.engine) as conn:
            found = await queries.address(conn, user_id, "telegram")
        return int(found) if found is not None and str(found).isdigit() else None

    async def cancel_subscription(self, user_id: int) -> Membership:
        """Stops the renewals; the member keeps the tier to the end of the paid period."""
        m = await self.memberships.current(user_id)
        if m is None or not m.renews or m.subscription_id is None:
            raise NotSubscribed(user_id)
        sub_id = m.subscription_id
        if m.source == "stripe":
            await self._stripe_call(lambda c: c.v1.subscriptions.update_async(
                sub_id, {"cancel_at_period_end": True}))
        elif m.source == "creem":
            await self._creem_post(f"/v1/subscriptions/{sub_id}/cancel", {})
        else:
            await self._stars_edit(m, canceled=True)
        await self._local(m, cancel_at_period_end=True, actor=f"user:{user_id}")
        return await self.memberships.current(user_id) or m

    async def change_plan(self, user_id: int, plan_id: str) -> Membership:
        """Moves a running subscription to `plan_id` (at the next renewal, or now for an
        upgrade under `immediate`)."""
        plan = self._plan(plan_id)
        m = await self.memberships.current(user_id)
        if m is None or not m.renews or m.subscription_id is None:
            raise NotSubscribed(user_id)
        if plan.id in (m.plan_id, m.next_plan_id):
            return m
        now_ = self.config.memberships.upgrade_policy == "immediate" and _is_upgrade(
            list(self.config.tiers), self.config.plan(m.plan_id or ""), plan)
        sub_id = m.subscription_id
        if m.source == "stripe":
            if not plan.stripe_price_id:
                raise PaymentUnavailable("stripe", "plan changes need a stripe_price_id")
            current = await self._stripe_call(
                lambda c: c.v1.subscriptions.retrieve_async(sub_id))
            item_id = current["items"]["data"][0]["id"]
            await self._stripe_call(lambda c: c.v1.subscriptions.update_async(sub_id, {
                "items": [{"id": item_id, "price": plan.stripe_price_id}],
                "proration_behavior": "always_invoice" if now_ else "none",
                "metadata": {"user_id": str(user_id), "plan_id": plan.id}}))
        elif m.source == "creem":
            if not plan.creem_product_id:
                raise PaymentUnavailable("creem", "the plan is not sold on Creem")
            await self._creem_post(f"/v1/subscriptions/{sub_id}/upgrade", {
                "product_id": plan.creem_product_id,
                "update_behavior": "proration-charge-immediately" if now_ else "proration-none"})
        else:
            raise PaymentUnavailable("stars", "Stars subscriptions cannot change plan")
        await self._local(m, plan_id=plan.id, actor=f"user:{user_id}")
        return await self.memberships.current(user_id) or m

    async def _local(self, m: Membership, *, actor: str, plan_id: str | None = None,
                     cancel_at_period_end: bool | None = None) -> None:
        assert m.subscription_id is not None
        what = f"plan:{plan_id}" if plan_id else f"cancel:{cancel_at_period_end}"
        await self.apply(PaymentEvent(
            provider=m.source, event_id=f"local:{m.subscription_id[:100]}:"
            f"{int(m.period_start.timestamp())}:{what}"[:255], type="local_change",
            action="subscription", subscription=SubscriptionEvent(
                kind="updated", source=m.source, subscription_id=m.subscription_id,
                user_id=m.user_id, plan_id=plan_id,
                cancel_at_period_end=cancel_at_period_end)), actor=actor)

    async def _stripe_call(self, call: Callable[[stripe.StripeClient], Awaitable[Any]]) -> Any:
        if self._stripe is None:
            raise PaymentUnavailable("stripe")
        import stripe  # loaded with the client already

        try:
            return await call(self._stripe)
        except stripe.StripeError as exc:
            log.warning("stripe subscription call failed: %s (status %s)",
                        type(exc).__name__, exc.http_status)
            raise ProviderFailed("stripe", "subscription change failed") from None

    async def _creem_post(self, path: str, body: dict[str, Any]) -> None:
        if not self._ready["creem"]:
            raise PaymentUnavailable("creem")
        url = f"{self.config.payments.creem_api_base.rstrip('/')}{path}"
        try:
            resp = await self.http.post(url, json=body, headers={
                "x-api-key": self._secrets["CREEM_API_KEY"], "Accept": "application/json"})
        except httpx.HTTPError as exc:
            log.warning("creem subscription call failed: %s", type(exc).__name__)
            raise ProviderFailed("creem", "subscription change failed") from None
        if resp.status_code not in (200, 201):
            log.warning("creem subscription call refused: status %s", resp.status_code)
            raise ProviderFailed("creem", "subscription change failed")

    async def _stars_edit(self, m: Membership, *, canceled: bool) -> None:
        charge = await self.memberships.first_charge(m.user_id, "stars", m.subscription_id or "")
        telegram = await self._telegram_id(m.user_id)
        if self.stars_subscription_edit is None or charge is None or telegram is None:
            raise PaymentUnavailable("stars", "cancelling needs the Telegram bot")
        try:
            await self.stars_subscription_edit(telegram, charge, canceled)
        except Exception as exc:  # the adapter's errors are Telegram's
            log.warning("editUserStarSubscription failed: %s", type(exc).__name__)
            raise ProviderFailed("stars", "Telegram did not change the subscription") from None
