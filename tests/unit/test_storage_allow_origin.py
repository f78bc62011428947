"""The relay's allow-list: an exact origin lets that origin through as it is, and nothing else
of its host; a bare host skips the public-address rule but never the https rule."""

from __future__ import annotations

import httpx
import pytest

from storage import UnsafeURL
from storage._urlsafety import allow_list, allowed_origin, check_url

DEMO = allow_list(["http://127.0.0.1:8080"])


async def never_resolve(host: str, port: int) -> list[str]:
    raise AssertionError(f"resolved {host}:{port}")


async def private(host: str, port: int) -> list[str]:
    return ["10.0.0.5"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/demo/a.mp4",
                                 "HTTP://127.0.0.1:8080/demo/a.mp4?x=1"])
async def test_the_exact_origin_is_fetched_as_it_is(url: str) -> None:
    target = await check_url(httpx.URL(url), DEMO, never_resolve)
    assert target.url == httpx.URL(url)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8081/demo/a.mp4",  # another port of the same host
    "http://127.0.0.1/demo/a.mp4",  # port 80
    "https://127.0.0.1:8080/demo/a.mp4",  # another scheme
    "http://localhost:8080/demo/a.mp4",  # another name for the host
    "http://127.0.0.2:8080/",
])
async def test_anything_else_of_that_host_is_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        await check_url(httpx.URL(url), DEMO, never_resolve)


async def test_a_bare_host_skips_the_address_rule_but_not_https() -> None:
    allowed = allow_list(["minio.internal"])
    with pytest.raises(UnsafeURL, match="only https"):
        await check_url(httpx.URL("http://minio.internal:9000/b/k"), allowed, never_resolve)
    target = await check_url(httpx.URL("https://minio.internal:9000/b/k"), allowed, private)
    assert target.url.host == "minio.internal"  # by name, as before
    with pytest.raises(UnsafeURL):  # not allowed: the private address is refused
        await check_url(httpx.URL("https://other.internal/b/k"), allowed, private)


def test_default_ports_are_one_origin() -> None:
    assert allow_list(["http://h"]) == allow_list(["http://H:80/"]) == {"http://h:80"}
    assert allowed_origin(httpx.URL("https://[::1]/x")) == "https://[::1]:443"


@pytest.mark.parametrize("entry", ["http://h:1/path", "ftp://h", "http://u:p@h:1",
                                   "http://h:1?q=1"])
def test_an_origin_entry_is_an_origin_only(entry: str) -> None:
    with pytest.raises(ValueError, match="not an origin"):
        allow_list([entry])
