"""What flows between the channel adapters (`bot/`) and the conversations (`handlers/`).

An adapter turns a channel's update into one `Inbound` and renders each `Outbound` it gets back:
inline keyboards on Telegram, numbered text menus on WeChat and the console. Nothing here knows a
channel; nothing in a channel knows a conversation.

    Outbound = Text | Media | Picture | Invoice

`Text.buttons` are rows of choices. A button carries either `data` (sent back as
`Inbound.choice` when pressed; at most 64 bytes, Telegram's limit for callback data) or a `url`
(a link, e.g. a payment page). `Text.track_job` asks the sender to remember the sent message as
that job's status message, which the dispatcher edits as the job moves on. `Text.free_text`
says the message asks for typed text: on a channel without buttons it clears the numbered menu
the user was shown, so a reply "1" is then text, not choice 1. `Text.keep_menu` says the reply
it is part of ends on the numbered menu the chat stores already: the sender writes no menu for
it (`handlers.menus.keep_stored`).

`Capabilities` is what a channel can do; each channel declares it once in `CHANNELS` (one line
per channel, here in the leaf so the conversations and the dispatcher can read it without
importing any adapter). Nothing reads a channel's name to decide behaviour; `capabilities_of`
answers for any name (an unknown one gets the most conservative declaration).

`PHOTO_LIMIT` is the one limit on a photo a user sends us (Telegram's getFile allows 20 MB; the
other channels keep to it so every channel behaves alike).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Protocol, runtime_checkable

__all__ = [
    "CHANNELS",
    "MAX_CHOICE_BYTES",
    "PHOTO_LIMIT",
    "Attachment",
    "AttachmentTooLarge",
    "Button",
    "Capabilities",
    "Inbound",
    "Invoice",
    "Media",
    "Outbound",
    "Picture",
    "StarsPayment",
    "Text",
    "capabilities_of",
]

MAX_CHOICE_BYTES = 64
MB = 1024 * 1024
PHOTO_LIMIT = 20 * MB  # what we download of a photo a user sends (Telegram getFile: 20 MB)


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What a channel can do. The conversations and the dispatcher read this, never the name."""

    edit: bool  # can replace a message sent before (job status messages are edited)
    buttons: bool  # inline buttons; False: numbered text menus, answered by number
    links: bool  # clickable URLs in text
    max_text_bytes: int | None  # longer texts are split by the shared sender; None: no limit
    photo_upload: int | None  # bytes of a photo we may send; None: no limit
    video_upload: int | None  # bytes of a video we may send; larger: a download link
    invoices: bool = False  # in-chat Stars invoices
    # Job status messages kept current by the dispatcher: edited where `edit`, else the
    # channel's `edit` shows the change its own way (the terminal prints a new line). False:
    # no status message is tracked (WeChat: a new message per progress step would be spam).
    progress: bool = True
    operator: bool = False  # the user is the operator at the machine (the terminal): admin
    # What is sent outside a reply is kept and shown with the reply to the user's next message
    # (WeChat's passive mode): not on screen yet, so no numbered menu is recorded for it.
    deferred: bool = False


# The registry: one line per channel. Telegram's upload limits are the cloud Bot API's (a local
# Bot API server allows more; the adapter knows which it talks to).
CHANNELS: Mapping[str, Capabilities] = MappingProxyType({
    "telegram": Capabilities(edit=True, buttons=True, links=True, max_text_bytes=None,
                             photo_upload=10 * MB, video_upload=50 * MB, invoices=True),
    "wechat": Capabilities(edit=False, buttons=False, links=True, max_text_bytes=2048,
                           photo_upload=2 * MB, video_upload=10 * MB, progress=False),
    "console": Capabilities(edit=False, buttons=False, links=True, max_text_bytes=None,
                            photo_upload=None, video_upload=None, operator=True),
})
_UNKNOWN = Capabilities(edit=False, buttons=False, links=False, max_text_bytes=2048,
                        photo_upload=2 * MB, video_upload=10 * MB, progress=False)


def capabilities_of(channel: str) -> Capabilities:
    """The channel's declaration; the most conservative one for a name not registered."""
    return CHANNELS.get(channel, _UNKNOWN)


class AttachmentTooLarge(Exception):
    """The file is over what the channel lets a bot download (Telegram getFile: 20 MB)."""

    def __init__(self, size: int | None, limit: int) -> None:
        super().__init__(f"attachment of {size} bytes is over the {limit}-byte limit")
        self.size, self.limit = size, limit


@runtime_checkable
class Attachment(Protocol):
    """A photo the user sent, fetched only when a conversation wants it."""

    @property
    def size(self) -> int | None:
        """Bytes, when the channel says; None when it does not."""
        ...

    async def read(self, limit: int) -> bytes:
        """The file's bytes; raises `AttachmentTooLarge` beyond `limit` (or the channel's)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class StarsPayment:
    """A Telegram `successful_payment`, as the payments service needs it."""

    charge_id: str  # telegram_payment_charge_id: the idempotency key
    payload: str  # invoice_payload
    currency: str
    total_amount: int
    # A Stars subscription's period: when it ends (`subscription_expiration_date`); None for a
    # one-off payment.
    subscription_expires: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Inbound:
    """One thing a user did: a message (text, command, photos) or a pressed button."""

    channel: str  # "telegram", "wechat", "console"
    address: str  # who, on that channel: Telegram user id, WeChat openid, "console"
    language: str | None = None  # the channel's language hint ("en", "zh-hans", …)
    text: str = ""  # the message text or photo caption; "/command args" for commands
    choice: str | None = None  # a pressed button's data
    photos: tuple[Attachment, ...] = ()
    album: str | None = None  # the channel's group id when several photos came together
    payment: StarsPayment | None = None
    display_name: str = ""  # for admin views only; never trusted for anything

    @property
    def command(self) -> tuple[str, list[str]] | None:
        """("grant", ["12", "5"]) for "/grant 12 5" (and "/grant@SomeBot 12 5"); else None."""
        if not self.text.startswith("/"):
            return None
        head, *args = self.text.split()
        return head[1:].split("@", 1)[0].lower(), args


@dataclass(frozen=True, slots=True, kw_only=True)
class Button:
    label: str
    data: str = ""  # callback data, ≤ MAX_CHOICE_BYTES
    url: str = ""  # or a link

    def __post_init__(self) -> None:
        if bool(self.data) == bool(self.url):
            raise ValueError("a button has either data or a url")
        if len(self.data.encode()) > MAX_CHOICE_BYTES:
            raise ValueError(f"button data over {MAX_CHOICE_BYTES} bytes: {self.data!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Text:
    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    track_job: int | None = None  # remember the sent message as this job's status message
    free_text: bool = False  # asks for typed text: clears a numbered menu (see the docstring)
    keep_menu: bool = False  # the reply ends on the stored menu: no menu write for it
    # After `handlers.menus.numbered`: the numbered choices' data, in order (the buttons are
    # now lines of `text`), so a channel that keeps the message to show later (WeChat's
    # passive account) still knows the menu it will show.
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Media:
    """A finished result from storage: a video (with its thumbnail) or a try-on image."""

    kind: str  # "video" | "photo"
    key: str
    caption: str
    thumbnail_key: str | None = None
    link_text: str = ""  # the caption's line before a download link, when the file is too big


@dataclass(frozen=True, slots=True, kw_only=True)
class Picture:
    """An image made on the spot (the admin chart)."""

    data: bytes
    caption: str = ""
    filename: str = "chart.png"


@dataclass(frozen=True, slots=True, kw_only=True)
class Invoice:
    """A Telegram Stars invoice (currency XTR, one price)."""

    title: str
    description: str
    payload: str  # 1..128 bytes
    stars: int


Outbound = Text | Media | Picture | Invoice
