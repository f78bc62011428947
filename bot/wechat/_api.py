"""`WeChatApi`: the official account's HTTP API, async, on the app's shared `httpx.AsyncClient`.

Decision: we speak WeChat's wire format with httpx rather than run wechatpy's client in a
thread. wechatpy 1.8 is synchronous (requests), its token fetch and several calls ignore
`API_BASE_URL`, and a thread per call would hold a worker for every slow upload; the wire
format of the five calls we need is small JSON (`errcode`/`errmsg` on failure). wechatpy stays
in use for what is pure: parsing, replies, signatures, crypto (the inbound side).

    POST /cgi-bin/stable_token              {"grant_type", "appid", "secret", "force_refresh"}
    POST /cgi-bin/message/custom/send       {"touser", "msgtype": text|image|video, …}
    POST /cgi-bin/media/upload?type=…       multipart, field "media" (type image|video|thumb)
    GET  /cgi-bin/media/get?media_id=…      the bytes, or a JSON error
    POST /cgi-bin/menu/create               {"button": […]}

Every call goes to `[wechat] api_base_url` (a trailing "/cgi-bin/" is accepted) with
`access_token` as a query parameter. JSON bodies are UTF-8 with `ensure_ascii=False`, as wechatpy
sends them: WeChat shows `\\uXXXX` escapes to the user literally.

Errors (`errcode`), mapped once in `wechat_error` onto the channel's tree:

    ChannelError
     ├── RetryLater       45009 API quota (back off a minute), -1 system busy
     ├── Blocked          43004 the user no longer follows the account
     ├── Undeliverable    bad openid, media id, type or size: sending again cannot help
     ├── Held ─ HoldForUser  wait for the user's next message (the dispatcher keeps the row)
     │    ├── WindowClosed     45015 outside the 48 h customer-service window
     │    ├── QuotaExhausted   45047 customer-service quota used up for this user message
     │    └── PassiveOnly      48001 the account may not call this API (passive replies only)
     └── WeChatApiError   any other errcode, a bad answer or a network error: retry with backoff

40001, 40014 and 42001 (the token is invalid or expired) refresh the token once and repeat the
call; a second token error is a `WeChatApiError`. No error text holds the access token or the
app secret: httpx errors are reported by type only, since their text can carry the URL.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import httpx

from bot.channel import Blocked, ChannelError, Held, RetryLater, Undeliverable
from handlers.types import AttachmentTooLarge

__all__ = [
    "HoldForUser",
    "PassiveOnly",
    "QuotaExhausted",
    "TokenSource",
    "WeChatApi",
    "WeChatApiError",
    "WindowClosed",
    "api_root",
    "fetch_stable_token",
    "wechat_error",
]

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
RESPONSE_LIMIT = 1024 * 1024  # a JSON answer is a few hundred bytes; refuse to buffer more
_REFUSED = frozenset({
    40003,  # invalid openid
    40004, 40005, 40006, 40007, 40008, 40009, 40011,  # media type, file type, size, media id
    44001, 44002, 44003, 44004,  # empty media, body, news, text
    45002, 45003, 45004, 45005, 45007, 45008,  # content, title, description, url, length, news
    47001,  # malformed body
})


class WeChatApiError(ChannelError):
    """An errcode with no better meaning, a malformed answer or a network error: retry."""

    def __init__(self, message: str, errcode: int = 0) -> None:
        super().__init__(message)
        self.errcode = errcode


class HoldForUser(Held):
    """The message cannot go now, but can once the user writes again: keep it until then."""

    reason = "hold"

    def __init__(self, message: str, errcode: int) -> None:
        super().__init__(message)
        self.errcode = errcode


class WindowClosed(HoldForUser):
    reason = "window"


class QuotaExhausted(HoldForUser):
    reason = "quota"


class PassiveOnly(HoldForUser):
    reason = "passive"


def wechat_error(errcode: int, errmsg: str, what: str) -> ChannelError:
    """The channel error for a WeChat errcode (never 0)."""
    text = f"wechat {what}: errcode {errcode} {errmsg[:200]}"
    if errcode == 45009:
        return RetryLater(60.0)
    if errcode == -1:
        return RetryLater(2.0)
    if errcode == 43004:
        return Blocked(text)
    if errcode == 45015:
        return WindowClosed(text, errcode)
    if errcode == 45047:
        return QuotaExhausted(text, errcode)
    if errcode == 48001:
        return PassiveOnly(text, errcode)
    if errcode in _REFUSED:
        return Undeliverable(text)
    return WeChatApiError(text, errcode)


def api_root(base_url: str) -> str:
    """`https://host[/prefix]` from `[wechat] api_base_url`, with or without "/cgi-bin/"."""
    root = base_url.strip().rstrip("/")
    if root.endswith("/cgi-bin"):
        root = root[: -len("/cgi-bin")]
    if not root.startswith(("https://", "http://")):
        raise ValueError("wechat api_base_url must be an http(s) URL")
    return root


class TokenSource(Protocol):
    async def get(self) -> str:
        """A valid access token."""
        ...

    async def refresh(self, failed: str) -> str:
        """A token other than `failed`, which WeChat just refused."""
        ...


async def _read(http: httpx.AsyncClient, method: str, url: str, what: str, *,
                limit: int = RESPONSE_LIMIT, **kwargs: Any) -> tuple[httpx.Response, bytes]:
    """The response and at most `limit` bytes of its body (AttachmentTooLarge past it)."""
    try:
        async with http.stream(method, url, **kwargs) as resp:
            declared = resp.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise AttachmentTooLarge(int(declared), limit)
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise AttachmentTooLarge(None, limit)
    except httpx.HTTPError as exc:
        raise WeChatApiError(f"wechat {what}: {type(exc).__name__}") from None
    if resp.status_code != 200:
        raise WeChatApiError(f"wechat {what}: HTTP {resp.status_code}")
    return resp, bytes(body)


def _decode(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WeChatApiError(f"wechat {what}: the answer is not JSON") from None
    if not isinstance(data, dict):
        raise WeChatApiError(f"wechat {what}: the answer is not a JSON object")
    return data


def _errcode(data: dict[str, Any]) -> int:
    code = data.get("errcode", 0)
    return code if isinstance(code, int) and not isinstance(code, bool) else -2


def _json_body(data: dict[str, Any]) -> dict[str, Any]:
    return {"content": json.dumps(data, ensure_ascii=False).encode("utf-8"),
            "headers": {"Content-Type": "application/json; charset=utf-8"}}


async def fetch_stable_token(http: httpx.AsyncClient, root: str, app_id: str, secret: str, *,
                             force: bool = False) -> tuple[str, int]:
    """POST /cgi-bin/stable_token: (access_token, expires_in seconds)."""
    _, body = await _read(http, "POST", f"{root}/cgi-bin/stable_token", "stable_token",
                          **_json_body({"grant_type": "client_credential", "appid": app_id,
                                        "secret": secret, "force_refresh": force}))
    data = _decode(body, "stable_token")
    code = _errcode(data)
    if code:
        raise wechat_error(code, str(data.get("errmsg", "")), "stable_token")
    token, expires_in = data.get("access_token"), data.get("expires_in")
    if not isinstance(token, str) or not token or len(token) > 2048 \
            or not isinstance(expires_in, int) or expires_in <= 0:
        raise WeChatApiError("wechat stable_token: no usable token in the answer")
    return token, expires_in


class WeChatApi:
    """The calls the channel makes, each with one token refresh on a token error."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, tokens: TokenSource) -> None:
        self._http = http
        self._root = api_root(base_url)
        self._tokens = tokens

    async def send_text(self, openid: str, content: str) -> None:
        await self._post_json("message/custom/send",
                              {"touser": openid, "msgtype": "text", "text": {"content": content}})

    async def send_image(self, openid: str, media_id: str) -> None:
        await self._post_json("message/custom/send",
                              {"touser": openid, "msgtype": "image",
                               "image": {"media_id": media_id}})

    async def send_video(self, openid: str, media_id: str, title: str = "",
                         description: str = "") -> None:
        """A video by its media id (no `thumb_media_id`: WeChat is reported to refuse it)."""
        video: dict[str, str] = {"media_id": media_id}
        if title:
            video["title"] = title
        if description:
            video["description"] = description
        await self._post_json("message/custom/send",
                              {"touser": openid, "msgtype": "video", "video": video})

    async def create_menu(self, buttons: list[dict[str, Any]]) -> None:
        await self._post_json("menu/create", {"button": buttons})

    async def upload(self, kind: str, data: bytes, filename: str, content_type: str) -> str:
        """Uploads temporary media (kept 3 days by WeChat); returns its media id."""
        if kind not in ("image", "video", "thumb"):
            raise ValueError(f"unknown media type {kind!r}")
        answer = await self._call("POST", "media/upload", params={"type": kind},
                                  files={"media": (filename, data, content_type)})
        media_id = answer.get("thumb_media_id" if kind == "thumb" else "media_id")
        if not isinstance(media_id, str) or not media_id:
            raise WeChatApiError("wechat media/upload: no media id in the answer")
        return media_id

    async def get_media(self, media_id: str, max_bytes: int) -> tuple[bytes, str]:
        """Downloads a user's media by MediaId: (bytes, content type); AttachmentTooLarge past
        `max_bytes`, a JSON error mapped like the others."""
        token = await self._tokens.get()
        for attempt in (0, 1):
            resp, body = await _read(self._http, "GET", f"{self._root}/cgi-bin/media/get",
                                     "media/get", limit=max_bytes,
                                     params={"access_token": token, "media_id": media_id})
            ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype not in ("application/json", "text/plain"):
                return body, ctype or "application/octet-stream"
            data = _decode(body, "media/get")
            code = _errcode(data)
            if code in TOKEN_ERRORS and attempt == 0:
                token = await self._tokens.refresh(token)
                continue
            if code:
                raise wechat_error(code, str(data.get("errmsg", "")), "media/get")
            raise Undeliverable("wechat media/get: a JSON answer, not a file")
        raise AssertionError("unreachable")

    async def _post_json(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", path, **_json_body(payload))

    async def _call(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    **kwargs: Any) -> dict[str, Any]:
        token = await self._tokens.get()
        for attempt in (0, 1):
            _, body = await _read(self._http, method, f"{self._root}/cgi-bin/{path}", path,
                                  params={**(params or {}), "access_token": token}, **kwargs)
            data = _decode(body, path)
            code = _errcode(data)
            if code in TOKEN_ERRORS and attempt == 0:
                token = await self._tokens.refresh(token)
                continue
            if code:
                raise wechat_error(code, str(data.get("errmsg", "")), path)
            return data
        raise AssertionError("unreachable")
