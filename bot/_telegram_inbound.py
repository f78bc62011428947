"""Telegram updates in: `Update` → `handlers.Inbound`, photos as lazy attachments, albums.

Only private chats are served (the address is the user's id, which is also the private chat's
id); updates from groups and channels are ignored. A message's photo is its largest size; an
image sent as a document ("send as file") counts as a photo too. Nothing is downloaded until a
conversation reads the attachment, and a file Telegram says is over the limit is refused before
any request (`getFile` serves at most 20 MB to bots).

Albums: Telegram sends each photo of a media group as its own update, sharing one
`media_group_id`. `AlbumCollector` keeps the parts of a user's album and hands them over as ONE
`Inbound` once no part has come for `wait` seconds (at most `max_wait` after the first part), or
at once when the same user's next non-album update arrives, so that the album is handled before
it. When parts land on different instances (webhook behind a load balancer), each instance hands
over the parts it got, as separate `Inbound`s with the same `album`; the conversations accept
that as well.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from telegram import Bot, Message, Update
from telegram.constants import ChatType
from telegram.error import BadRequest

from handlers.types import PHOTO_LIMIT, Attachment, AttachmentTooLarge, Inbound, StarsPayment

__all__ = ["DOWNLOAD_LIMIT", "AlbumCollector", "TelegramPhoto", "to_inbound"]

log = logging.getLogger("bot.telegram")

CHANNEL = "telegram"
DOWNLOAD_LIMIT = PHOTO_LIMIT  # getFile: bots download at most 20 MB


@dataclass(frozen=True, slots=True)
class TelegramPhoto:
    """A photo (or image document) a user sent, fetched through getFile when read."""

    bot: Bot
    file_id: str
    file_size: int | None
    limit: int = DOWNLOAD_LIMIT

    @property
    def size(self) -> int | None:
        return self.file_size

    async def read(self, limit: int) -> bytes:
        cap = min(limit, self.limit)
        if self.file_size is not None and self.file_size > cap:
            raise AttachmentTooLarge(self.file_size, cap)
        try:
            file = await self.bot.get_file(self.file_id)
        except BadRequest as exc:
            if "too big" in exc.message.lower():  # "Bad Request: file is too big"
                raise AttachmentTooLarge(self.file_size, cap) from None
            raise
        if file.file_size is not None and file.file_size > cap:
            raise AttachmentTooLarge(file.file_size, cap)
        data = await file.download_as_bytearray()
        if len(data) > cap:
            raise AttachmentTooLarge(len(data), cap)
        return bytes(data)


def _photos(bot: Bot, message: Message, limit: int) -> tuple[Attachment, ...]:
    if message.photo:
        best = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        return (TelegramPhoto(bot, best.file_id, best.file_size, limit),)
    doc = message.document
    if doc is not None and (doc.mime_type or "").startswith("image/"):
        return (TelegramPhoto(bot, doc.file_id, doc.file_size, limit),)
    return ()


def to_inbound(update: Update, bot: Bot, *, limit: int = DOWNLOAD_LIMIT) -> Inbound | None:
    """The Inbound of one update, or None when it is nothing a conversation handles."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or user.is_bot:
        return None
    base: dict[str, Any] = {"channel": CHANNEL, "address": str(user.id),
                            "language": user.language_code, "display_name": user.full_name}
    query = update.callback_query
    if query is not None:
        if query.data is None:  # a game button; no conversation uses those
            return None
        if query.message is not None and query.message.chat.type != ChatType.PRIVATE:
            return None
        return Inbound(**base, choice=query.data)
    message = update.message
    if message is None or chat is None or chat.type != ChatType.PRIVATE:
        return None
    paid = message.successful_payment
    if paid is not None:
        return Inbound(**base, payment=StarsPayment(
            charge_id=paid.telegram_payment_charge_id, payload=paid.invoice_payload,
            currency=paid.currency, total_amount=paid.total_amount))
    photos = _photos(bot, message, limit)
    text = message.text or message.caption or ""
    if not text and not photos:
        return None  # stickers, voice, locations…: nothing to answer
    return Inbound(**base, text=text, photos=photos, album=message.media_group_id)


def merge_album(parts: list[Inbound]) -> Inbound:
    """One Inbound of an album's parts (in message order): every photo, the caption found."""
    first = parts[0]
    caption = next((p.text for p in parts if p.text), "")
    photos = tuple(photo for part in parts for photo in part.photos)
    return Inbound(channel=first.channel, address=first.address, language=first.language,
                   display_name=first.display_name, text=caption, photos=photos,
                   album=first.album)


@dataclass
class _Pending:
    album: str
    parts: list[tuple[int, Inbound]] = field(default_factory=list)
    timer: asyncio.Task[None] | None = None
    started: float = 0.0


class AlbumCollector:
    """Collects a user's album parts and delivers them as one Inbound (see the module doc)."""

    def __init__(self, *, deliver: Callable[[Inbound], Awaitable[None]],
                 serialised: Callable[[int], Any],
                 spawn: Callable[[Coroutine[Any, Any, None]], object],
                 wait: float = 1.0, max_wait: float = 3.0) -> None:
        self._deliver = deliver
        self._serialised = serialised  # the user's lock (PerUserProcessor.serialised)
        self._spawn = spawn
        self._wait, self._max_wait = wait, max_wait
        self._pending: dict[int, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    async def add(self, user: int, message_id: int, part: Inbound) -> None:
        """Keeps one part (the caller holds the user's lock)."""
        assert part.album is not None
        pending = self._pending.get(user)
        if pending is not None and pending.album != part.album:
            await self.flush(user)
            pending = None
        loop = asyncio.get_running_loop()
        if pending is None:
            pending = self._pending[user] = _Pending(part.album, started=loop.time())
        pending.parts.append((message_id, part))
        if pending.timer is not None:
            pending.timer.cancel()
        delay = min(self._wait, pending.started + self._max_wait - loop.time())
        timer = asyncio.ensure_future(self._later(user, pending, max(delay, 0.0)))
        pending.timer = timer
        self._spawn(self._guarded(timer))

    async def flush(self, user: int) -> None:
        """Delivers the user's pending album now, if any (the caller holds the user's lock)."""
        pending = self._pending.pop(user, None)
        if pending is None:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        parts = [p for _, p in sorted(pending.parts, key=lambda item: item[0])]
        await self._deliver(merge_album(parts))

    async def _later(self, user: int, pending: _Pending, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self._serialised(user):
            if self._pending.get(user) is pending:
                pending.timer = None  # this task: flush must not cancel it
                await self.flush(user)

    @staticmethod
    async def _guarded(timer: asyncio.Task[None]) -> None:
        """Awaits a timer so the application waits for it on stop; a reset timer is fine."""
        try:
            await timer
        except asyncio.CancelledError:
            if not timer.cancelled():
                raise
