"""A local Creem: `POST /v1/checkouts`, and webhook events signed as Creem signs them.

`CreemFake` checks `x-api-key` (403 otherwise, as Creem answers), records each JSON body, and
answers a checkout with its `checkout_url`. Events (`checkout_completed`, `refund_created`,
`dispute_created`) follow Creem's envelope `{"id", "eventType", "created_at", "object"}`; `sign`
gives the `creem-signature` header, the hex HMAC-SHA256 of the raw body with the webhook secret.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any

from aiohttp import web

from ._server import FakeServer

__all__ = ["CreemFake", "checkout_completed", "dispute_created", "refund_created", "sign",
           "signature", "subscription_event", "subscription_refund"]

_ids = itertools.count(1)


class CreemFake(FakeServer):
    api_key = "creem_test_fake_key"

    def __init__(self) -> None:
        super().__init__()
        self.checkouts: dict[str, dict[str, Any]] = {}
        self.subscription_calls: list[tuple[str, str, Any]] = []  # (id, action, body)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/checkouts", self._create),
                web.post("/v1/subscriptions/{id}/{action}", self._subscription)]

    async def _subscription(self, request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            body = None
        self.subscription_calls.append(
            (request.match_info["id"], request.match_info["action"], body))
        if request.headers.get("x-api-key") != self.api_key:
            return web.json_response({"status": 403, "error": "Forbidden"}, status=403)
        return web.json_response({"id": request.match_info["id"], "object": "subscription"})

    async def _create(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.authorizations.append(request.headers.get("x-api-key", ""))
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        self.create_calls.append(body)
        scripted = await self.scripted("create", request)
        if scripted is not None:
            return scripted
        if request.headers.get("x-api-key") != self.api_key:
            return web.json_response({"status": 403, "error": "Forbidden"}, status=403)
        checkout_id = f"ch_test_{next(self._ids)}"
        checkout = {
            "id": checkout_id, "object": "checkout", "mode": "test", "units": 1,
            "product": body["product_id"], "status": "pending",
            "request_id": body.get("request_id"), "metadata": body.get("metadata", {}),
            "success_url": body.get("success_url"),
            "checkout_url": f"https://checkout.creem.io/{checkout_id}",
        }
        self.checkouts[checkout_id] = checkout
        return web.json_response(checkout)


def _envelope(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"evt_creem_{next(_ids)}", "eventType": kind,
            "created_at": int(time.time() * 1000), "object": obj}


def _order(order_id: str, product: str, amount: int, currency: str) -> dict[str, Any]:
    return {"id": order_id, "customer": "cust_test_1", "product": product, "amount": amount,
            "amount_paid": amount, "currency": currency, "status": "paid", "type": "onetime",
            "mode": "test"}


def checkout_completed(checkout: dict[str, Any], *, amount: int, currency: str = "USD",
                       order_id: str = "ord_test_1", product: str | None = None,
                       ) -> dict[str, Any]:
    """`checkout.completed` for a checkout the fake made (or any dict shaped like one)."""
    product_id = product or checkout["product"]
    obj = {**checkout, "status": "completed",
           "order": _order(order_id, product_id, amount, currency),
           "product": {"id": product_id, "object": "product", "price": amount,
                       "currency": currency, "billing_type": "onetime"},
           "customer": {"id": "cust_test_1", "object": "customer", "email": "a@example.com"}}
    obj.pop("checkout_url", None)
    return _envelope("checkout.completed", obj)


def refund_created(checkout: dict[str, Any], *, refund_amount: int, order_amount: int,
                   currency: str = "USD", order_id: str = "ord_test_1") -> dict[str, Any]:
    """`refund.created`: `refund_amount` is this refund alone."""
    return _envelope("refund.created", {
        "id": f"ref_test_{next(_ids)}", "object": "refund", "status": "succeeded",
        "refund_amount": refund_amount, "refund_currency": currency,
        "reason": "requested_by_customer", "created_at": int(time.time() * 1000),
        "checkout": {"id": checkout["id"], "object": "checkout",
                     "request_id": checkout.get("request_id"),
                     "metadata": checkout.get("metadata", {})},
        "order": _order(order_id, checkout["product"], order_amount, currency)})


def dispute_created(checkout: dict[str, Any], *, amount: int, currency: str = "USD",
                    order_id: str = "ord_test_1") -> dict[str, Any]:
    return _envelope("dispute.created", {
        "id": f"disp_test_{next(_ids)}", "object": "dispute", "amount": amount,
        "currency": currency, "checkout": {"id": checkout["id"], "object": "checkout"},
        "order": _order(order_id, checkout["product"], amount, currency)})


def subscription_event(kind: str, checkout: dict[str, Any], *, sub_id: str = "sub_creem_1",
                       start: str | None = None, end: str | None = None,
                       transaction: str = "tran_1", product: str | None = None,
                       status: str = "active") -> dict[str, Any]:
    """A subscription event (`subscription.paid`, `.update`, `.canceled`, `.expired`) whose
    object is the subscription, with the checkout's metadata, as Creem sends it."""
    product_id = product or checkout["product"]
    obj: dict[str, Any] = {
        "id": sub_id, "object": "subscription", "status": status,
        "product": {"id": product_id, "object": "product", "billing_type": "recurring"},
        "customer": {"id": "cust_test_1", "object": "customer"},
        "collection_method": "charge_automatically", "metadata": checkout.get("metadata", {}),
        "last_transaction_id": transaction, "canceled_at": None}
    if start and end:
        obj["current_period_start_date"] = start
        obj["current_period_end_date"] = end
    return _envelope(kind, obj)


def subscription_refund(*, transaction: str, amount: int, sub_id: str = "sub_creem_1",
                        currency: str = "USD") -> dict[str, Any]:
    """`refund.created` of one subscription payment (it names the transaction)."""
    return _envelope("refund.created", {
        "id": f"ref_test_{next(_ids)}", "object": "refund", "status": "succeeded",
        "refund_amount": amount, "refund_currency": currency,
        "transaction": {"id": transaction, "object": "transaction", "amount": amount},
        "subscription": {"id": sub_id, "object": "subscription"},
        "order": {"id": f"ord_sub_{next(_ids)}", "object": "order", "amount": amount,
                  "currency": currency, "type": "recurring"}})


def signature(body: bytes, secret: str) -> str:
    """`creem-signature` for a raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign(payload: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers Creem would send for `payload`."""
    body = json.dumps(payload).encode()
    return body, {"creem-signature": signature(body, secret),
                  "Content-Type": "application/json"}
