"""What the conversations need from outside `handlers/`, as small protocols.

`TopUp` is the payments service seen from the chat (`payments/` implements it): which ways to pay
a channel offers, a checkout for one package (a URL to pay at, or a Stars invoice's payload and
price on Telegram), crediting a Stars payment, and an admin's Stars refund. The port returns
data; `topup.py` writes the words (the item's title and description go in with the checkout,
for the payment page).
"""

from __future__ import annotations

from typing import Protocol

from payments import StarsInvoice

from .types import StarsPayment

__all__ = ["TopUp"]


class TopUp(Protocol):
    def methods(self, channel: str) -> list[str]:
        """The ways to pay offered on `channel`, in display order ("stripe", "creem", "stars")."""
        ...

    async def checkout(self, *, user_id: int, channel: str, package_id: str, method: str,
                       title: str, description: str) -> str | StarsInvoice:
        """A payment page URL (Stripe, Creem) or a Stars invoice for one package; `title` and
        `description` name the item on the payment page."""
        ...

    async def stars_paid(self, user_id: int, payment: StarsPayment) -> int:
        """Credits a successful Stars payment once; returns the credits added (0 if seen)."""
        ...

    async def refund_stars(self, charge_id: str, *, actor: str) -> int:
        """Refunds a Stars payment through Telegram and claws its credits back; returns them."""
        ...
