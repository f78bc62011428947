"""Plain rules with no I/O: money in minor units, order ids, Stars payloads, clawback targets.

Amounts are stored and compared as integers in the currency's minor unit, as Stripe and Creem
send them (cents; yen have none; dinars have three). A price that does not fit its currency's
minor unit (4.999 USD) is refused rather than rounded.

A refund takes back credits in proportion to the money returned, cumulatively, rounded up (the
buyer has the money back, so a fraction of a credit goes to us): refunding 1.00 of 4.99 for 100
credits takes 21; refunding the rest later takes the other 79. A full refund or a dispute takes
everything.
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal

__all__ = [
    "STARS_CURRENCY",
    "clawback_target",
    "from_minor",
    "new_order_id",
    "parse_stars_payload",
    "stars_payload",
    "to_minor",
]

STARS_CURRENCY = "XTR"
MAX_PAYLOAD_BYTES = 128  # Telegram's limit on invoice_payload
_PAYLOAD_PREFIX = "vf1"
_ORDER_ID = re.compile(r"vf_[0-9a-f]{24}")

# Stripe's zero-decimal and three-decimal currencies; everything else has two decimals.
_ZERO = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX",
                   "VND", "VUV", "XAF", "XOF", "XPF", STARS_CURRENCY})
_THREE = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def exponent(currency: str) -> int:
    code = currency.upper()
    return 0 if code in _ZERO else 3 if code in _THREE else 2


def to_minor(price: Decimal, currency: str) -> int:
    """4.99 USD → 499; raises ValueError for a price finer than the currency's minor unit."""
    scaled = price.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"price {price} has more decimals than {currency} allows")
    return int(scaled)


def from_minor(amount: int, currency: str) -> Decimal:
    return Decimal(amount).scaleb(-exponent(currency))


def new_order_id() -> str:
    """Our order id: unguessable, short enough for every provider's reference field."""
    return f"vf_{secrets.token_hex(12)}"


def is_order_id(value: object) -> bool:
    return isinstance(value, str) and _ORDER_ID.fullmatch(value) is not None


def stars_payload(order_id: str, package_id: str) -> str:
    """The invoice payload naming our order and the package; at most 128 bytes."""
    payload = f"{_PAYLOAD_PREFIX}:{order_id}:{package_id}"
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"package id too long for a Stars payload: {package_id[:64]!r}")
    return payload


def parse_stars_payload(payload: str) -> tuple[str, str] | None:
    """(order id, package id) from a payload we made, or None for anything else."""
    if len(payload.encode("utf-8", "replace")) > MAX_PAYLOAD_BYTES:
        return None
    parts = payload.split(":", 2)
    if len(parts) != 3 or parts[0] != _PAYLOAD_PREFIX or not is_order_id(parts[1]):
        return None
    return (parts[1], parts[2]) if parts[2] else None


def clawback_target(*, credits: int, amount: int, refunded: int, disputed: bool) -> int:
    """How many of an order's credits should have been taken back, all events so far seen."""
    if disputed or (refunded > 0 and refunded >= amount):
        return credits
    if refunded <= 0:
        return 0
    return min(credits, -(-credits * refunded // amount))  # ceil without floats
