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

__all__ = ["StripeFake", "charge_refunded", "completed", "dispute_created", "event", "sign"]

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
        self._by_key: dict[str, dict[str, Any]] = {}

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/checkout/sessions", self._create)]

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
        price = params["line_items"]["0"]["price_data"]
        session_id = f"cs_test_{next(self._ids)}"
        session = {
            "id": session_id, "object": "checkout.session", "mode": params["mode"],
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            "status": "open", "payment_status": "unpaid", "payment_intent": None,
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "amount_total": int(price["unit_amount"]) * int(params["line_items"]["0"]["quantity"]),
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


def sign(payload: dict[str, Any], secret: str, *,
         timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers Stripe would send for `payload`."""
    body = json.dumps(payload).encode()
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=timestamp)
    return body, {"Stripe-Signature": header, "Content-Type": "application/json"}
