"""A WeChat user's photo: by MediaId through the API client, else by PicUrl under the relay's
address rules, never past the size limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from bot.wechat import WeChatPhoto
from handlers.types import AttachmentTooLarge
from storage import UnsafeURL
from storage._urlsafety import allow_list
from tests.factories import jpeg_bytes

JPEG = jpeg_bytes()


class Media:
    """The API client's media/get, as the photo sees it."""

    def __init__(self, data: bytes | None) -> None:
        self.data = data
        self.asked: list[str] = []

    async def get_media(self, media_id: str, limit: int) -> tuple[bytes, str]:
        self.asked.append(media_id)
        if self.data is None:
            raise RuntimeError("40007 invalid media_id")
        if len(self.data) > limit:
            raise AttachmentTooLarge(len(self.data), limit)
        return self.data, "image/jpeg"


@pytest.fixture
async def pic_server() -> AsyncIterator[str]:
    """Serves /p.jpg (the photo) and /big.jpg (a large body without Content-Length)."""

    async def photo(request: web.Request) -> web.Response:
        return web.Response(body=JPEG, content_type="image/jpeg")

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"\xff" * 4096)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/p.jpg", photo)
    app.router.add_get("/big.jpg", big)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_the_media_id_comes_first(http: httpx.AsyncClient) -> None:
    media = Media(JPEG)
    photo = WeChatPhoto("M1", "https://unused.example/p.jpg", media, http)
    assert await photo.read(10_000_000) == JPEG
    assert media.asked == ["M1"]
    with pytest.raises(AttachmentTooLarge):
        await photo.read(100)


async def test_the_pic_url_is_the_fallback_under_the_address_rules(
        http: httpx.AsyncClient, pic_server: str) -> None:
    media = Media(None)
    allowed = WeChatPhoto("M2", f"{pic_server}/p.jpg", media, http,
                          allow_hosts=allow_list([pic_server]))
    assert await allowed.read(10_000_000) == JPEG
    assert media.asked == ["M2"]
    with pytest.raises(AttachmentTooLarge):
        await allowed.read(1000)  # Content-Length over the limit
    chunked = WeChatPhoto("", f"{pic_server}/big.jpg", None, http,
                          allow_hosts=allow_list([pic_server]))
    with pytest.raises(AttachmentTooLarge):
        await chunked.read(100_000)  # no Content-Length: cut off while reading
    local = WeChatPhoto("M3", f"{pic_server}/p.jpg", media, http)
    with pytest.raises(UnsafeURL):
        await local.read(10_000_000)  # plain http to a loopback address: refused unsent


async def test_a_pic_url_resolving_to_a_private_address_is_refused(
        http: httpx.AsyncClient) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["10.0.0.8"]

    photo = WeChatPhoto("", "https://mmbiz.example/p.jpg", None, http, resolve=resolve)
    with pytest.raises(UnsafeURL):
        await photo.read(10_000_000)
