"""The one interface every chat channel offers the rest of the bot: send and edit.

The Telegram, WeChat and console adapters implement `Channel`; the answer path and the outbox
dispatcher both send through it by way of the shared sender (`bot.answer.Sender`), so rate
limits, size rules and error mapping live in one place per channel.

A new channel: an adapter with `name`, `capabilities` (its line in
`handlers.types.CHANNELS`, the registry the conversations read by name), `send` and `edit`; it
turns each update into an `Inbound` and calls `Answerer.answer(inbound)` (`bot.answer`); it is
added to the dispatcher's `channels` in `bot.channels.open_channels`.

    ChannelError
     ├── Blocked        the user blocked the bot (Telegram 403): stop sending to them
     ├── RetryLater     the channel asked us to wait (`seconds`; Telegram 429 retry_after)
     ├── Undeliverable  this message can never go out (bad request, too large after fallbacks)
     ├── Held           it can go once the user writes again (WeChat: outside the 48 h window,
     │                  out of customer-service quota, a passive-only account): keep it
     └── (itself)       a network error or a channel fault: retry with backoff
"""

from __future__ import annotations

from typing import Protocol

from handlers.types import Capabilities, Outbound, Text

__all__ = ["Blocked", "Channel", "ChannelError", "Held", "RetryLater", "Undeliverable"]


class ChannelError(Exception):
    """Sending failed for a reason that may pass: retry later with backoff."""


class Blocked(ChannelError):
    """The user blocked the bot or deleted the chat."""


class RetryLater(ChannelError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds} s")
        self.seconds = seconds


class Undeliverable(ChannelError):
    """The channel refused this message for good; sending it again cannot help."""


class Held(ChannelError):
    """The channel can deliver this only after the user writes again: the dispatcher keeps the
    row 'held' (it never expires) until the channel's inbound side releases it
    (`bot._dispatch_sql.release_held`)."""

    reason = "held"


class Channel(Protocol):
    name: str  # "telegram", "wechat", "console": the identities' channel name
    capabilities: Capabilities  # what it can do: its line in handlers.types.CHANNELS

    async def send(self, address: str, message: Outbound) -> str | None:
        """Sends one message; returns the channel's message id when it has one."""
        ...

    async def edit(self, address: str, message_id: str, message: Text) -> None:
        """Replaces the text (and buttons) of a message sent before."""
        ...
