"""`WeChatChannel`: the `bot.channel.Channel` that delivers `Outbound` messages on WeChat.

Active mode (a verified service account), every message a customer-service message:

    Text     message/custom/send text; longer than `text_limit_bytes` it goes in parts (the
             shared sender splits it first; this is the channel's own guard)
    Media    video: within `video_limit_bytes` as it is, else transcoded to fit (PyAV, in a
             thread), uploaded as temporary media and sent with the caption as its title and
             description; when it cannot fit (or is too big to read: `TRANSCODE_INPUT_LIMIT`),
             the thumbnail as an image and the caption with a signed link as text.
             photo (try-on): re-encoded to a JPEG within `image_limit_bytes`, uploaded, sent,
             then the caption as text
    Picture  like a photo, from its bytes
    Invoice  never on WeChat (no Stars): Undeliverable

Every customer-service message first takes a slot of the user's budget (`_peers.take_slot`):
results, money and answers are essential; a status text (`Text.track_job`) and an `edit`
(WeChat cannot edit: an edit is a new message, a milestone) are progress, which may not use the
last two slots of the quota and is dropped when the budget is short. WeChat's own 45015/45047/
48001 put the user on hold (`_peers.hold`), and the error, a `bot.channel.Held`, tells the
dispatcher to keep the message until the user writes again (`_peers.user_wrote` releases it).
A slot whose send failed before WeChat counted it is given back.

Passive mode (an unverified subscription account, 48001 for customer-service messages): no API
call at all. Each message, made text (a result becomes its caption and a signed link: uploads
are refused too), goes to `passive_sink`, which keeps it for the reply to the user's next
message (the inbound side's store, rendered now, oldest first). Without a sink the message is
`Held` in the outbox. The channel declares it (`Capabilities.deferred`): what goes to the sink
is not on screen yet, so the sender records no numbered menu for it; the menu the user answers
stays the one they see until the reply that shows the kept messages (whose own answers end on
a menu of their own, written with that reply).

Customer-service messages have no message id: `send` returns None.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.answer import split_text
from bot.channel import ChannelError, Undeliverable
from core.config import WechatConfig
from core.db import utcnow
from handlers.types import Capabilities, Invoice, Media, Outbound, Picture, Text, capabilities_of
from storage import ObjectNotFound, Storage, StorageError

from . import _peers
from ._api import PassiveOnly, QuotaExhausted, WeChatApi, WindowClosed
from ._media import MediaError, fit_image, fit_video

__all__ = ["TRANSCODE_INPUT_LIMIT", "PassiveSink", "WeChatChannel"]

log = logging.getLogger("bot.wechat")

MB = 1024 * 1024
TRANSCODE_INPUT_LIMIT = 200 * MB  # a larger result is not read into memory: it goes as a link
PHOTO_INPUT_LIMIT = 50 * MB
THUMB_INPUT_LIMIT = 5 * MB
PassiveSink = Callable[[str, Text], Awaitable[None]]  # (openid, text) → kept for the next reply
_REFUSALS = {"window": (WindowClosed, 45015), "quota": (QuotaExhausted, 45047),
             "passive": (PassiveOnly, 48001)}


class WeChatChannel:
    name = "wechat"

    def __init__(self, *, api: WeChatApi, engine: AsyncEngine, storage: Storage,
                 config: WechatConfig, link_ttl: int, passive_sink: PassiveSink | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.api, self.engine, self.storage, self.config = api, engine, storage, config
        self.link_ttl, self.passive_sink, self.clock = link_ttl, passive_sink, clock
        self.capabilities: Capabilities = replace(
            capabilities_of("wechat"), max_text_bytes=config.text_limit_bytes,
            photo_upload=config.image_limit_bytes, video_upload=config.video_limit_bytes,
            deferred=config.mode == "passive")

    async def send(self, address: str, message: Outbound) -> str | None:
        if isinstance(message, Invoice):
            raise Undeliverable("WeChat takes no Stars invoices")
        if self.config.mode == "passive":
            await self._passive(address, message)
        else:
            await self._guarded(address, lambda: self._send(address, message))
        return None

    async def edit(self, address: str, message_id: str, message: Text) -> None:
        """WeChat cannot edit: the new text goes as a milestone, when the budget allows."""
        if self.config.mode == "passive":
            return  # a passive reply carries results, not progress
        await self._guarded(address, lambda: self._texts(address, message.text,
                                                          essential=False))

    async def _guarded(self, openid: str, op: Callable[[], Awaitable[None]]) -> None:
        """Runs `op`, putting the user on hold when WeChat refuses for the window or quota."""
        try:
            await op()
        except (WindowClosed, QuotaExhausted, PassiveOnly) as exc:
            await _peers.hold(self.engine, openid, exc.reason, now=self.clock())
            raise
        except ObjectNotFound as exc:
            raise Undeliverable(f"stored file missing: {exc}") from None
        except StorageError as exc:
            raise ChannelError(f"storage: {type(exc).__name__}") from None

    # --- passive -----------------------------------------------------------------------------

    async def _passive(self, openid: str, message: Outbound) -> None:
        if self.passive_sink is None:
            raise PassiveOnly("passive account: the message waits for the user", 48001)
        await self.passive_sink(openid, await self._as_text(message))

    async def _as_text(self, message: Outbound) -> Text:
        if isinstance(message, Text):
            return message
        if isinstance(message, Media):
            return Text(text=await self._link_text(message))
        if isinstance(message, Picture):
            return Text(text=message.caption)
        raise Undeliverable(f"unknown message type {type(message).__name__}")

    async def _link_text(self, media: Media) -> str:
        link = await self.storage.url(media.key, ttl=self.link_ttl)
        tail = f"{media.link_text}\n{link}" if media.link_text else link
        return f"{media.caption}\n\n{tail}".strip()

    # --- active ------------------------------------------------------------------------------

    async def _send(self, openid: str, message: Outbound) -> None:
        if isinstance(message, Text):
            essential = message.track_job is None
            await self._texts(openid, message.text, essential=essential)
        elif isinstance(message, Media) and message.kind == "video":
            await self._video(openid, message)
        elif isinstance(message, Media):
            data = await self._read(message.key, PHOTO_INPUT_LIMIT)
            await self._image(openid, data, message.caption, fallback=message)
        elif isinstance(message, Picture):
            await self._image(openid, message.data, message.caption, fallback=None)
        else:
            raise Undeliverable(f"unknown message type {type(message).__name__}")

    async def _slot(self, openid: str, essential: bool, op: Callable[[], Awaitable[None]]
                    ) -> bool:
        """Runs `op` (one customer-service message) in a slot of the budget; False: dropped."""
        refusal = await _peers.take_slot(self.engine, openid, essential=essential,
                                         quota=self.config.cs_quota, now=self.clock())
        if refusal == "budget":
            log.info("wechat: a progress message dropped: the budget is kept for results")
            return False
        if refusal is not None:
            error, code = _REFUSALS[refusal]
            raise error(f"wechat: held until the user writes ({refusal})", code)
        try:
            await op()
        except (QuotaExhausted, WindowClosed, PassiveOnly):
            raise  # WeChat counted it, or the window is shut anyway
        except BaseException:
            await _peers.give_back(self.engine, openid, now=self.clock())
            raise
        return True

    async def _texts(self, openid: str, text: str, *, essential: bool = True) -> None:
        for part in split_text(text, self.config.text_limit_bytes):
            if not part.strip():
                continue  # WeChat refuses an empty text (44004)

            async def op(piece: str = part) -> None:
                await self.api.send_text(openid, piece)

            if not await self._slot(openid, essential, op):
                return

    async def _video(self, openid: str, media: Media) -> None:
        data = await self._read(media.key, TRANSCODE_INPUT_LIMIT)
        fitted = await fit_video(data, self.config.video_limit_bytes) if data else None
        if fitted is None or fitted.how == "link":
            await self._as_link(openid, media)
            return
        title, _, rest = media.caption.partition("\n")
        name = Path(media.key).stem + ".mp4"

        async def op() -> None:
            media_id = await self.api.upload("video", fitted.data, name, "video/mp4")
            await self.api.send_video(openid, media_id, title[:64], rest.strip()[:120])

        await self._slot(openid, True, op)

    async def _as_link(self, openid: str, media: Media) -> None:
        """The thumbnail as an image (when there is one), then the caption with a link."""
        thumb = (await self._read(media.thumbnail_key, THUMB_INPUT_LIMIT)
                 if media.thumbnail_key else None)
        if thumb:
            try:
                await self._upload_image(openid, thumb)
            except MediaError:
                log.info("wechat: the thumbnail of %s is not an image we can send", media.key)
        await self._texts(openid, await self._link_text(media))

    async def _image(self, openid: str, data: bytes | None, caption: str,
                     fallback: Media | None) -> None:
        try:
            if data is None:
                raise MediaError("too large to read")
            await self._upload_image(openid, data)
        except MediaError:
            if fallback is None:
                raise Undeliverable("the picture is no image WeChat takes") from None
            await self._texts(openid, await self._link_text(fallback))
            return
        if caption:
            await self._texts(openid, caption)

    async def _upload_image(self, openid: str, data: bytes) -> None:
        jpeg = await fit_image(data, self.config.image_limit_bytes)

        async def op() -> None:
            media_id = await self.api.upload("image", jpeg, "image.jpg", "image/jpeg")
            await self.api.send_image(openid, media_id)

        await self._slot(openid, True, op)

    async def _read(self, key: str, limit: int) -> bytes | None:
        """The object's bytes, or None once it is found to be over `limit` bytes."""
        data = bytearray()
        chunks = self.storage.get(key)
        try:
            async for chunk in chunks:
                data += chunk
                if len(data) > limit:
                    return None
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        return bytes(data)
