"""`POST /payments/stripe` and `POST /payments/creem`: a payment provider's event.

Verify, parse, hand over, answer after the commit:
1. the route answers 404 unless payments are configured for that provider (its API key and its
   webhook secret set);
2. the body (at most `max_body_bytes`, else 413) is verified with the provider's own scheme:
   Stripe's `Stripe-Signature` through `stripe.Webhook.construct_event`, Creem's
   `creem-signature` HMAC; a missing or bad signature is 401 (as for generation callbacks) and
   nothing is read further or changed; a signed body that cannot be read is 400;
3. `Payments.apply` records and applies the event in one transaction; the answer is 200 once it
   has committed, whatever the event did (credited, seen before, ignored, or kept with a note
   because it names an unknown user or package), so the provider stops retrying. A failure
   inside is a 500 and the provider retries, which the event's id makes safe.
"""

from __future__ import annotations

from aiohttp import web

from payments import BadEvent, BadSignature, Payments

from ._deps import DEPS
from ._errors import NotFound, Unauthorized, WebError

__all__ = ["creem_webhook", "stripe_webhook"]


def _payments(request: web.Request, provider: str) -> Payments:
    payments = request.app[DEPS].payments
    if payments is None or not payments.webhook_ready(provider):
        raise NotFound("payments are not configured")
    return payments


async def _handle(request: web.Request, provider: str, header: str) -> web.Response:
    payments = _payments(request, provider)
    body = await request.read()
    verify = payments.verify_stripe if provider == "stripe" else payments.verify_creem
    try:
        event = verify(body, request.headers.get(header))
    except BadSignature:
        raise Unauthorized("bad signature") from None
    except BadEvent:
        raise WebError("malformed event") from None
    outcome = await payments.apply(event)
    return web.json_response({"ok": True, "outcome": outcome.outcome})


async def stripe_webhook(request: web.Request) -> web.Response:
    """Verifies a Stripe event and applies it."""
    return await _handle(request, "stripe", "Stripe-Signature")


async def creem_webhook(request: web.Request) -> web.Response:
    """Verifies a Creem event and applies it."""
    return await _handle(request, "creem", "creem-signature")
