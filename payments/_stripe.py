"""The Stripe Checkout call, through the official library over our shared httpx client.

The only module that imports `stripe` at its top (with `_events.stripe_event`, which imports it
when a webhook arrives): `Payments` imports this module only when Stripe is configured, so a
service that does not sell through Stripe never loads the library. See `_clients` for the why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
import stripe

from ._clients import Checkout, log, usable_url
from ._exceptions import ProviderFailed

__all__ = ["create_stripe_session", "stripe_client"]

STRIPE_RETRIES = 2


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
    url = usable_url(session.url)
    if not session.id or url is None:
        log.warning("stripe checkout answered without a usable session id or url")
        raise ProviderFailed("stripe", "checkout failed")
    return Checkout(session.id, url)
