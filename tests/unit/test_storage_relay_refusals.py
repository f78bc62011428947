"""relay refusals and address pinning, over httpx's MockTransport and a scripted resolver."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage import (
    DownloadFailed,
    LocalStorage,
    StoredObject,
    TooLarge,
    UnexpectedContentType,
    UnsafeURL,
    new_key,
    relay,
)
from storage._urlsafety import system_resolve

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:4700::6810:85e5"
UNSAFE = [
    "http://example.com/video.mp4", "https://127.0.0.1/v.mp4", "https://10.1.2.3/v.mp4",
    "https://192.168.1.10/v.mp4", "https://169.254.169.254/latest/meta-data/",
    "https://[::1]/v.mp4", "https://[::ffff:127.0.0.1]/v.mp4", "https://[::ffff:7f00:1]/v.mp4",
    "https://0.0.0.0/v.mp4", "https://[fe80::1]/v.mp4", "https://2130706433/v.mp4",
    "https://127.1/v.mp4", "https://0x7f.0.0.1/v.mp4", "https://localhost/v.mp4",
    "https://user:pw@cdn.example.com/v.mp4", "ftp://cdn.example.com/v.mp4",
    "file:///etc/passwd", "gopher://cdn.example.com/", "https:///v.mp4", "//cdn.example.com/x",
    "https://private.example/v.mp4", "https://mixed.example/v.mp4",
]


class Script:
    """A resolver with fixed answers, counting lookups."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        queue = self.answers.get(host)
        if not queue:
            raise OSError(f"unknown host {host}")
        return queue.pop(0) if len(queue) > 1 else queue[0]


def recording(handler: Callable[[httpx.Request], httpx.Response] | None = None,
              **options: Any) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if handler is None:
            raise AssertionError(f"unexpected request to {request.url}")
        return handler(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle), **options), seen


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path, public_base="https://bot.example",
                        link_secret="0123456789abcdef-test", durable=False)


async def _system_or_script(host: str, port: int) -> list[str]:
    script = {"private.example": ["10.0.0.8"], "mixed.example": [PUBLIC_V4, "192.168.0.3"]}
    if host in script:
        return script[host]
    return await system_resolve(host, port)  # localhost and numeric forms, no network


@pytest.mark.parametrize("url", UNSAFE)
async def test_unsafe_urls_are_refused_before_any_request(storage: LocalStorage,
                                                          url: str) -> None:
    client, seen = recording()
    async with client:
        with pytest.raises(UnsafeURL):
            await relay(client, url, storage, new_key("videos", ".mp4"), max_bytes=1000,
                        timeout=5, resolve=_system_or_script)
    assert seen == []
    assert list(storage.root.rglob("*")) == []


async def test_the_request_goes_to_the_checked_address_with_the_name_kept(
    storage: LocalStorage,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"movie", headers={"Content-Type": "video/mp4"})

    resolver = Script({"cdn.example.com": [[PUBLIC_V4], ["127.0.0.1"]]})  # rebinding attempt
    client, seen = recording(answer)
    async with client:
        stored = await relay(client, "https://CDN.example.com:8443/v.mp4?token=t", storage,
                             new_key("videos", ".mp4"), max_bytes=1000, timeout=5,
                             resolve=resolver)
    assert stored.size == 5
    assert resolver.lookups == ["cdn.example.com"]
    [request] = seen
    assert str(request.url) == f"https://{PUBLIC_V4}:8443/v.mp4?token=t"
    assert request.headers["host"] == "cdn.example.com:8443"
    assert request.headers["connection"] == "close"
    assert request.headers["accept-encoding"] == "identity"
    assert request.extensions["sni_hostname"] == "cdn.example.com"


async def test_ipv6_addresses_are_pinned_too(storage: LocalStorage) -> None:
    client, seen = recording(lambda _: httpx.Response(200, content=b"v",
                                                      headers={"Content-Type": "video/mp4"}))
    async with client:
        await relay(client, "https://cdn6.example/v.mp4", storage, new_key("videos", ".mp4"),
                    max_bytes=10, timeout=5, resolve=Script({"cdn6.example": [[PUBLIC_V6]]}))
    assert seen[0].url.host == PUBLIC_V6
    assert seen[0].headers["host"] == "cdn6.example"


async def test_every_redirect_hop_is_checked_again(storage: LocalStorage) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "https://internal.example/secret"})

    resolver = Script({"cdn.example.com": [[PUBLIC_V4]], "internal.example": [["10.0.0.7"]]})
    client, seen = recording(answer)
    async with client:
        with pytest.raises(UnsafeURL, match=r"internal\.example"):
            await relay(client, "https://cdn.example.com/v.mp4", storage,
                        new_key("videos", ".mp4"), max_bytes=1000, timeout=5, resolve=resolver)
    assert len(seen) == 1
    assert resolver.lookups == ["cdn.example.com", "internal.example"]


async def test_a_relative_redirect_keeps_the_name_not_the_ip(storage: LocalStorage) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/start":
            return httpx.Response(301, headers={"Location": "/final.mp4"})
        return httpx.Response(200, content=b"ok", headers={"Content-Type": "video/mp4"})

    resolver = Script({"cdn.example.com": [[PUBLIC_V4]]})
    client, seen = recording(answer)
    async with client:
        await relay(client, "https://cdn.example.com/start", storage, new_key("videos", ".mp4"),
                    max_bytes=1000, timeout=5, resolve=resolver)
    assert [r.headers["host"] for r in seen] == ["cdn.example.com", "cdn.example.com"]
    assert resolver.lookups == ["cdn.example.com", "cdn.example.com"]


async def test_an_unresolvable_host_fails_cleanly(storage: LocalStorage) -> None:
    client, seen = recording()
    async with client:
        with pytest.raises(DownloadFailed, match="cannot resolve"):
            await relay(client, "https://nowhere.example/v.mp4", storage,
                        new_key("videos", ".mp4"), max_bytes=10, timeout=5,
                        resolve=Script({}))
    assert seen == []


async def test_error_messages_do_not_carry_the_query(storage: LocalStorage) -> None:
    client, _ = recording(lambda _: httpx.Response(403))
    async with client:
        with pytest.raises(DownloadFailed) as failed:
            await relay(client, "https://cdn.example.com/v.mp4?token=SECRET", storage,
                        new_key("videos", ".mp4"), max_bytes=10, timeout=5,
                        resolve=Script({"cdn.example.com": [[PUBLIC_V4]]}))
    assert "SECRET" not in str(failed.value)
    assert "cdn.example.com" in str(failed.value)


async def test_the_shared_clients_credentials_never_leave(storage: LocalStorage) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"v", headers={"Content-Type": "video/mp4",
                                                          "Set-Cookie": "cdn=1"})

    client, seen = recording(answer, headers={"Authorization": "Bearer KIE-KEY"},
                             cookies={"session": "s"}, auth=("user", "pass"))
    async with client:
        for _ in range(2):
            await relay(client, "https://cdn.example.com/v.mp4", storage,
                        new_key("videos", ".mp4"), max_bytes=10, timeout=5,
                        resolve=Script({"cdn.example.com": [[PUBLIC_V4]]}))
    for request in seen:
        assert "authorization" not in request.headers
        assert "cookie" not in request.headers


class LeakyStorage:
    """A Storage that leaves what it received under the key when the stream fails."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put(self, key: str, chunks: AsyncIterable[bytes], *,
                  content_type: str) -> StoredObject:
        self.objects[key] = b""
        async for chunk in chunks:
            self.objects[key] += chunk
        raise AssertionError("the stream should have failed")

    async def get(self, key: str) -> AsyncIterator[bytes]:
        yield self.objects[key]

    async def url(self, key: str, *, ttl: int) -> str:
        return key

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    async def exists(self, key: str) -> bool:
        return key in self.objects


async def test_a_partial_object_is_deleted_even_from_a_leaky_backend() -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 100

    client, _ = recording(lambda _: httpx.Response(200, content=body(),
                                                   headers={"Content-Type": "video/mp4"}))
    leaky = LeakyStorage()
    async with client:
        with pytest.raises(TooLarge):
            await relay(client, "https://cdn.example.com/v.mp4", leaky,
                        new_key("videos", ".mp4"), max_bytes=1000, timeout=5,
                        resolve=Script({"cdn.example.com": [[PUBLIC_V4]]}))
    assert leaky.objects == {}


def data_url(payload: bytes, media: str = "image/png") -> str:
    return f"data:{media};base64,{base64.b64encode(payload).decode()}"


@pytest.mark.parametrize(("url", "error"), [
    (data_url(b"x" * 1001), TooLarge),
    ("data:image/png;base64," + "A" * 100_000, TooLarge),
    ("data:image/png," + "x" * 10, DownloadFailed),
    ("data:image/png;base64,not*base64", DownloadFailed),
    ("data:image/png;base64", DownloadFailed),
    (data_url(b"hello", "text/html"), UnexpectedContentType),
    ("data:;base64,aGVsbG8=", UnexpectedContentType),
])
async def test_bad_data_urls(storage: LocalStorage, url: str, error: type[Exception]) -> None:
    client, seen = recording()
    async with client:
        with pytest.raises(error):
            await relay(client, url, storage, new_key("images", ".png"), max_bytes=1000,
                        timeout=5)
    assert seen == []
    assert list(storage.root.rglob("*")) == []


async def test_data_url_at_exactly_the_limit(storage: LocalStorage) -> None:
    client, _ = recording()
    async with client:
        stored = await relay(client, data_url(b"y" * 1000), storage, new_key("images", ".png"),
                             max_bytes=1000, timeout=5)
    assert stored.size == 1000
