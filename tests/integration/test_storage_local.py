"""LocalStorage on a real directory: atomic writes, containment, streaming reads."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import pytest

from storage import InvalidKey, LocalStorage, ObjectNotFound, new_key

SECRET = "0123456789abcdef-test-secret"
TRAVERSAL = ["../outside.mp4", "videos/../../outside.mp4", "/etc/passwd", "videos//x.mp4",
             "videos/./x.mp4", ".hidden", "videos/.x.mp4.1234.part", "a\\..\\b"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "media"


@pytest.fixture
def storage(root: Path) -> LocalStorage:
    return LocalStorage(root, public_base="https://bot.example", link_secret=SECRET)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def read_all(storage: LocalStorage, key: str) -> bytes:
    async with aclosing(storage.get(key)) as stream:
        return b"".join([chunk async for chunk in stream])


async def test_put_then_get_round_trip(storage: LocalStorage, root: Path) -> None:
    data = os.urandom(3 << 20) + b"tail"
    key = new_key("videos", ".mp4")
    stored = await storage.put(key, chunks(data[:1000], data[1000:]), content_type="video/mp4")
    assert (stored.key, stored.size, stored.content_type) == (key, len(data), "video/mp4")
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert (root / key).read_bytes() == data
    assert await read_all(storage, key) == data
    assert await storage.exists(key)
    assert leftovers(root) == [root / key]


async def test_nothing_under_the_final_name_until_the_write_completes(
    storage: LocalStorage, root: Path,
) -> None:
    key = new_key("videos", ".mp4")
    seen: list[tuple[bool, list[str]]] = []

    async def watched() -> AsyncIterator[bytes]:
        yield b"x" * (2 << 20)  # over one flush: bytes are on disk by now
        yield b"y"
        seen.append(((root / key).exists(), [p.name for p in leftovers(root)]))
        yield b"z"

    await storage.put(key, watched(), content_type="video/mp4")
    [(final_existed, files)] = seen
    assert not final_existed
    [temp] = files
    assert temp.startswith(".")
    assert temp.endswith(".part")
    assert [p.name for p in leftovers(root)] == [key.rsplit("/", 1)[1]]


async def test_a_failing_stream_leaves_nothing(storage: LocalStorage, root: Path) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * (3 << 20)
        raise ConnectionResetError("source went away")

    key = new_key("videos", ".mp4")
    with pytest.raises(ConnectionResetError):
        await storage.put(key, broken(), content_type="video/mp4")
    assert not await storage.exists(key)
    assert leftovers(root) == []


async def test_cancellation_mid_write_leaves_nothing(storage: LocalStorage, root: Path) -> None:
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(10_000):
            yield b"x" * (256 << 10)
            started.set()
            await asyncio.sleep(0.001)

    key = new_key("videos", ".mp4")
    task = asyncio.create_task(storage.put(key, endless(), content_type="video/mp4"))
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert leftovers(root) == []


@pytest.mark.parametrize("key", TRAVERSAL)
async def test_traversal_keys_are_refused_everywhere(storage: LocalStorage, key: str) -> None:
    with pytest.raises(InvalidKey):
        await storage.put(key, chunks(b"x"), content_type="video/mp4")
    with pytest.raises(InvalidKey):
        await read_all(storage, key)
    for call in (storage.exists(key), storage.delete(key), storage.url(key, ttl=60)):
        with pytest.raises(InvalidKey):
            await call
    with pytest.raises(InvalidKey):
        storage.file_path(key)


async def test_a_symlink_out_of_the_root_is_refused(
    storage: LocalStorage, root: Path, tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    (root / "videos").parent.mkdir()
    outside.mkdir()
    (root / "videos").symlink_to(outside)
    with pytest.raises(InvalidKey, match="leaves the media directory"):
        storage.file_path("videos/x.mp4")
    with pytest.raises(InvalidKey):
        await storage.put("videos/x.mp4", chunks(b"x"), content_type="video/mp4")
    assert list(outside.iterdir()) == []


async def test_file_path_and_media_type_for_the_web_layer(storage: LocalStorage,
                                                          root: Path) -> None:
    key = new_key("images", ".png")
    await storage.put(key, chunks(b"\x89PNG"), content_type="image/png")
    assert storage.file_path(key) == (root / key).resolve()
    assert storage.media_type(key) == "image/png"
    assert storage.media_type("videos/a.mp4") == "video/mp4"
    assert storage.media_type("files/a") == "application/octet-stream"


async def test_missing_objects(storage: LocalStorage) -> None:
    key = new_key("videos", ".mp4")
    assert not await storage.exists(key)
    with pytest.raises(ObjectNotFound):
        await read_all(storage, key)
    await storage.delete(key)  # idempotent
    await storage.put(key, chunks(b"abc"), content_type="video/mp4")
    await storage.delete(key)
    await storage.delete(key)
    assert not await storage.exists(key)


async def test_purge_partials_removes_only_old_temporary_files(
    storage: LocalStorage, root: Path,
) -> None:
    key = new_key("videos", ".mp4")
    await storage.put(key, chunks(b"keep"), content_type="video/mp4")
    stale = root / "videos" / ".abc.mp4.x1.part"
    fresh = root / "videos" / ".def.mp4.x2.part"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(stale, (0, 0))
    assert await storage.purge_partials(older_than=3600) == 1
    assert not stale.exists()
    assert fresh.exists()
    assert await storage.exists(key)
