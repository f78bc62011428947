"""`GET|POST /wechat`: the WeChat official account's endpoint, verified, decrypted, parsed and
handed to the channel.

    hook = WeChatWebhook(token=secrets["WECHAT_TOKEN"], app_id=secrets["WECHAT_APP_ID"],
                         aes_key=secrets.get("WECHAT_AES_KEY"), max_body_bytes=65536)
    app = create_app(WebDeps(..., wechat=hook))     # the route exists only with a hook
    hook.attach(sink)                               # by bot.wechat when the channel starts

Every request carries `signature` = sha1 of the sorted token, `timestamp` and `nonce`
(`wechatpy.utils.check_signature`); a bad or missing one gets 403 and nothing else happens.
`GET` is WeChat's URL check: it echoes `echostr`. A `POST` body over `max_body_bytes` gets 413
(WeChat's messages are a few KB); the server's body middleware has read it within `[http]
max_body_bytes` and the body timeout before the route runs. In safe
mode (`encrypt_type=aes`) the body is an envelope checked against `msg_signature` and decrypted
by `wechatpy.crypto.WeChatCrypto`; a bad one gets 403, and without `WECHAT_AES_KEY` the route
cannot read it (403 as well: it is not ours to read). The XML is parsed by
`wechatpy.parse_message`; a body that is not XML, or not a WeChat message, gets 400 (only
WeChat holds the token, so this is never a user's doing, and 400 tells an operator why).

The parsed message goes to the `WeChatSink` attached by the channel, which answers with the
passive reply's text, or None for WeChat's `success` (nothing to say in the HTTP answer). The
reply is wrapped by `wechatpy.create_reply` and, in safe mode, encrypted. Before a sink is
attached the route answers 503; WeChat retries, and the retry may find a ready instance.
"""

from __future__ import annotations

import logging
import secrets
from typing import Protocol

from aiohttp import web
from wechatpy import create_reply, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import (
    InvalidAppIdException,
    InvalidSignatureException,
)
from wechatpy.messages import BaseMessage
from wechatpy.utils import check_signature

from ._deps import DEPS
from ._errors import Busy, Forbidden, NotFound, WebError

__all__ = ["SUCCESS", "WeChatSink", "WeChatWebhook", "wechat_get", "wechat_post"]

log = logging.getLogger("webhooks.wechat")

SUCCESS = "success"  # WeChat's "received, nothing to say"


class TooLarge(WebError):
    status = 413


class WeChatSink(Protocol):
    """Where the route hands a verified, parsed message: the channel's inbound side."""

    async def on_message(self, message: BaseMessage) -> str | None:
        """The passive reply's text, or None to answer `success`."""
        ...


class WeChatWebhook:
    """The secrets to check requests with and, once attached, the sink to hand messages to."""

    def __init__(self, *, token: str, app_id: str, aes_key: str | None = None,
                 max_body_bytes: int = 65_536) -> None:
        if not token:
            raise ValueError("WECHAT_TOKEN is empty")
        self._token = token
        self.max_body_bytes = max_body_bytes
        self._crypto: WeChatCrypto | None = None
        if aes_key:
            self._crypto = _crypto(token, aes_key, app_id)
        self._sink: WeChatSink | None = None

    @property
    def safe_mode(self) -> bool:
        return self._crypto is not None

    def attach(self, sink: WeChatSink) -> None:
        self._sink = sink

    def detach(self) -> None:
        self._sink = None

    @property
    def attached(self) -> bool:
        return self._sink is not None

    def check(self, query: dict[str, str]) -> None:
        """Raises Forbidden unless `signature` signs this token, `timestamp` and `nonce`."""
        try:
            check_signature(self._token, query.get("signature", ""),
                            query.get("timestamp", ""), query.get("nonce", ""))
        except InvalidSignatureException:
            raise Forbidden("bad signature") from None

    def open(self, body: bytes, query: dict[str, str]) -> str:
        """The message XML: the body itself, or in safe mode the envelope checked and decrypted."""
        if query.get("encrypt_type", "raw").lower() != "aes":
            return body.decode("utf-8", "replace")
        if self._crypto is None:
            raise Forbidden("an encrypted message, and no WECHAT_AES_KEY to read it")
        try:
            return str(self._crypto.decrypt_message(
                body, query.get("msg_signature", ""), query.get("timestamp", ""),
                query.get("nonce", "")))
        except (InvalidSignatureException, InvalidAppIdException):
            raise Forbidden("bad msg_signature") from None
        except Exception:  # not XML, no Encrypt element, bad base64 or padding
            raise WebError("malformed encrypted message") from None

    def seal(self, reply_xml: str, query: dict[str, str]) -> str:
        """The reply as WeChat expects it: as is, or in safe mode encrypted and signed."""
        if self._crypto is None or query.get("encrypt_type", "raw").lower() != "aes":
            return reply_xml
        nonce = query.get("nonce") or secrets.token_hex(8)
        return str(self._crypto.encrypt_message(reply_xml, nonce, query.get("timestamp")))

    async def hand_over(self, message: BaseMessage) -> str | None:
        sink = self._sink
        if sink is None:
            raise Busy("not ready for messages")
        return await sink.on_message(message)


def _crypto(token: str, aes_key: str, app_id: str) -> WeChatCrypto:
    """WeChatCrypto over a checked key: 43 characters of base64 for 32 bytes (never echoed)."""
    if len(aes_key) != 43:
        raise ValueError("WECHAT_AES_KEY must be the 43-character EncodingAESKey")
    try:
        crypto = WeChatCrypto(token, aes_key, app_id)
    except Exception:  # binascii.Error, or wechatpy's own length assertion
        raise ValueError("WECHAT_AES_KEY is not a valid EncodingAESKey") from None
    return crypto


def _hook(request: web.Request) -> WeChatWebhook:
    hook = request.app[DEPS].wechat
    if hook is None:
        raise NotFound("not found")
    return hook


async def wechat_get(request: web.Request) -> web.Response:
    """WeChat's URL check: echoes `echostr` when the signature holds."""
    hook = _hook(request)
    query = dict(request.query)
    hook.check(query)
    return web.Response(text=query.get("echostr", ""), content_type="text/plain")


async def wechat_post(request: web.Request) -> web.Response:
    """Verifies, reads (capped), decrypts and parses one message, hands it over, and answers
    with the passive reply or `success`."""
    hook = _hook(request)
    query = dict(request.query)
    hook.check(query)
    body = await _read_capped(request, hook.max_body_bytes)
    xml = hook.open(body, query)
    try:
        message = parse_message(xml)
    except Exception:  # xmltodict's ExpatError, a missing MsgType, a bad CreateTime…
        raise WebError("malformed message") from None
    if not isinstance(message, BaseMessage) or not message.source:
        raise WebError("malformed message")
    text = await hook.hand_over(message)
    if text is None:
        return web.Response(text=SUCCESS, content_type="text/plain")
    reply = create_reply(text, message).render()
    return web.Response(text=hook.seal(reply, query), content_type="application/xml")


async def _read_capped(request: web.Request, cap: int) -> bytes:
    """The body, refused with 413 past `cap` bytes. `body_middleware` has read it already,
    within the server's `[http] max_body_bytes` and body timeout (so nothing larger is ever
    buffered); a Content-Length over `cap` is refused without looking at the body."""
    declared = request.content_length
    if declared is not None and declared > cap:
        raise TooLarge("body too large")
    body = await request.read()
    if len(body) > cap:
        raise TooLarge("body too large")
    return body
