"""relay against a real aiohttp server on 127.0.0.1, and the refusals that need no server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from storage import (
    DownloadFailed,
    DownloadTimeout,
    LocalStorage,
    TooLarge,
    UnexpectedContentType,
    UnsafeURL,
    new_key,
    relay,
)

MiB = 1 << 20
BODY = bytes(range(256)) * (3 * MiB // 256)


@dataclass
class Origin:
    """The test server: its base URL and the paths it was asked for."""

    base: str
    hits: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> frozenset[str]:
        """The allow-list that lets exactly this server through (plain http, loopback)."""
        return frozenset({self.base})


async def _chunked(request: web.Request, total: int, delay: float = 0) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
    await response.prepare(request)
    for _ in range(total // (64 << 10)):
        await response.write(b"c" * (64 << 10))
        if delay:
            await asyncio.sleep(delay)
    await response.write_eof()
    return response


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    hits: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        hits.append(request.path_qs)
        return await handler(request)

    async def video(_: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="video/mp4")

    async def declared_big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = 50 * MiB
        await response.prepare(request)
        await response.write(b"x" * 1024)
        return response

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def chunked(request: web.Request) -> web.StreamResponse:
        return await _chunked(request, 2 * MiB)

    async def slow(request: web.Request) -> web.StreamResponse:
        return await _chunked(request, 2 * MiB, delay=1)

    async def html(_: web.Request) -> web.Response:
        return web.Response(text="<html>", content_type="text/html")

    async def octet(_: web.Request) -> web.Response:
        return web.Response(body=b"bin", content_type="application/octet-stream")

    async def gone(_: web.Request) -> web.Response:
        return web.Response(status=404)

    routes = {"/video": video, "/chunked": chunked, "/declared-big": declared_big, "/slow": slow,
              "/redirect": redirect, "/html": html, "/octet": octet, "/gone": gone}
    app = web.Application(middlewares=[record])
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield Origin(f"http://127.0.0.1:{runner.addresses[0][1]}", hits)
    await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http:
        yield http


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media", public_base="https://bot.example",
                        link_secret="0123456789abcdef-test", durable=False)


def stored_files(storage: LocalStorage) -> list[Path]:
    return [p for p in storage.root.rglob("*") if p.is_file()] if storage.root.exists() else []


async def test_relays_a_body_with_content_length(origin: Origin, client: httpx.AsyncClient,
                                                 storage: LocalStorage) -> None:
    key = new_key("videos", ".mp4")
    stored = await relay(client, f"{origin.base}/video", storage, key, max_bytes=4 * MiB,
                         timeout=5, allow_hosts=origin.allowed)
    assert (stored.size, stored.content_type) == (len(BODY), "video/mp4")
    assert stored.sha256 == hashlib.sha256(BODY).hexdigest()
    assert storage.file_path(key).read_bytes() == BODY


async def test_relays_a_chunked_body(origin: Origin, client: httpx.AsyncClient,
                                     storage: LocalStorage) -> None:
    stored = await relay(client, f"{origin.base}/chunked", storage, new_key("videos", ".mp4"),
                         max_bytes=2 * MiB, timeout=5, allow_hosts=origin.allowed)
    assert stored.size == 2 * MiB  # exactly the limit is fine


async def test_declared_length_over_the_limit_is_refused_before_reading(
    origin: Origin, client: httpx.AsyncClient, storage: LocalStorage,
) -> None:
    with pytest.raises(TooLarge, match="declared"):
        await relay(client, f"{origin.base}/declared-big", storage, new_key("videos", ".mp4"),
                    max_bytes=10 * MiB, timeout=5, allow_hosts=origin.allowed)
    assert stored_files(storage) == []


async def test_chunked_body_over_the_limit_is_cut_off(origin: Origin, client: httpx.AsyncClient,
                                                      storage: LocalStorage) -> None:
    key = new_key("videos", ".mp4")
    with pytest.raises(TooLarge, match="exceeds"):
        await relay(client, f"{origin.base}/chunked", storage, key, max_bytes=MiB + 1,
                    timeout=5, allow_hosts=origin.allowed)
    assert not await storage.exists(key)
    assert stored_files(storage) == []


async def test_a_slow_source_times_out(origin: Origin, client: httpx.AsyncClient,
                                       storage: LocalStorage) -> None:
    started = time.monotonic()
    with pytest.raises(DownloadTimeout):
        await relay(client, f"{origin.base}/slow", storage, new_key("videos", ".mp4"),
                    max_bytes=4 * MiB, timeout=0.3, allow_hosts=origin.allowed)
    assert time.monotonic() - started < 2
    assert stored_files(storage) == []


@pytest.mark.parametrize("to", ["http://169.254.169.254/latest/meta-data/",
                                "https://169.254.169.254/latest/meta-data/",
                                "https://10.0.0.7/internal", "https://[::1]/x"])
async def test_a_redirect_to_a_private_address_is_refused(
    origin: Origin, client: httpx.AsyncClient, storage: LocalStorage, to: str,
) -> None:
    with pytest.raises(UnsafeURL):
        await relay(client, f"{origin.base}/redirect?to={to}", storage,
                    new_key("videos", ".mp4"), max_bytes=MiB, timeout=5,
                    allow_hosts=origin.allowed)
    assert len(origin.hits) == 1


async def test_a_redirect_to_localhost_by_name_is_refused(
    origin: Origin, client: httpx.AsyncClient, storage: LocalStorage,
) -> None:
    port = origin.base.rsplit(":", 1)[1]
    for to in (f"http://localhost:{port}/video", f"https://localhost:{port}/video"):
        with pytest.raises(UnsafeURL):
            await relay(client, f"{origin.base}/redirect?to={to}", storage,
                        new_key("videos", ".mp4"), max_bytes=4 * MiB, timeout=5,
                        allow_hosts=origin.allowed)
    assert origin.hits == [f"/redirect?to=http://localhost:{port}/video",
                           f"/redirect?to=https://localhost:{port}/video"]


async def test_redirects_within_allowed_hosts_are_followed_up_to_a_limit(
    origin: Origin, client: httpx.AsyncClient, storage: LocalStorage,
) -> None:
    stored = await relay(client, f"{origin.base}/redirect?to=/video", storage,
                         new_key("videos", ".mp4"), max_bytes=4 * MiB, timeout=5,
                         allow_hosts=origin.allowed)
    assert stored.size == len(BODY)
    loop = "/redirect?to=/redirect%3Fto%3D/redirect%253Fto%253D/video"
    with pytest.raises(DownloadFailed, match="more than 1 redirects"):
        await relay(client, origin.base + loop, storage, new_key("videos", ".mp4"),
                    max_bytes=4 * MiB, timeout=5, allow_hosts=origin.allowed, max_redirects=1)


async def test_error_status_and_wrong_type(origin: Origin, client: httpx.AsyncClient,
                                           storage: LocalStorage) -> None:
    with pytest.raises(DownloadFailed) as failed:
        await relay(client, f"{origin.base}/gone", storage, new_key("videos", ".mp4"),
                    max_bytes=MiB, timeout=5, allow_hosts=origin.allowed)
    assert failed.value.status == 404
    with pytest.raises(UnexpectedContentType):
        await relay(client, f"{origin.base}/html", storage, new_key("videos", ".mp4"),
                    max_bytes=MiB, timeout=5, allow_hosts=origin.allowed)
    assert stored_files(storage) == []


async def test_octet_stream_is_stored_with_the_type_of_the_key(
    origin: Origin, client: httpx.AsyncClient, storage: LocalStorage,
) -> None:
    stored = await relay(client, f"{origin.base}/octet", storage, new_key("videos", ".mp4"),
                         max_bytes=MiB, timeout=5, allow_hosts=origin.allowed)
    assert stored.content_type == "video/mp4"


async def test_loopback_server_needs_the_allow_list(origin: Origin, client: httpx.AsyncClient,
                                                    storage: LocalStorage) -> None:
    port = origin.base.rsplit(":", 1)[1]
    for url in (f"{origin.base}/video", f"https://127.0.0.1:{port}/video",
                f"https://localhost:{port}/video", f"https://LOCALHOST.:{port}/video"):
        with pytest.raises(UnsafeURL):
            await relay(client, url, storage, new_key("videos", ".mp4"), max_bytes=4 * MiB,
                        timeout=5)
    assert origin.hits == []


async def test_data_urls(client: httpx.AsyncClient, storage: LocalStorage) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
    encoded = base64.b64encode(png).decode()
    stored = await relay(client, f"data:image/png;base64,{encoded}", storage,
                         new_key("images", ".png"), max_bytes=1000, timeout=5)
    assert (stored.size, stored.content_type) == (len(png), "image/png")
    assert storage.file_path(stored.key).read_bytes() == png
    wrapped = encoded[:40] + "\n" + encoded[40:].replace("+", "%2B").replace("/", "%2F")
    again = await relay(client, f"DATA:image/png;base64,{wrapped}", storage,
                        new_key("images", ".png"), max_bytes=1000, timeout=5)
    assert again.sha256 == stored.sha256
