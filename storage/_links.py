"""Signed, expiring media links for `LocalStorage`.

A link is `{base}/media/{key}?exp=<unix seconds>&sig=<hex>` where `sig` is the hex
HMAC-SHA256, under the link secret, of `key + "\\n" + exp`. The newline cannot occur in a key,
so no other (key, exp) pair signs the same message (plain concatenation would let `a1`+`23` pass
for `a`+`123`).
"""

from __future__ import annotations

import hashlib
import hmac

from storage._base import validate_key
from storage._exceptions import InvalidKey

__all__ = ["LinkSigner"]

MIN_SECRET_LENGTH = 16
_MAX_EXP_DIGITS = 12


class LinkSigner:
    """Signs and verifies (key, expiry) pairs with one secret."""

    __slots__ = ("_secret",)

    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(raw) < MIN_SECRET_LENGTH:
            raise ValueError(f"the media link secret must be at least {MIN_SECRET_LENGTH} bytes")
        self._secret = raw

    def __repr__(self) -> str:
        return "LinkSigner(secret=<hidden>)"

    def sign(self, key: str, exp: int) -> str:
        message = f"{validate_key(key)}\n{int(exp)}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, key: str, exp: str | int, sig: str, now: float) -> bool:
        """True only for an unexpired link this secret signed; never raises on bad input."""
        text = str(exp)
        if not (text.isascii() and text.isdigit()) or len(text) > _MAX_EXP_DIGITS:
            return False
        if not isinstance(sig, str):
            return False
        try:
            expected = self.sign(key, int(text))
        except InvalidKey:
            return False
        # Compare first so the time taken does not depend on whether the link has expired.
        good = hmac.compare_digest(expected.encode(), sig.lower().encode())
        return good and now < int(text)
