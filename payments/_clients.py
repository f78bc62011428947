"""The two outbound calls that make a checkout: a Stripe Checkout Session and a Creem checkout.

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

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import stripe

from ._exceptions import ProviderFailed

__all__ = ["Checkout", "create_creem_checkout", "create_stripe_session", "stripe_client"]

log = logging.getLogger("payments")
STRIPE_RETRIES = 2
MAX_URL = 2048


@dataclass(frozen=True, slots=True)
class Checkout:
    id: str
    url: str


class _SharedHttpx(stripe.HTTPClient):
    """Lets the Stripe library send its requests through our shared httpx client."""

    name = "videofly-httpx"

    def __init__(self, http: httpx.AsyncClient) -> None:
        super().__init__()
        self._http = http

    async def request_async(self, method: str, url: str, headers: Mapping[str, str],
                            post_data: Any = None) -> tuple[bytes, int, Mapping[str, str]]:
        try:
            resp = await self._http.request(method, url, headers=dict(headers),
                                            content=post_data)
        except httpx.HTTPError as exc:
            # Retryable: every create carries an idempotency key.
            raise stripe.APIConnectionError(  # type: ignore[no-untyped-call]
                f"network error: {type(exc).__name__}", should_retry=True) from None
        return resp.content, resp.status_code, resp.headers

    def sleep_async(self, secs: float) -> Any:
        return asyncio.sleep(secs)

    def request(self, method: str, url: str, headers: Mapping[str, str] | None,
                post_data: Any = None, *, _usage: list[str] | None = None,
                ) -> tuple[str, int, Mapping[str, str]]:
        raise NotImplementedError("VideoFly calls Stripe asynchronously only")

    def close(self) -> None:
        """The shared client belongs to the application."""

    async def close_async(self) -> None:
        """The shared client belongs to the application."""


def stripe_client(api_key: str, http: httpx.AsyncClient, api_base: str) -> stripe.StripeClient:
    return stripe.StripeClient(api_key, base_addresses={"api": api_base.rstrip("/")},
                               http_client=_SharedHttpx(http),
                               max_network_retries=STRIPE_RETRIES)


def _usable_url(value: Any) -> str | None:
    ok = isinstance(value, str) and value.startswith(("https://", "http://"))
    return value if ok and len(value) <= MAX_URL and value.isascii() else None


async def create_stripe_session(client: stripe.StripeClient, params: dict[str, Any], *,
                                idempotency_key: str) -> Checkout:
    """Creates a Checkout Session; its id and the URL to send the buyer to."""
    try:
        session = await client.v1.checkout.sessions.create_async(
            params,  # type: ignore[arg-type]  # a plain dict of the documented params
            options={"idempotency_key": idempotency_key})
    except stripe.StripeError as exc:
        log.warning("stripe checkout failed: %s (status %s, code %s)", type(exc).__name__,
                    exc.http_status, exc.code)
        raise ProviderFailed("stripe", "checkout failed") from None
    url = _usable_url(session.url)
    if not session.id or url is None:
        log.warning("stripe checkout answered without a usable session id or url")
        raise ProviderFailed("stripe", "checkout failed")
    return Checkout(session.id, url)


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
    url = _usable_url(data.get("checkout_url")) if isinstance(data, dict) else None
    if not isinstance(checkout_id, str) or not checkout_id or url is None:
        log.warning("creem checkout answered without a usable id or checkout_url")
        raise ProviderFailed("creem", "checkout failed")
    return Checkout(checkout_id[:255], url)
