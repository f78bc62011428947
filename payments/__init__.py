"""Top-ups: Stripe Checkout, Telegram Stars and Creem; events become wallet grants.

    payments = Payments(engine=engine, wallet=wallet, config=config, secrets=secrets,
                        http=http, clock=clock)          # bot/app.py builds one
    payments.stars_refund = telegram_adapter.refund_star_payment   # when Telegram runs
    webhooks.create_app(WebDeps(..., payments=payments))   # POST /payments/stripe, /creem

`Payments` implements `handlers.ports.TopUp` (`methods`, `checkout`, `stars_paid`,
`refund_stars`) and adds `check_stars_payload` (the pre-checkout answer), `packages_for(method)`,
`verify_stripe`/`verify_creem` + `apply` (the webhook routes), and the admin reads
`recent_for_user` and `revenue`.

Every event is verified, recorded once per (provider, event id), and applied to its order in
one transaction with the wallet change and the outbox message, so a repeat, a concurrent
delivery or an out-of-order refund credits once and claws back once. Outbox kinds:
`payment.credited` {credits, package_id, provider}; `payment.reversed` {credits, debt, reason:
"refund" | "dispute"} (debt: the part of this clawback that was already spent); `admin.dispute`
{provider, order_id, user_id, credits} to every admin. An event that credits nothing for a
reason (unknown user or package, wrong amount) is kept with its note in `payment_events`,
logged as a warning and answered 200, so the provider stops retrying; an operator settles it.

Payments writes no chat text and imports nothing from `handlers`: a checkout answers a URL or
a `StarsInvoice` and the conversation writes the words. The names below load on first use
(PEP 562), and the Stripe library only when Stripe is configured or its webhook is read, so
`from payments import UnknownPackage` costs what `_exceptions` costs.

Modules: `_service` (Payments), `_apply` (one event in the transaction), `_events` (verify and
parse webhooks), `_clients` (the Stripe and Creem checkout calls), `_money` (minor units,
payloads, clawback targets), `_types` (StarsInvoice, StarsCharge), `_reads`, `tables`.
Exceptions (`_exceptions`):

    PaymentError
     ├── UnknownPackage
     ├── PaymentUnavailable
     │    └── ProviderFailed
     ├── PaymentNotFound
     ├── RefundFailed
     └── BadEvent
          └── BadSignature
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._apply import Outcome
    from ._events import PaymentEvent
    from ._exceptions import (
        BadEvent,
        BadSignature,
        PaymentError,
        PaymentNotFound,
        PaymentUnavailable,
        ProviderFailed,
        RefundFailed,
        UnknownPackage,
    )
    from ._reads import PaymentRecord, Revenue, recent_for_user, revenue
    from ._service import Payments, StarsRefund
    from ._types import StarsCharge, StarsInvoice

__all__ = [
    "BadEvent",
    "BadSignature",
    "Outcome",
    "PaymentError",
    "PaymentEvent",
    "PaymentNotFound",
    "PaymentRecord",
    "PaymentUnavailable",
    "Payments",
    "ProviderFailed",
    "RefundFailed",
    "Revenue",
    "StarsCharge",
    "StarsInvoice",
    "StarsRefund",
    "UnknownPackage",
    "recent_for_user",
    "revenue",
]

_HOME = {
    "Outcome": "._apply", "PaymentEvent": "._events", "PaymentRecord": "._reads",
    "Revenue": "._reads", "recent_for_user": "._reads", "revenue": "._reads",
    "Payments": "._service", "StarsRefund": "._service", "StarsCharge": "._types",
    "StarsInvoice": "._types",
}


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_HOME.get(name, "._exceptions"), __name__), name)
    globals()[name] = value  # the next access is a plain module attribute
    return value
