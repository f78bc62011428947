"""Errors of the memberships module.

    MembershipError
     ├── UnknownTier       not a [tiers.<name>] of the config
     ├── UnknownPlan       not a [[plans]] id, or not sold the way asked
     └── NotSubscribed     cancel or change without a running subscription
"""

from __future__ import annotations

__all__ = ["MembershipError", "NotSubscribed", "UnknownPlan", "UnknownTier"]


class MembershipError(Exception):
    """Base of the memberships' own errors."""


class UnknownTier(MembershipError):
    pass


class UnknownPlan(MembershipError):
    pass


class NotSubscribed(MembershipError):
    pass
