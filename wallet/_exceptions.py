"""The wallet's exceptions. Every one leaves the database as it was before the call.

    WalletError
     ├── UnknownUser            no account for that user id
     ├── InvalidAmount          credits not a positive integer, or an expiry already past
     ├── InsufficientCredits    a hold needs more than is available (carries both numbers)
     ├── IdempotencyConflict    a key or ref reused with different arguments
     ├── HoldNotFound
     ├── HoldStateError         settling a released hold, releasing a settled one, or settling
     │                          a settled hold again with a different amount
     └── RedeemError
          ├── CodeNotFound
          ├── CodeExpired
          ├── CodeUsedUp
          └── AlreadyRedeemed
"""

from __future__ import annotations

__all__ = [
    "AlreadyRedeemed",
    "CodeExpired",
    "CodeNotFound",
    "CodeUsedUp",
    "HoldNotFound",
    "HoldStateError",
    "IdempotencyConflict",
    "InsufficientCredits",
    "InvalidAmount",
    "RedeemError",
    "StaleAccount",
    "UnknownUser",
    "WalletError",
]


class WalletError(Exception):
    """Base of every error the wallet raises on purpose."""


class UnknownUser(WalletError):
    def __init__(self, user_id: int) -> None:
        super().__init__(f"no account for user {user_id}")
        self.user_id = user_id


class InvalidAmount(WalletError, ValueError):
    pass


class InsufficientCredits(WalletError):
    def __init__(self, *, available: int, needed: int) -> None:
        super().__init__(f"needs {needed} credits, {available} available")
        self.available = available
        self.needed = needed

    @property
    def missing(self) -> int:
        return self.needed - max(self.available, 0)


class IdempotencyConflict(WalletError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} was already used with different arguments")
        self.key = key


class HoldNotFound(WalletError):
    def __init__(self, hold_id: int) -> None:
        super().__init__(f"no hold {hold_id}")
        self.hold_id = hold_id


class HoldStateError(WalletError):
    def __init__(self, hold_id: int, status: str, wanted: str) -> None:
        super().__init__(f"hold {hold_id} is {status}; cannot {wanted} it")
        self.hold_id = hold_id
        self.status = status


class RedeemError(WalletError):
    def __init__(self, code: str) -> None:
        super().__init__(f"{type(self).__name__}: {code}")
        self.code = code


class CodeNotFound(RedeemError):
    pass


class CodeExpired(RedeemError):
    pass


class CodeUsedUp(RedeemError):
    pass


class AlreadyRedeemed(RedeemError):
    pass


class StaleAccount(RuntimeError):
    """An operation read an account's counters that changed before it wrote them. Not a
    `WalletError`: the transaction holds a half-done operation and must roll back; `Wallet`
    runs the operation again when the transaction is its own."""

    def __init__(self, user_id: int) -> None:
        super().__init__(f"the account of user {user_id} changed while an operation used it")
        self.user_id = user_id
