"""WeChat messages in: a parsed wechatpy message → one `handlers.Inbound`, or what to do instead.

    text                    → Inbound(text=Content)            ("/balance" is a command as usual)
    image                   → Inbound(photos=(WeChatPhoto,))   fetched only when a conversation
                                                               reads it
    event subscribe         → Inbound(text="/start")           first contact: welcome and bonus
    subscribe + qrscene_X,  → Inbound(text="/start X")         the QR code's scene, as Telegram's
    SCAN with EventKey X                                       deep links pass theirs
    event CLICK (our menu)  → Inbound(text="/generate" | "/balance" | "/checkin" | "/topup")
    event unsubscribe,      → IGNORE                           nothing to say ("success")
    VIEW, location report…
    voice, video, location, → UNSUPPORTED                      the channel answers with a
    link, file, other CLICK                                    friendly text

The openid (`FromUserName`) is the address: `open_account("wechat", openid)` is the identity.
A user's photo is fetched through the API by `MediaId` (`media/get`); when that fails the
`PicUrl` WeChat gave is fetched instead, under the relay's address rules
(`storage._urlsafety.check_url`: https only, public addresses only, pinned against DNS
rebinding; `[generation] allow_hosts` as `allow_list` reads them) and without following
redirects. Both stop at the conversation's size limit.

`dedup_key` names a message for exactly-once handling: `m:<MsgId>` (WeChat's MsgId is unique
per account); events have no MsgId (wechatpy gives 0) and use the sender and CreateTime (and
the event and its key, which a retry repeats).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import httpx
from wechatpy.messages import BaseMessage

from handlers.types import AttachmentTooLarge, Inbound
from storage._exceptions import DownloadFailed, UnsafeURL
from storage._urlsafety import Resolver, check_url, system_resolve
from storage.relay import request_for

__all__ = ["CHANNEL", "IGNORE", "MENU_COMMANDS", "UNSUPPORTED", "MediaSource", "WeChatPhoto",
           "dedup_key", "to_inbound"]

log = logging.getLogger("bot.wechat")

CHANNEL = "wechat"
# The custom menu's CLICK keys and the command each one stands for.
MENU_COMMANDS: Final = {"MAKE": "generate", "BALANCE": "balance", "CHECKIN": "checkin",
                        "TOPUP": "topup"}


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


IGNORE: Final = _Marker("IGNORE")  # nothing to answer
UNSUPPORTED: Final = _Marker("UNSUPPORTED")  # a kind of message we cannot use


class MediaSource(Protocol):
    """The API client's temporary media download (`media/get`)."""

    async def get_media(self, media_id: str, max_bytes: int) -> tuple[bytes, str]:
        """The file's bytes and media type; AttachmentTooLarge past `max_bytes`; another
        error when WeChat refuses (expired media, a bad id)."""
        ...


@dataclass(frozen=True, slots=True)
class WeChatPhoto:
    """A photo a user sent: by MediaId through the API, else by PicUrl under the relay's
    address rules."""

    media_id: str
    pic_url: str
    media: MediaSource | None
    http: httpx.AsyncClient
    allow_hosts: frozenset[str] = frozenset()
    resolve: Resolver = system_resolve

    @property
    def size(self) -> int | None:
        return None  # WeChat does not say

    async def read(self, limit: int) -> bytes:
        if self.media is not None and self.media_id:
            try:
                data, _ = await self.media.get_media(self.media_id, limit)
                return data
            except AttachmentTooLarge:
                raise
            except Exception as exc:  # the URL may still work
                if not self.pic_url:
                    raise
                log.info("media/get failed (%s); trying the PicUrl", type(exc).__name__)
        return await fetch_capped(self.http, self.pic_url, limit, self.allow_hosts,
                                  self.resolve)


async def fetch_capped(http: httpx.AsyncClient, url: str, limit: int,
                       allow_hosts: frozenset[str], resolve: Resolver) -> bytes:
    """GETs `url` after the relay's address checks, refusing more than `limit` bytes."""
    try:
        target = await check_url(httpx.URL(url), allow_hosts, resolve)
    except httpx.InvalidURL:
        raise UnsafeURL("not a valid URL") from None
    response = await http.send(request_for(target, http), stream=True, follow_redirects=False)
    try:
        if response.status_code != 200:
            raise DownloadFailed(f"PicUrl: HTTP {response.status_code}",
                                 status=response.status_code)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise AttachmentTooLarge(int(declared), limit)
        parts: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise AttachmentTooLarge(None, limit)
            parts.append(chunk)
        return b"".join(parts)
    finally:
        await response.aclose()


def dedup_key(message: BaseMessage) -> str:
    """What makes a message the same message on WeChat's retry (see the module doc)."""
    msg_id = getattr(message, "id", 0) or 0
    if message.type != "event" and msg_id:
        return f"m:{msg_id}"
    data = message._data
    # The event and its key too: two menu clicks within one second are two messages.
    event = f"{data.get('CreateTime', '')}:{data.get('Event', '')}:{data.get('EventKey', '')}"
    return f"e:{message.source}:{event}"[:160]


def to_inbound(message: BaseMessage, *, photo: Callable[[str, str], WeChatPhoto],
               language: str | None = None) -> Inbound | _Marker:
    """The Inbound for `message`, or IGNORE / UNSUPPORTED (see the module doc). `photo` builds
    the attachment from a MediaId and a PicUrl."""
    base: dict[str, Any] = {"channel": CHANNEL, "address": message.source, "language": language}
    kind = message.type
    if kind == "text":
        text = str(getattr(message, "content", "") or "").strip()
        return Inbound(**base, text=text) if text else IGNORE
    if kind == "image":
        media_id = str(getattr(message, "media_id", "") or "")
        pic_url = str(getattr(message, "image", "") or "")
        if not media_id and not pic_url:
            return UNSUPPORTED
        return Inbound(**base, photos=(photo(media_id, pic_url),))
    if kind == "event":
        return _event(message, base)
    if str(message._data.get("MsgType", "")).lower() == "event":
        return IGNORE  # an event wechatpy does not know: nothing a user asked for
    return UNSUPPORTED


def _event(message: BaseMessage, base: dict[str, Any]) -> Inbound | _Marker:
    event = str(getattr(message, "event", "") or "").lower()
    if event in ("subscribe", "subscribe_scan", "scan"):
        scene = str(getattr(message, "scene_id", "") or "").strip()
        return Inbound(**base, text=f"/start {scene}".strip())
    if event == "click":
        command = MENU_COMMANDS.get(str(getattr(message, "key", "") or ""))
        return Inbound(**base, text=f"/{command}") if command else UNSUPPORTED
    return IGNORE  # unsubscribe, VIEW, LOCATION reports, template receipts…
