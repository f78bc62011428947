"""The two outbound calls that make a checkout: a Stripe Checkout Session (`_stripe`, which
alone imports the Stripe library, loaded only when Stripe is configured) and a Creem checkout.

Stripe goes through the official library (`stripe.StripeClient`, async `create_async`) over the
application's shared `httpx.AsyncClient`, through a small `stripe.HTTPClient` subclass (the
library's documented extension point): one connection pool, TLS verified, bounded timeouts, and
tests point `base_addresses["api"]` at a local server. Every create carries an idempotency key
derived from our order id, so the library's own retries (two, on network errors and the answers
Stripe marks retryable) can never make a second session.

Creem is one JSON POST (`x-api-key`) answered with a `checkout_url`. Creem takes no idempotency
key, so the call is never retried: a checkout that may have been made is harmless anyway, since
only a paid one sends an event, and that event names our order id (`request_id`).

Failures become `ProviderFailed` with a short reason; the provider's answer and our key stay out
of it (a line with the status and error type goes to the log).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from ._exceptions import ProviderFailed

__all__ = ["Checkout", "create_creem_checkout", "usable_url"]

log = logging.getLogger("payments")
MAX_URL = 2048


@dataclass(frozen=True, slots=True)
class Checkout:
    id: str
    url: str


def usable_url(value: Any) -> str | None:
    ok = isinstance(value, str) and value.startswith(("https://", "http://"))
    return value if ok and len(value) <= MAX_URL and value.isascii() else None


async def create_creem_checkout(http: httpx.AsyncClient, *, api_base: str, api_key: str,
                                body: dict[str, Any]) -> Checkout:
    """POST /v1/checkouts; the checkout id and its `checkout_url`."""
    try:
        resp = await http.post(f"{api_base.rstrip('/')}/v1/checkouts", json=body,
                               headers={"x-api-key": api_key, "Accept": "application/json"})
    except httpx.HTTPError as exc:
        log.warning("creem checkout failed: %s", type(exc).__name__)
        raise ProviderFailed("creem", "checkout failed") from None
    if resp.status_code not in (200, 201):
        log.warning("creem checkout refused: status %s", resp.status_code)
        raise ProviderFailed("creem", "checkout failed")
    try:
        data = resp.json()
    except ValueError:
        data = None
    checkout_id = data.get("id") if isinstance(data, dict) else None
    url = usable_url(data.get("checkout_url")) if isinstance(data, dict) else None
    if not isinstance(checkout_id, str) or not checkout_id or url is None:
        log.warning("creem checkout answered without a usable id or checkout_url")
        raise ProviderFailed("creem", "checkout failed")
    return Checkout(checkout_id[:255], url)
