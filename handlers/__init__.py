"""Channel-neutral conversations and commands; state kept in the database.

Adapters in `bot/` turn channel updates into `Inbound`, call `Handlers.handle`, and render the
`Outbound` messages they get back.

This `__init__` imports nothing at import time: the names below are loaded on first use
(PEP 562), so `import handlers.types` (small dataclasses) or `handlers.messages` (the
catalogue) do not pay for the conversations, the database layer or the payments behind them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .ports import TopUp
    from .service import ChatDeps, Handlers
    from .types import (
        CHANNELS,
        Attachment,
        AttachmentTooLarge,
        Button,
        Capabilities,
        Inbound,
        Invoice,
        Media,
        Outbound,
        Picture,
        StarsPayment,
        Text,
        capabilities_of,
    )

__all__ = [
    "CHANNELS",
    "Attachment",
    "AttachmentTooLarge",
    "Button",
    "Capabilities",
    "ChatDeps",
    "Handlers",
    "Inbound",
    "Invoice",
    "Media",
    "Outbound",
    "Picture",
    "StarsPayment",
    "Text",
    "TopUp",
    "capabilities_of",
]

_HOME = {"TopUp": ".ports", "ChatDeps": ".service", "Handlers": ".service"}


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_HOME.get(name, ".types"), __name__), name)
    globals()[name] = value  # the next access is a plain module attribute
    return value
