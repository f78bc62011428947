"""The credit wallet: the part of VideoFly that must never be wrong.

Credits arrive as grants (bonus, check-in, purchase, redeem code, admin), each idempotent on its
key and optionally expiring. A job freezes credits with a hold (taken from the grants that expire
soonest, then the oldest, never-expiring ones last), then settles it (spends all or part; the rest
returns to the grants it came from) or releases it. A refunded payment is clawed back from the
newest grants; what was already spent becomes debt that the next grants pay first. Every change
is one transaction with its ledger row; `audit()` checks every invariant.

Correctness does not depend on how the engine was made (DESIGN.md: `Wallet(engine)` over any
`AsyncEngine`), by two means that each suffice: `Wallet` prepares the engine it is given
(`core.db.prepare`: on SQLite the writer queue, the pragmas and BEGIN IMMEDIATE, once per
engine), and every change of an account's counters is a guarded relative update that a stale
read cannot corrupt (`_book.save`; a conflict raises `StaleAccount`, and an operation in the
wallet's own transaction runs again).

The wallet owns the tables of who a user is, too: `users`, `identities` and `accounts` (and
the money tables). Other packages never name them; they call `wallet.people` (lookups and the
few writes on users) or compose its selectables into their own statement.

Exceptions (see `_exceptions`):

    WalletError
     ├── UnknownUser
     ├── InvalidAmount            (also a ValueError)
     ├── InsufficientCredits      .available, .needed, .missing
     ├── IdempotencyConflict      a key or ref reused with different arguments
     ├── HoldNotFound
     ├── HoldStateError           settle after release, release after settle
     └── RedeemError
          ├── CodeNotFound
          ├── CodeExpired
          ├── CodeUsedUp
          └── AlreadyRedeemed

    StaleAccount (a RuntimeError) an account changed under an operation: roll back, retry
"""

from ._exceptions import (
    AlreadyRedeemed,
    CodeExpired,
    CodeNotFound,
    CodeUsedUp,
    HoldNotFound,
    HoldStateError,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidAmount,
    RedeemError,
    StaleAccount,
    UnknownUser,
    WalletError,
)
from ._types import (
    Balance,
    CheckinResult,
    Clawback,
    Grant,
    Hold,
    HoldStatus,
    LedgerEntry,
    RedeemCode,
    Violation,
)
from ._wallet import Wallet

__all__ = [
    "AlreadyRedeemed",
    "Balance",
    "CheckinResult",
    "Clawback",
    "CodeExpired",
    "CodeNotFound",
    "CodeUsedUp",
    "Grant",
    "Hold",
    "HoldNotFound",
    "HoldStateError",
    "HoldStatus",
    "IdempotencyConflict",
    "InsufficientCredits",
    "InvalidAmount",
    "LedgerEntry",
    "RedeemCode",
    "RedeemError",
    "StaleAccount",
    "UnknownUser",
    "Violation",
    "Wallet",
    "WalletError",
]
