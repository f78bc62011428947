"""The one place an error becomes chat text, for the whole `handlers` package.

Known errors (the wallet's, the generation layer's, the payments', a photo over the download
limit) get a
friendly text from the catalogue. Anything else gets an incident id in the text and a full
traceback in the log under the same id, so support can find it from a user's screenshot; the
exception's own message never reaches the user (it may name internals or a secret).
"""

from __future__ import annotations

import logging
import secrets

from generation import (
    InvalidChoice,
    JobNotFound,
    NotRetryable,
    TierRequired,
    TooManyClothes,
    TooManyJobs,
    UnknownModel,
)
from memberships import MembershipError, NotSubscribed, UnknownPlan, UnknownTier
from payments import (
    PaymentError,
    PaymentNotFound,
    PaymentUnavailable,
    RefundFailed,
    UnknownPackage,
)
from wallet import (
    AlreadyRedeemed,
    CodeExpired,
    CodeNotFound,
    CodeUsedUp,
    InsufficientCredits,
    InvalidAmount,
    UnknownUser,
    WalletError,
)

from .messages import t, tn
from .types import PHOTO_LIMIT, AttachmentTooLarge

__all__ = ["PHOTO_LIMIT", "Explained", "error_text", "incident"]

log = logging.getLogger("handlers")

class Explained(Exception):
    """A refusal of ours that carries its catalogue key and parameters (a photo we cannot use,
    a number out of range in an admin command)."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key, self.params = key, params



# Exception type → catalogue key, for the errors whose text needs no numbers. Subclasses before
# their bases: the first match wins.
_PLAIN: tuple[tuple[type[Exception], str], ...] = (
    (CodeNotFound, "err.code_not_found"),
    (CodeExpired, "err.code_expired"),
    (CodeUsedUp, "err.code_used_up"),
    (AlreadyRedeemed, "err.already_redeemed"),
    (InvalidAmount, "err.invalid_amount"),
    (UnknownUser, "err.not_found"),
    (UnknownModel, "err.unknown_model"),
    (InvalidChoice, "err.invalid_choice"),
    (JobNotFound, "err.not_found"),
    (NotRetryable, "err.not_retryable"),
    (WalletError, "err.wallet"),
    (UnknownPackage, "err.unknown_package"),
    (PaymentUnavailable, "err.payment_unavailable"),
    (PaymentNotFound, "err.payment_not_found"),
    (RefundFailed, "err.refund_failed"),
    (PaymentError, "err.payment"),
    (NotSubscribed, "plan.not_subscribed"),
    (UnknownPlan, "err.unknown_plan"),
    (UnknownTier, "err.unknown_tier"),
    (MembershipError, "err.membership"),
)


def error_text(lang: str, exc: BaseException) -> str:
    """The user's text for `exc`; an unknown error is logged with a new incident id."""
    if isinstance(exc, InsufficientCredits):
        return t(lang, "err.insufficient", needed=tn(lang, "n.credits", exc.needed),
                 available=tn(lang, "n.credits", max(exc.available, 0)), missing=exc.missing)
    if isinstance(exc, TooManyJobs):
        return t(lang, "err.too_many_jobs", limit=exc.limit)
    if isinstance(exc, TooManyClothes):
        return t(lang, "err.tier_clothes", limit=tn(lang, "n.clothing_photos", exc.limit))
    if isinstance(exc, TierRequired):
        return t(lang, "err.tier_model", tiers=" / ".join(x.title() for x in exc.tiers) or "-")
    if isinstance(exc, Explained):
        return t(lang, exc.key, **exc.params)
    if isinstance(exc, AttachmentTooLarge):
        return t(lang, "photo.too_large", limit_mb=max(1, exc.limit // (1024 * 1024)))
    for kind, key in _PLAIN:
        if isinstance(exc, kind):
            return t(lang, key)
    return t(lang, "err.incident", incident=incident(exc))


def incident(exc: BaseException | None, what: str = "") -> str:
    """The one way an incident is made: a new id, logged at ERROR with the traceback."""
    number = secrets.token_hex(4)
    log.error("incident %s: %s", number, what or type(exc).__name__, exc_info=exc)
    return number
