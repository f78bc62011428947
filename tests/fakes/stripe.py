"""A local Stripe: the Checkout Sessions API, and webhook events signed as Stripe signs them.

`StripeFake` answers `POST /v1/checkout/sessions` like Stripe: a form-encoded body (nested
params as `metadata[order_id]`), `Authorization: Bearer <secret key>` (401 with Stripe's error
shape otherwise), and the `Idempotency-Key` header: a key seen before gets the first answer
again, so a retried create makes no second session. It records every form, key and
authorization. `script_next("create", Reply(...))` scripts failures.

Events are built from the sessions the fake made (`completed`, `charge_refunded`,
`dispute_created`) and signed with `stripe.WebhookSignature.generate_signature_header`: the
library's own signing helper, `t=<unix>,v1=HMAC-SHA256("{t}.{body}")`.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import stripe
from aiohttp import web

from ._server import FakeServer

__all__ = ["StripeFake", "charge_refunded", "completed", "dispute_created", "event",
           "invoice_paid", "sign", "subscription_deleted", "subscription_updated"]

_event_ids = itertools.count(1)


def _nested(form: dict[str, str]) -> dict[str, Any]:
    """`line_items[0][price_data][currency]=usd` → nested dicts (lists as index-keyed dicts)."""
    out: dict[str, Any] = {}
    for key, value in form.items():
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


class StripeFake(FakeServer):
    api_key = "sk_test_fake_0123456789"

    def __init__(self) -> None:
        super().__init__()
        self.idempotency_keys: list[str | None] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.subscription_calls: list[tuple[str, dict[str, str]]] = []
        self._by_key: dict[str, dict[str, Any]] = {}

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/checkout/sessions", self._create),
                web.get("/v1/subscriptions/{id}", self._get_subscription),
                web.post("/v1/subscriptions/{id}", self._update_subscription)]

    def subscribe(self, session: dict[str, Any]) -> dict[str, Any]:
        """What Stripe does when a subscription-mode session is paid: a subscription with the
        session's `subscription_data.metadata` and its price."""
        sub_id = f"sub_test_{next(self._ids)}"
        sub = {"id": sub_id, "object": "subscription", "status": "active",
               "cancel_at_period_end": False, "customer": "cus_test_1",
               "metadata": dict(session["subscription_metadata"]),
               "items": {"object": "list", "data": [{
                   "id": f"si_test_{next(self._ids)}", "object": "subscription_item",
                   "price": {"id": session["price_id"], "object": "price"}}]}}
        self.subscriptions[sub_id] = sub
        session["subscription"] = sub_id
        return sub

    async def _get_subscription(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"type": "invalid_request_error"}}, status=401)
        sub = self.subscriptions.get(request.match_info["id"])
        if sub is None:
            return web.json_response({"error": {"type": "invalid_request_error",
                                                "code": "resource_missing"}}, status=404)
        return web.json_response(sub)

    async def _update_subscription(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.subscription_calls.append((request.match_info["id"], form))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"type": "invalid_request_error"}}, status=401)
        sub = self.subscriptions.get(request.match_info["id"])
        if sub is None:
            return web.json_response({"error": {"type": "invalid_request_error",
                                                "code": "resource_missing"}}, status=404)
        params = _nested(form)
        if "cancel_at_period_end" in params:
            sub["cancel_at_period_end"] = params["cancel_at_period_end"] == "true"
        for item in params.get("items", {}).values():
            for mine in sub["items"]["data"]:
                if mine["id"] == item.get("id") and "price" in item:
                    mine["price"] = {"id": item["price"], "object": "price"}
        sub["metadata"].update(params.get("metadata", {}))
        return web.json_response(sub)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.create_calls.append(form)
        self.authorizations.append(request.headers.get("Authorization", ""))
        key = request.headers.get("Idempotency-Key")
        self.idempotency_keys.append(key)
        scripted = await self.scripted("create", request)
        if scripted is not None:
            return scripted
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {
                "type": "invalid_request_error", "message": "Invalid API Key provided"}},
                status=401)
        if key is not None and key in self._by_key:
            return web.json_response(self._by_key[key])
        params = _nested(form)
        line = params["line_items"]["0"]
        price = line.get("price_data") or {"unit_amount": "0", "currency": "usd"}
        session_id = f"cs_test_{next(self._ids)}"
        session = {
            "id": session_id, "object": "checkout.session", "mode": params["mode"],
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            "status": "open", "payment_status": "unpaid", "payment_intent": None,
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "amount_total": int(price["unit_amount"]) * int(line["quantity"]),
            "subscription_metadata": params.get("subscription_data", {}).get("metadata", {}),
            "price_id": line.get("price") or f"price_inline_{next(self._ids)}",
            "currency": price["currency"], "livemode": False,
            "success_url": params.get("success_url"), "cancel_url": params.get("cancel_url"),
        }
        self.sessions[session_id] = session
        if key is not None:
            self._by_key[key] = session
        return web.json_response(session)


def event(kind: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """A Stripe event envelope around `obj`."""
    return {"id": event_id or f"evt_test_{next(_event_ids)}", "object": "event",
            "api_version": "2025-03-31.basil", "created": int(time.time()), "livemode": False,
            "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
            "type": kind, "data": {"object": obj}}


def completed(session: dict[str, Any], *, payment_intent: str = "pi_test_1",
              kind: str = "checkout.session.completed", payment_status: str = "paid",
              **changes: Any) -> dict[str, Any]:
    """The session as `checkout.session.completed` (or `kind`) carries it once paid."""
    obj = {**session, "status": "complete", "payment_status": payment_status,
           "payment_intent": payment_intent, **changes}
    return event(kind, obj)


def charge_refunded(*, charge_id: str, payment_intent: str, amount: int, refunded: int,
                    currency: str = "usd", metadata: dict[str, str] | None = None,
                    ) -> dict[str, Any]:
    """`charge.refunded`: `amount_refunded` is the total refunded so far."""
    return event("charge.refunded", {
        "id": charge_id, "object": "charge", "amount": amount, "amount_refunded": refunded,
        "currency": currency, "payment_intent": payment_intent, "refunded": refunded >= amount,
        "metadata": metadata or {}, "status": "succeeded"})


def dispute_created(*, charge_id: str, payment_intent: str, amount: int,
                    currency: str = "usd") -> dict[str, Any]:
    return event("charge.dispute.created", {
        "id": f"dp_test_{next(_event_ids)}", "object": "dispute", "amount": amount,
        "currency": currency, "charge": charge_id, "payment_intent": payment_intent,
        "reason": "fraudulent", "status": "needs_response"})


def invoice_paid(sub: dict[str, Any], *, start: int, end: int,
                 reason: str = "subscription_cycle", payment_intent: str = "pi_sub_1",
                 charge: str = "ch_sub_1", amount: int = 999, basil: bool = False,
                 ) -> dict[str, Any]:
    """`invoice.paid` for one period of `sub`. `basil`: the 2025-03-31 shape (subscription and
    its metadata under `parent.subscription_details`, the price under `pricing`)."""
    price = sub["items"]["data"][0]["price"]["id"]
    line: dict[str, Any] = {"id": f"il_test_{next(_event_ids)}", "object": "line_item",
                            "amount": amount, "metadata": dict(sub["metadata"]),
                            "period": {"start": start, "end": end}}
    invoice: dict[str, Any] = {
        "id": f"in_test_{next(_event_ids)}", "object": "invoice", "status": "paid",
        "billing_reason": reason, "customer": sub["customer"], "amount_paid": amount,
        "currency": "usd", "payment_intent": payment_intent, "charge": charge,
        "lines": {"object": "list", "data": [line]}}
    if basil:
        line["pricing"] = {"price_details": {"price": price}}
        invoice["parent"] = {"type": "subscription_details", "subscription_details": {
            "subscription": sub["id"], "metadata": dict(sub["metadata"])}}
    else:
        line["price"] = {"id": price, "object": "price"}
        invoice["subscription"] = sub["id"]
        invoice["subscription_details"] = {"metadata": dict(sub["metadata"])}
    return event("invoice.paid", invoice)


def subscription_updated(sub: dict[str, Any]) -> dict[str, Any]:
    return event("customer.subscription.updated", json.loads(json.dumps(sub)))


def subscription_deleted(sub: dict[str, Any]) -> dict[str, Any]:
    return event("customer.subscription.deleted", {**json.loads(json.dumps(sub)),
                                                   "status": "canceled"})


def sign(payload: dict[str, Any], secret: str, *,
         timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers Stripe would send for `payload`."""
    body = json.dumps(payload).encode()
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=timestamp)
    return body, {"Stripe-Signature": header, "Content-Type": "application/json"}
