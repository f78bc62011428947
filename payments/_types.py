"""What the payments service trades with its callers, in data: the chat writes the words.

`checkout` answers a payment page URL (Stripe, Creem) or a `StarsInvoice` (Telegram Stars): the
payload and price only; the conversation (`handlers/topup.py`) writes the invoice's title and
description from the message catalogue, and hands the Stripe product's name and description in.
`stars_paid` takes anything shaped like a `StarsCharge` (the chat's `handlers.types.StarsPayment`
is one), so payments imports nothing from `handlers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["StarsCharge", "StarsInvoice"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StarsInvoice:
    """A Stars invoice to send for one package: its payload (1..128 bytes) and price."""

    payload: str
    stars: int
    package_id: str


class StarsCharge(Protocol):
    """A Telegram `successful_payment`, as far as crediting it goes."""

    @property
    def charge_id(self) -> str: ...  # telegram_payment_charge_id: the idempotency key

    @property
    def payload(self) -> str: ...  # invoice_payload

    @property
    def currency(self) -> str: ...

    @property
    def total_amount(self) -> int: ...
