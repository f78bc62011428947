"""Channel-neutral conversations and commands; state kept in the database.

Adapters in `bot/` turn channel updates into `Inbound`, call `Handlers.handle`, and render the
`Outbound` messages they get back.
"""

from .ports import TopUp
from .service import ChatDeps, Handlers
from .types import (
    Attachment,
    AttachmentTooLarge,
    Button,
    Inbound,
    Invoice,
    Media,
    Outbound,
    Picture,
    StarsPayment,
    Text,
)

__all__ = [
    "Attachment",
    "AttachmentTooLarge",
    "Button",
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
]
