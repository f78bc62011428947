"""Channel-neutral conversations and commands; state kept in the database.

Adapters in `bot/` turn channel updates into `Inbound`, call `Handlers.handle`, and render the
`Outbound` messages they get back.
"""

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
