"""What goes wrong in payments, as one tree.

    PaymentError
     ├── UnknownPackage        no such package, or it is not sold by the chosen method
     ├── PaymentUnavailable    the method is not configured or not offered on this channel
     │    └── ProviderFailed   the provider refused or could not be reached: no checkout made
     ├── PaymentNotFound       an admin refund names no Stars payment we credited
     ├── RefundFailed          Telegram did not refund the Stars payment: nothing clawed back
     └── BadEvent              a webhook body that cannot be read (the route answers 400)
          └── BadSignature     missing or wrong signature, or too old (the route answers 401)

Messages never carry a secret or a provider's raw answer: the chat maps these to catalogue
texts, and the routes to short fixed reasons.
"""

from __future__ import annotations

__all__ = [
    "BadEvent",
    "BadSignature",
    "PaymentError",
    "PaymentNotFound",
    "PaymentUnavailable",
    "ProviderFailed",
    "RefundFailed",
    "UnknownPackage",
]


class PaymentError(Exception):
    """Base of every payments error."""


class UnknownPackage(PaymentError):
    def __init__(self, package_id: str) -> None:
        super().__init__(f"unknown package {package_id[:64]!r}")
        self.package_id = package_id


class PaymentUnavailable(PaymentError):
    def __init__(self, method: str, why: str = "not offered") -> None:
        super().__init__(f"{method[:32]}: {why}")
        self.method = method


class ProviderFailed(PaymentUnavailable):
    """The checkout could not be created at the provider; the user may try again later."""


class PaymentNotFound(PaymentError):
    pass


class RefundFailed(PaymentError):
    pass


class BadEvent(PaymentError):
    pass


class BadSignature(BadEvent):
    pass
