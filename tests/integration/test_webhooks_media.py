"""`GET /media/{key}` (signed, expiring links to local storage) and `GET /demo/{name}`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yarl
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import StoredObject, new_key
from tests.factories import FakeClock
from tests.integration.test_webhooks_stack import Stack, clip_bytes, web_stack
from wallet import Wallet

DEMO_CLIP = "0123abcd" * 8 + ".mp4"  # the longest name allowed: 64 hex digits


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / DEMO_CLIP).write_bytes(clip_bytes())
    (folder / "abcdef12.mp4").write_bytes(b"short name")
    return folder


@pytest.fixture
async def stack(engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient,
                clock: FakeClock, tmp_path: Path, demo_dir: Path) -> AsyncIterator[Stack]:
    async with web_stack(engine, wallet, http, clock, tmp_path / "media",
                         demo_dir=demo_dir) as built:
        yield built


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def stored(stack: Stack, data: bytes = b"0123456789" * 100) -> StoredObject:
    return await stack.storage.put(new_key("videos", ".mp4"), one(data),
                                   content_type="video/mp4")


def path_of(link: str) -> str:
    return link.removeprefix(link.split("/media/", 1)[0])


# --- /media ------------------------------------------------------------------------------------


async def test_a_good_link_serves_the_file_with_its_type(stack: Stack) -> None:
    obj = await stored(stack)
    status, body, resp = await stack.get(path_of(await stack.storage.url(obj.key, ttl=60)))
    assert (status, resp.content_type, len(body)) == (200, "video/mp4", obj.size)
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_good_link_supports_ranges(stack: Stack) -> None:
    obj = await stored(stack)
    link = path_of(await stack.storage.url(obj.key, ttl=60))
    status, body, resp = await stack.get(link, headers={"Range": "bytes=10-19"})
    assert (status, body) == (206, b"0123456789")
    assert resp.headers["Content-Range"] == f"bytes 10-19/{obj.size}"


async def test_an_image_key_is_served_as_an_image(stack: Stack) -> None:
    obj = await stack.storage.put(new_key("thumbs", ".jpg"), one(b"\xff\xd8\xff"),
                                  content_type="image/jpeg")
    _, _, resp = await stack.get(path_of(await stack.storage.url(obj.key, ttl=60)))
    assert resp.content_type == "image/jpeg"


async def test_a_tampered_link_is_403_and_says_nothing_of_the_key(stack: Stack) -> None:
    obj, other = await stored(stack), await stored(stack)
    link = path_of(await stack.storage.url(obj.key, ttl=60))
    sig = link.rsplit("sig=", 1)[1]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    missing = "videos/2026/03/" + "f" * 32 + ".mp4"
    answers = set()
    for tampered in (link.replace(sig, flipped), link.replace(obj.key, other.key),
                     link.replace(obj.key, missing), link.split("&sig=")[0],
                     link.split("?")[0], link.replace("exp=", "exp=1")):
        status, body, _ = await stack.get(tampered)
        assert status == 403, tampered
        answers.add(body)
    assert len(answers) == 1  # an existing and a missing key get the very same answer


async def test_an_expired_link_is_403(stack: Stack) -> None:
    obj = await stored(stack)
    link = path_of(await stack.storage.url(obj.key, ttl=60))
    stack.link_time.now += 59
    assert (await stack.get(link))[0] == 200
    stack.link_time.now += 1
    assert (await stack.get(link))[0] == 403


async def test_a_good_link_to_a_deleted_file_is_404(stack: Stack) -> None:
    obj = await stored(stack)
    link = path_of(await stack.storage.url(obj.key, ttl=60))
    await stack.storage.delete(obj.key)
    assert (await stack.get(link))[0] == 404


@pytest.mark.parametrize("path", [
    "/media/../secret.txt", "/media/videos/%2E%2E/%2E%2E/secret.txt",
    "/media/videos/..%2F..%2Fsecret.txt", "/media/%2Fetc%2Fpasswd", "/media/.%2E/secret.txt",
    "/media/videos/%5C..%5Csecret.txt",
])
async def test_traversal_never_reaches_a_file(stack: Stack, path: str) -> None:
    (stack.storage.root.parent / "secret.txt").write_text("secret")
    async with stack.session.get(yarl.URL(stack.url + path + "?exp=9999999999&sig=00",
                                          encoded=True)) as resp:
        body = await resp.read()
    assert resp.status == 403  # no key with `..` can be signed, so the link check refuses
    assert b"secret" not in body


async def test_a_signed_key_that_is_a_symlink_out_of_the_root_is_404(stack: Stack) -> None:
    outside = stack.storage.root.parent / "outside.mp4"
    outside.write_bytes(b"not yours")
    (stack.storage.root / "videos").mkdir(parents=True, exist_ok=True)
    os.symlink(outside, stack.storage.root / "videos" / "link.mp4")
    status, body, _ = await stack.get(
        path_of(await stack.storage.url("videos/link.mp4", ttl=60)))
    assert status == 404
    assert b"not yours" not in body


async def test_without_local_storage_there_is_no_media_route(
    engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient, clock: FakeClock,
    tmp_path: Path,
) -> None:
    class Elsewhere:  # any Storage that is not LocalStorage, e.g. S3
        async def put(self, key: str, chunks: object, *, content_type: str) -> StoredObject:
            raise NotImplementedError

        async def get(self, key: str) -> AsyncIterator[bytes]:
            yield b""

        async def url(self, key: str, *, ttl: int) -> str:
            return "https://cdn.example/" + key

        async def delete(self, key: str) -> None: ...

        async def exists(self, key: str) -> bool:
            return False

    async with web_stack(engine, wallet, http, clock, tmp_path, storage=Elsewhere()) as stack:
        obj = await stored(stack)
        status, _, _ = await stack.get(path_of(await stack.storage.url(obj.key, ttl=60)))
        assert status == 404
        assert (await stack.get("/demo/abcdef12.mp4"))[0] == 404  # and no demo_dir: no /demo


# --- /demo -------------------------------------------------------------------------------------


async def test_a_demo_clip_is_served_as_mp4(stack: Stack) -> None:
    status, body, resp = await stack.get(f"/demo/{DEMO_CLIP}")
    assert (status, resp.content_type, body) == (200, "video/mp4", clip_bytes())
    assert (await stack.get("/demo/abcdef12.mp4"))[0] == 200


@pytest.mark.parametrize("name", [
    "abcdef1.mp4", "0" * 65 + ".mp4", "ABCDEF12.mp4", "abcdef12.mov", "abcdef12.mp4.bak",
    "abcdefgh.mp4", ".abcdef12.mp4", "abcdef12", "..%2Fabcdef12.mp4", "abcdef12.MP4",
    "%2E%2E", "abcdef12.mp4%00",
])
async def test_a_demo_name_outside_the_rule_is_404(stack: Stack, demo_dir: Path,
                                                    name: str) -> None:
    (demo_dir / "abcdef1.mp4").write_bytes(b"x")
    async with stack.session.get(yarl.URL(f"{stack.url}/demo/{name}", encoded=True)) as resp:
        assert resp.status == 404


async def test_a_missing_demo_clip_is_404(stack: Stack) -> None:
    assert (await stack.get("/demo/" + "e" * 40 + ".mp4"))[0] == 404


async def test_a_demo_symlink_out_of_the_directory_is_404(stack: Stack, demo_dir: Path,
                                                          tmp_path: Path) -> None:
    (tmp_path / "elsewhere.mp4").write_bytes(b"not a demo clip")
    os.symlink(tmp_path / "elsewhere.mp4", demo_dir / "deadbeef.mp4")
    status, body, _ = await stack.get("/demo/deadbeef.mp4")
    assert status == 404
    assert b"not a demo" not in body
