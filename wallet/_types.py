"""What wallet calls return: plain frozen records, no database handles."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime

__all__ = [
    "Balance",
    "CheckinResult",
    "Clawback",
    "Grant",
    "Hold",
    "HoldStatus",
    "LedgerEntry",
    "RedeemCode",
    "Violation",
]


class HoldStatus(enum.StrEnum):
    ACTIVE = "active"
    SETTLED = "settled"
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Grant:
    id: int
    user_id: int
    source: str
    key: str
    credits: int
    remaining: int
    expires_at: datetime | None
    created_at: datetime
    note: str | None
    created: bool  # False when the key had been granted before and this call changed nothing


@dataclass(frozen=True, slots=True)
class Hold:
    id: int
    user_id: int
    ref: str
    credits: int
    status: HoldStatus
    spent: int | None
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Balance:
    available: int  # negative while the user owes credits
    held: int
    debt: int
    expiring_soon: int  # of `available`, what expires within the window (7 days)
    next_expiry: datetime | None


@dataclass(frozen=True, slots=True)
class Clawback:
    id: int
    user_id: int
    key: str
    credits: int
    taken: int  # taken from unheld grants
    debt: int  # recorded as debt because it had been spent or held


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    kind: str  # grant, hold, settle, release, expire, clawback
    amount: int  # change of available credits
    held_delta: int
    debt_delta: int
    balance_after: int
    held_after: int
    debt_after: int
    ref: str | None
    note: str | None
    actor: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    user_id: int | None
    detail: str

    def __str__(self) -> str:
        who = f"user {self.user_id}" if self.user_id is not None else "database"
        return f"{self.rule}: {who}: {self.detail}"


@dataclass(frozen=True, slots=True)
class CheckinResult:
    granted: bool  # False: already checked in on this local day
    credits: int
    day: date
    grant: Grant


@dataclass(frozen=True, slots=True)
class RedeemCode:
    code: str
    credits: int
    max_uses: int
    uses: int
    expires_at: datetime | None
    credit_days: int | None
    membership_tier: str | None = None
    membership_days: int | None = None
