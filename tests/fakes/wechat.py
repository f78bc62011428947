"""A fake WeChat official account API server (what `bot.wechat` talks to in tests).

    async with WeChatFake(app_id="wx123", secret="s3cret") as wx:
        config: [wechat] api_base_url = wx.url            # or f"{wx.url}/cgi-bin/"
        wx.user_wrote("oAlice")                          # opens the 48 h window, resets the quota
        photo = wx.add_media(jpeg_bytes, "image/jpeg")   # a MediaId a user "sent" (media/get)
        await wx.wait_for("custom/send", openid="oAlice")
        wx.sent("oAlice")                                # the message bodies, in order
        wx.script_next("custom/send", wx.errcode(45009)) # the next send answers 45009
        wx.invalidate_token()                            # the current token now gets 40001

Routes, answering as WeChat does (`{"errcode": …, "errmsg": …}` on failure, HTTP 200 either way):

    POST /cgi-bin/stable_token         normal mode returns the current token while it is valid;
                                       force_refresh (or none valid) issues a new one
    POST /cgi-bin/message/custom/send  text (≤ `text_limit` UTF-8 bytes, else 45002), image and
                                       video by an uploaded media id (40007 otherwise)
    POST /cgi-bin/media/upload?type=   multipart field "media"; image ≤ 2 MB (40009), video ≤
                                       10 MB (40011), thumb ≤ 64 KB (40006); kept in `media`
    GET  /cgi-bin/media/get?media_id=  the bytes with their content type, or 40007
    POST /cgi-bin/menu/create          kept in `menus`

Every call but stable_token needs the current token (41001 without one, 40001 for another).
Accounts and users: `passive_only` answers 48001 to customer-service sends, uploads and menus;
`require_window` answers 45015 to an openid that has not written within 48 h (`user_wrote`,
`close_window`); `quota` (None: unlimited) answers 45047 once an openid got that many messages
since it last wrote. Every request is recorded in `calls` (op, query, JSON body, raw body,
uploaded files, errcode answered). Ops for `script_next`: "stable_token", "custom/send",
"media/upload", "media/get", "menu/create".
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ._server import FakeServer, Reply

__all__ = ["Call", "Media", "Reply", "WeChatFake"]

MB = 1024 * 1024
_LIMITS = {"image": (2 * MB, 40009), "video": (10 * MB, 40011), "thumb": (64 * 1024, 40006)}


@dataclass(frozen=True)
class Call:
    op: str
    query: dict[str, str]
    body: Any  # the parsed JSON body, or None
    raw: bytes
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # field → (filename, size)
    errcode: int = 0


@dataclass(frozen=True)
class Media:
    kind: str  # image | video | thumb, or "user" for what a user sent
    data: bytes
    filename: str
    content_type: str


@dataclass
class _Peer:
    wrote_at: float | None = None
    sent: int = 0


class WeChatFake(FakeServer):
    client_max_size = 64 * MB

    def __init__(self, *, app_id: str = "wx-test-app", secret: str = "test-secret",
                 expires_in: int = 7200, text_limit: int = 2048) -> None:
        super().__init__()
        self.app_id, self.secret = app_id, secret
        self.expires_in, self.text_limit = expires_in, text_limit
        self.passive_only = False
        self.require_window = False
        self.quota: int | None = None
        self.calls: list[Call] = []
        self.media: dict[str, Media] = {}
        self.menus: list[Any] = []
        self.token_fetches: list[bool] = []  # force_refresh of each stable_token request
        self._peers: dict[str, _Peer] = {}
        self._tokens = itertools.count(1)
        self._token = ""
        self._token_expires = 0.0
        self._tick = asyncio.Event()

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/cgi-bin/stable_token", self._stable_token),
                web.post("/cgi-bin/message/custom/send", self._send),
                web.post("/cgi-bin/media/upload", self._upload),
                web.get("/cgi-bin/media/get", self._get),
                web.post("/cgi-bin/menu/create", self._menu)]

    # --- what tests do -------------------------------------------------------------------------

    @staticmethod
    def errcode(code: int, errmsg: str = "scripted error") -> Reply:
        return Reply(json={"errcode": code, "errmsg": errmsg})

    @property
    def token(self) -> str:
        """The token WeChat currently accepts ("" before the first fetch)."""
        return self._token if self._token_valid() else ""

    def invalidate_token(self) -> None:
        """The current token stops working (expired early, or refreshed elsewhere)."""
        self._token_expires = 0.0

    def user_wrote(self, openid: str) -> None:
        self._peers[openid] = _Peer(wrote_at=time.monotonic())

    def close_window(self, openid: str) -> None:
        self._peers[openid] = _Peer()

    def add_media(self, data: bytes, content_type: str = "image/jpeg") -> str:
        """Registers what a user sent; returns its MediaId for media/get."""
        media_id = f"user-media-{next(self._ids)}"
        self.media[media_id] = Media("user", data, "", content_type)
        return media_id

    def of(self, op: str) -> list[Call]:
        return [c for c in self.calls if c.op == op]

    def sent(self, openid: str | None = None) -> list[dict[str, Any]]:
        """The customer-service messages WeChat accepted, oldest first."""
        return [c.body for c in self.of("custom/send")
                if c.errcode == 0 and (openid is None or c.body.get("touser") == openid)]

    def texts(self, openid: str) -> list[str]:
        return [m["text"]["content"] for m in self.sent(openid) if m["msgtype"] == "text"]

    async def wait_for(self, op: str, *, openid: str | None = None, count: int = 1,
                       within: float = 15.0) -> list[Call]:
        """Waits (at most `within` s) until `count` accepted calls of `op` (to `openid`)."""

        def found() -> list[Call]:
            return [c for c in self.of(op) if c.errcode == 0 and (
                openid is None or (isinstance(c.body, dict) and c.body.get("touser") == openid))]

        async with asyncio.timeout(within):
            while len(found()) < count:
                tick = self._tick
                await tick.wait()
        return found()

    # --- the API -------------------------------------------------------------------------------

    def _token_valid(self) -> bool:
        return bool(self._token) and time.monotonic() < self._token_expires

    def _record(self, op: str, request: web.Request, body: Any, raw: bytes,
                files: dict[str, tuple[str, int]] | None, errcode: int) -> None:
        self.calls.append(Call(op, dict(request.query), body, raw, files or {}, errcode))
        self._tick.set()
        self._tick = asyncio.Event()

    def _answer(self, op: str, request: web.Request, data: dict[str, Any], *, body: Any = None,
                raw: bytes = b"", files: dict[str, tuple[str, int]] | None = None
                ) -> web.Response:
        self._record(op, request, body, raw, files, int(data.get("errcode", 0)))
        return web.json_response(data)

    def _error(self, op: str, request: web.Request, code: int, msg: str, **kw: Any
               ) -> web.Response:
        return self._answer(op, request, {"errcode": code, "errmsg": msg}, **kw)

    def _token_error(self, request: web.Request) -> tuple[int, str] | None:
        token = request.query.get("access_token", "")
        if not token:
            return 41001, "access_token missing"
        if token != self._token or not self._token_valid():
            return 40001, "invalid credential, access_token is invalid or not latest"
        return None

    async def _scripted(self, op: str, request: web.Request, raw: bytes) -> web.Response | None:
        reply = await self.scripted(op, request)
        if reply is None:
            return None
        assert isinstance(reply, web.Response)
        try:
            answer = json.loads(reply.body) if isinstance(reply.body, bytes) else None
        except ValueError:
            answer = None
        code = answer.get("errcode", 0) if isinstance(answer, dict) else 0
        self._record(op, request, None, raw, None, code if isinstance(code, int) else -2)
        return reply

    async def _stable_token(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if (scripted := await self._scripted("stable_token", request, raw)) is not None:
            return scripted
        try:
            body = json.loads(raw)
        except ValueError:
            return self._error("stable_token", request, 47001, "data format error", raw=raw)
        if body.get("grant_type") != "client_credential":
            return self._error("stable_token", request, 40002, "invalid grant_type", raw=raw)
        if body.get("appid") != self.app_id:
            return self._error("stable_token", request, 40013, "invalid appid", raw=raw)
        if body.get("secret") != self.secret:
            return self._error("stable_token", request, 40125, "invalid appsecret", raw=raw)
        force = body.get("force_refresh", False)
        if not isinstance(force, bool):
            return self._error("stable_token", request, 47001, "data format error", raw=raw)
        self.token_fetches.append(force)
        if force or not self._token_valid():
            self._token = f"ACCESS_TOKEN_{next(self._tokens)}_" + "x" * 100
            self._token_expires = time.monotonic() + self.expires_in
        left = max(1, int(self._token_expires - time.monotonic()))
        return self._answer("stable_token", request,
                            {"access_token": self._token, "expires_in": left}, raw=raw)

    async def _send(self, request: web.Request) -> web.StreamResponse:
        op = "custom/send"
        raw = await request.read()
        if (scripted := await self._scripted(op, request, raw)) is not None:
            return scripted
        if (bad := self._token_error(request)) is not None:
            return self._error(op, request, *bad, raw=raw)
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError:
            return self._error(op, request, 47001, "data format error", raw=raw)
        if self.passive_only:
            return self._error(op, request, 48001, "api unauthorized", body=body, raw=raw)
        openid = body.get("touser")
        if not isinstance(openid, str) or not openid:
            return self._error(op, request, 40003, "invalid openid", body=body, raw=raw)
        kind = body.get("msgtype")
        content = body.get(kind) if isinstance(kind, str) else None
        if kind not in ("text", "image", "video") or not isinstance(content, dict):
            return self._error(op, request, 40008, "invalid message type", body=body, raw=raw)
        if kind == "text":
            text = content.get("content")
            if not isinstance(text, str) or not text:
                return self._error(op, request, 44004, "empty content", body=body, raw=raw)
            if len(text.encode("utf-8")) > self.text_limit:
                return self._error(op, request, 45002, "content size out of limit", body=body,
                                   raw=raw)
        else:
            media = self.media.get(str(content.get("media_id")))
            if media is None or media.kind != kind:
                return self._error(op, request, 40007, "invalid media_id", body=body, raw=raw)
        peer = self._peers.setdefault(openid, _Peer())
        if self.require_window and (peer.wrote_at is None
                                    or time.monotonic() - peer.wrote_at > 48 * 3600):
            return self._error(op, request, 45015, "response out of time limit or subscription "
                               "is canceled", body=body, raw=raw)
        if self.quota is not None and peer.sent >= self.quota:
            return self._error(op, request, 45047, "out of response count limit", body=body,
                               raw=raw)
        peer.sent += 1
        return self._answer(op, request, {"errcode": 0, "errmsg": "ok"}, body=body, raw=raw)

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        op = "media/upload"
        if (scripted := await self._scripted(op, request, b"")) is not None:
            return scripted
        if (bad := self._token_error(request)) is not None:
            return self._error(op, request, *bad)
        if self.passive_only:
            return self._error(op, request, 48001, "api unauthorized")
        kind = request.query.get("type", "")
        if kind not in _LIMITS:
            return self._error(op, request, 40004, "invalid media type")
        form = await request.post()
        part = form.get("media")
        if not isinstance(part, web.FileField):
            return self._error(op, request, 41005, "media data missing")
        data = part.file.read()
        files = {"media": (part.filename, len(data))}
        limit, code = _LIMITS[kind]
        if len(data) > limit:
            return self._error(op, request, code, "invalid file size", files=files)
        media_id = f"{kind}-{next(self._ids)}"
        self.media[media_id] = Media(kind, data, part.filename, part.content_type)
        key = "thumb_media_id" if kind == "thumb" else "media_id"
        return self._answer(op, request, {"type": kind, key: media_id,
                                          "created_at": int(time.time())}, files=files)

    async def _get(self, request: web.Request) -> web.StreamResponse:
        op = "media/get"
        if (scripted := await self._scripted(op, request, b"")) is not None:
            return scripted
        if (bad := self._token_error(request)) is not None:
            return self._error(op, request, *bad)
        media = self.media.get(request.query.get("media_id", ""))
        if media is None:
            return self._error(op, request, 40007, "invalid media_id")
        self._record(op, request, None, b"", None, 0)
        return web.Response(body=media.data, content_type=media.content_type, headers={
            "Content-disposition": f'attachment; filename="{media.filename or "media"}"'})

    async def _menu(self, request: web.Request) -> web.StreamResponse:
        op = "menu/create"
        raw = await request.read()
        if (scripted := await self._scripted(op, request, raw)) is not None:
            return scripted
        if (bad := self._token_error(request)) is not None:
            return self._error(op, request, *bad, raw=raw)
        if self.passive_only:
            return self._error(op, request, 48001, "api unauthorized", raw=raw)
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError:
            return self._error(op, request, 47001, "data format error", raw=raw)
        if not isinstance(body.get("button"), list) or not 1 <= len(body["button"]) <= 3:
            return self._error(op, request, 40016, "invalid button size", body=body, raw=raw)
        self.menus.append(body)
        return self._answer(op, request, {"errcode": 0, "errmsg": "ok"}, body=body, raw=raw)
