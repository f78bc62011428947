"""`TelegramChannel`: the `bot.channel.Channel` that renders `Outbound` messages on Telegram.

    Text     sendMessage, buttons as an inline keyboard (data → callback_data, url → url);
             over 4096 characters it goes out in several messages, the keyboard on the last
    Media    video: sendVideo with its thumbnail when the file is within the upload limit
             (50 MB; 2000 MB with a self-hosted Bot API server), else sendPhoto of the thumbnail
             whose caption ends with a download link (sendMessage when there is no thumbnail);
             photo: sendPhoto within 10 MB, else the link
    Picture  sendPhoto of the bytes
    Invoice  sendInvoice in Telegram Stars (XTR, empty provider token, one price)

Files are read from storage only up to the limit: a larger one stops being read there and goes
out as a link (`storage.url`, valid `link_ttl` seconds). With a self-hosted server
(`local_mode`) the file is handed over as a path on this machine, which the server reads itself:
the local storage's own file, or else a temporary copy.

Errors (python-telegram-bot's, mapped once in `telegram_errors`): Forbidden → `Blocked`;
RetryAfter → `RetryLater(seconds)`; BadRequest and ChatMigrated → `Undeliverable`; every other
TelegramError (NetworkError, TimedOut, …) → `ChannelError`. BadRequest is checked before
NetworkError, of which PTB makes it a subclass. A stored file that is gone is `Undeliverable`;
another storage error a `ChannelError` (try again). The text of a mapped error never holds the bot
token: it is cut out in case a library put a URL in a message.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
)
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TelegramError

from bot._telegram_ptb import retry_seconds
from bot.channel import Blocked, ChannelError, RetryLater, Undeliverable
from handlers.types import CHANNELS, Button, Invoice, Media, Outbound, Picture, Text
from storage import LocalStorage, ObjectNotFound, Storage, StorageError

__all__ = ["Limits", "TelegramChannel", "keyboard", "telegram_errors"]

MB = 1024 * 1024
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
THUMBNAIL_LIMIT = 1 * MB  # ours are ≤ 200 kB; anything far larger is not a thumbnail


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Upload limits in bytes (Telegram's by default; tests shrink them)."""

    video: int = 50 * MB
    photo: int = 10 * MB

    @classmethod
    def for_server(cls, local_mode: bool) -> Limits:
        return cls(video=2000 * MB, photo=10 * MB) if local_mode else cls()


def keyboard(rows: tuple[tuple[Button, ...], ...]) -> InlineKeyboardMarkup | None:
    if not rows:
        return None
    return InlineKeyboardMarkup([
        [InlineKeyboardButton(b.label, callback_data=b.data) if b.data
         else InlineKeyboardButton(b.label, url=b.url) for b in row]
        for row in rows if row])


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _chunks(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Pieces of at most `limit` characters, cut at a line break where there is one."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut if cut > 0 else limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    pieces.append(text)
    return pieces


@asynccontextmanager
async def _reading(storage: Storage, key: str) -> AsyncIterator[AsyncIterator[bytes]]:
    """`storage.get(key)`, closed even when the reader stops early (over a limit)."""
    chunks = storage.get(key)
    try:
        yield chunks
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


@contextmanager
def telegram_errors(token: str = "") -> Iterator[None]:
    """Maps python-telegram-bot's errors onto the channel's tree (see the module doc)."""
    def clean(exc: Exception) -> str:
        text = f"{type(exc).__name__}: {exc}"
        return text.replace(token, "<token>")[:300] if token else text[:300]

    try:
        yield
    except Forbidden as exc:
        raise Blocked(clean(exc)) from None
    except RetryAfter as exc:
        raise RetryLater(retry_seconds(exc)) from None
    except (BadRequest, ChatMigrated) as exc:
        raise Undeliverable(clean(exc)) from None
    except TelegramError as exc:
        raise ChannelError(clean(exc)) from None


class TelegramChannel:
    name = "telegram"
    capabilities = CHANNELS["telegram"]

    def __init__(self, bot: Bot, storage: Storage, *, link_ttl: int,
                 local_mode: bool = False, limits: Limits | None = None) -> None:
        self.bot, self.storage = bot, storage
        self.link_ttl, self.local_mode = link_ttl, local_mode
        self.limits = limits or Limits.for_server(local_mode)

    def _chat(self, address: str) -> int:
        try:
            return int(address)
        except ValueError:
            raise Undeliverable(f"not a Telegram chat id: {address[:40]!r}") from None

    async def send(self, address: str, message: Outbound) -> str | None:
        chat = self._chat(address)
        try:
            with telegram_errors(self.bot.token):
                sent = await self._send(chat, message)
        except ObjectNotFound as exc:  # the file is gone (cleaned up): it never will be back
            raise Undeliverable(f"stored file missing: {exc}") from None
        except StorageError as exc:
            raise ChannelError(f"storage: {type(exc).__name__}") from None
        return str(sent.message_id)

    async def edit(self, address: str, message_id: str, message: Text) -> None:
        chat = self._chat(address)
        try:
            mid = int(message_id)
        except ValueError:
            raise Undeliverable(f"not a message id: {message_id[:40]!r}") from None
        try:
            with telegram_errors(self.bot.token):
                await self.bot.edit_message_text(
                    _clip(message.text, TEXT_LIMIT), chat_id=chat, message_id=mid,
                    reply_markup=keyboard(message.buttons))
        except Undeliverable as exc:
            if "message is not modified" not in str(exc).lower():
                raise

    async def _send(self, chat: int, message: Outbound) -> Message:
        if isinstance(message, Text):
            return await self._text(chat, message.text, keyboard(message.buttons))
        if isinstance(message, Media):
            return await self._media(chat, message)
        if isinstance(message, Picture):
            return await self.bot.send_photo(chat, message.data, filename=message.filename,
                                             caption=_clip(message.caption, CAPTION_LIMIT)
                                             or None)
        if isinstance(message, Invoice):
            return await self.bot.send_invoice(
                chat, title=message.title, description=message.description,
                payload=message.payload, currency="XTR", provider_token="",
                prices=[LabeledPrice(message.title, message.stars)])
        raise Undeliverable(f"unknown message type {type(message).__name__}")

    async def _text(self, chat: int, text: str,
                    markup: InlineKeyboardMarkup | None = None) -> Message:
        pieces = _chunks(text)
        for piece in pieces[:-1]:
            await self.bot.send_message(chat, piece)
        return await self.bot.send_message(chat, pieces[-1], reply_markup=markup)

    async def _media(self, chat: int, media: Media) -> Message:
        video = media.kind == "video"
        limit = self.limits.video if video else self.limits.photo
        thumb = (await self._read(media.thumbnail_key, THUMBNAIL_LIMIT)
                 if media.thumbnail_key else None)
        caption = _clip(media.caption, CAPTION_LIMIT) or None
        async with self._file(media.key, limit) as upload:
            if upload is not None and video:
                return await self.bot.send_video(
                    chat, upload, caption=caption, thumbnail=thumb, supports_streaming=True,
                    filename=Path(media.key).name)
            if upload is not None:
                return await self.bot.send_photo(chat, upload, caption=caption,
                                                 filename=Path(media.key).name)
        link = await self.storage.url(media.key, ttl=self.link_ttl)
        tail = f"{media.link_text}\n{link}" if media.link_text else link
        if thumb is not None:
            room = CAPTION_LIMIT - len(tail) - 2
            head = _clip(media.caption, room) if room > 0 else ""
            return await self.bot.send_photo(chat, thumb, caption=f"{head}\n\n{tail}".strip(),
                                             filename="thumbnail.jpg")
        return await self._text(chat, f"{media.caption}\n\n{tail}".strip())

    async def _read(self, key: str, limit: int) -> bytes | None:
        """The object's bytes, or None once it is found to be over `limit` bytes."""
        data = bytearray()
        async with _reading(self.storage, key) as chunks:
            async for chunk in chunks:
                data += chunk
                if len(data) > limit:
                    return None
        return bytes(data)

    @asynccontextmanager
    async def _file(self, key: str, limit: int) -> AsyncIterator[bytes | Path | None]:
        """What to upload (bytes, or a path for a self-hosted server); None: over the limit."""
        if not self.local_mode:
            yield await self._read(key, limit)
            return
        if isinstance(self.storage, LocalStorage):
            path = self.storage.file_path(key)
            size = (await asyncio.to_thread(path.stat)).st_size
            yield path if size <= limit else None
            return
        fd, name = tempfile.mkstemp(prefix="videofly-tg-", suffix=Path(key).suffix)
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                async with _reading(self.storage, key) as chunks:
                    async for chunk in chunks:
                        size += len(chunk)
                        if size > limit:
                            break
                        await asyncio.to_thread(out.write, chunk)
            yield Path(name) if size <= limit else None
        finally:
            await asyncio.to_thread(Path(name).unlink, missing_ok=True)
