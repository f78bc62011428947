"""WeChat's side of `/wechat` for tests: messages built, signed and (in safe mode) encrypted the
way WeChat does it, with wechatpy's own crypto, and posted over real HTTP to our server."""

from __future__ import annotations

import hashlib
import itertools
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import xmltodict
from sqlalchemy.ext.asyncio import AsyncEngine
from wechatpy.crypto import WeChatCrypto

from bot.app import serve
from bot.wechat._serve import Answered
from core.config import GenerationConfig
from generation import Catalogue, JobService
from handlers.types import Inbound, Outbound, Text
from storage import LocalStorage
from wallet import Wallet
from webhooks import Metrics, WebDeps, create_app
from webhooks.wechat import WeChatWebhook

TOKEN = "wx-token-0123"
APP_ID = "wx1234567890abcdef"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters
ACCOUNT = "gh_0123456789ab"
_ids = itertools.count(int(time.time()) * 1000)


def sign(*parts: str) -> str:
    """WeChat's signature: sha1 of the sorted parts, joined."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def message_xml(openid: str, kind: str, *, create_time: int | None = None,
                **fields: Any) -> str:
    """A message as WeChat sends it (`MsgId` for messages, none for events)."""
    body: dict[str, Any] = {"ToUserName": ACCOUNT, "FromUserName": openid,
                            "CreateTime": create_time or int(time.time()), "MsgType": kind}
    if kind != "event" and "MsgId" not in fields:
        body["MsgId"] = next(_ids)
    body.update(fields)
    return str(xmltodict.unparse({"xml": body}, full_document=False))


def text_xml(openid: str, content: str, **fields: Any) -> str:
    return message_xml(openid, "text", Content=content, **fields)


def event_xml(openid: str, event: str, key: str | None = None, **fields: Any) -> str:
    extra: dict[str, Any] = {"EventKey": key} if key is not None else {}
    return message_xml(openid, "event", Event=event, **extra, **fields)


@dataclass
class WeChatSim:
    """Posts messages to `url` as WeChat would; `safe` encrypts them (encrypt_type=aes)."""

    url: str
    safe: bool = False
    token: str = TOKEN
    app_id: str = APP_ID
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=10.0))

    async def aclose(self) -> None:
        await self.http.aclose()

    def query(self, *, bad: bool = False) -> dict[str, str]:
        timestamp, nonce = str(int(time.time())), secrets.token_hex(5)
        signature = sign(self.token, timestamp, nonce)
        if bad:
            signature = sign("not-the-token", timestamp, nonce)
        return {"signature": signature, "timestamp": timestamp, "nonce": nonce}

    async def get(self, echostr: str, *, bad: bool = False) -> httpx.Response:
        return await self.http.get(self.url, params={**self.query(bad=bad), "echostr": echostr})

    async def post(self, xml: str, *, bad: bool = False, bad_msg_signature: bool = False,
                   ) -> httpx.Response:
        """The raw HTTP answer."""
        query = self.query(bad=bad)
        body = xml.encode()
        if self.safe:
            crypto = WeChatCrypto(self.token, AES_KEY, self.app_id)
            sealed = xmltodict.parse(crypto.encrypt_message(xml, query["nonce"],
                                                            query["timestamp"]))["xml"]
            query.update(encrypt_type="aes", msg_signature=sealed["MsgSignature"])
            if bad_msg_signature:
                query["msg_signature"] = "0" * 40
            body = xmltodict.unparse({"xml": {"ToUserName": ACCOUNT,
                                              "Encrypt": sealed["Encrypt"]}},
                                     full_document=False).encode()
        return await self.http.post(self.url, params=query, content=body,
                                    headers={"Content-Type": "text/xml"})

    async def send(self, xml: str) -> str | None:
        """The reply's text content, or None for `success`; asserts a 200."""
        response = await self.post(xml)
        assert response.status_code == 200, response.text
        return reply_text(response.text, safe=self.safe, app_id=self.app_id)


def reply_text(body: str, *, safe: bool = False, app_id: str = APP_ID) -> str | None:
    if body == "success":
        return None
    if safe:
        data = xmltodict.parse(body)["xml"]
        crypto = WeChatCrypto(TOKEN, AES_KEY, app_id)
        body = crypto.decrypt_message(body, data["MsgSignature"], data["TimeStamp"],
                                      data["Nonce"])
    reply = xmltodict.parse(body)["xml"]
    assert reply["MsgType"] == "text"
    assert reply["ToUserName"] != ACCOUNT  # the reply goes back to the user
    return str(reply["Content"])


@asynccontextmanager
async def wechat_server(engine: AsyncEngine, storage: LocalStorage,
                        hook: WeChatWebhook) -> AsyncIterator[str]:
    """The web application as the composition root builds it, with the WeChat hook; yields
    the `/wechat` URL."""
    async with httpx.AsyncClient() as http:
        jobs = JobService(engine=engine, wallet=Wallet(engine), catalogue=Catalogue([]),
                          providers={}, storage=storage, http=http, config=GenerationConfig(),
                          public_url="http://127.0.0.1:9", callback_secret="c" * 32)
        app = create_app(WebDeps(engine=engine, jobs=jobs, providers={}, storage=storage,
                                 metrics=Metrics(), max_body_bytes=1 << 20, wechat=hook))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            async with serve(app, sock=sock) as url:
                yield f"{url}/wechat"


@dataclass
class Answers:
    """The injected answer path: records each Inbound and answers with `reply(inbound)`,
    after `delay` seconds (a slow handler)."""

    reply: Callable[[Inbound], list[Outbound]] = lambda i: [Text(text=f"echo {i.text}")]
    delay: float = 0.0
    inbounds: list[Inbound] = field(default_factory=list)
    gate: Callable[[], Awaitable[None]] | None = None
    finish: Callable[[Any], object] | None = None  # what the answer leaves to write (its menu)

    async def __call__(self, inbound: Inbound, held: str | None = None) -> Answered:
        import asyncio

        self.inbounds.append(inbound)
        if self.gate is not None:
            await self.gate()
        if self.delay:
            await asyncio.sleep(self.delay)
        return Answered(self.reply(inbound), self.finish)


WORDS = {"wx.pending": "PENDING: send any message to get your result",
         "wx.more": "{count} more waiting: send any message",
         "wx.unsupported": "UNSUPPORTED kind of message",
         "wx.failed": "FAILED"}


async def words(openid: str) -> Callable[..., str]:
    def say(key: str, **params: Any) -> str:
        return WORDS[key].format(**params)
    return say
