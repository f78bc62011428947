"""The `Storage` protocol, the record it returns, and the key scheme every backend shares."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar, runtime_checkable

from storage._exceptions import InvalidKey

__all__ = ["MAX_KEY_LENGTH", "Storage", "StoredObject", "new_key", "validate_key"]

MAX_KEY_LENGTH = 512
# Segments are non-empty and never start with a dot: no `.`/`..` segment, and no key can name a
# backend's hidden temporary file (LocalStorage writes `.<name>.part` next to the final name).
_KEY = re.compile(r"[a-z0-9_-][a-z0-9._-]*(?:/[a-z0-9_-][a-z0-9._-]*)*")
_WORD = re.compile(r"[a-z0-9_-]+")

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredObject:
    """What `Storage.put` stored: the key, its size in bytes, media type and SHA-256 (hex)."""

    key: str
    size: int
    content_type: str
    sha256: str


@runtime_checkable
class Storage(Protocol):
    """Where finished media lives. Keys come from `new_key`, never from user or provider input.

    `put` is all-or-nothing: while the stream is being written nothing is visible under the key,
    and if the stream (or the store) fails nothing is left behind, not even a partial upload.
    `get` is an async generator; it raises `ObjectNotFound` when first iterated. Consumers that
    may stop early should wrap it in `contextlib.aclosing`.
    """

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str
    ) -> StoredObject: ...

    def get(self, key: str) -> AsyncIterator[bytes]: ...

    async def url(self, key: str, *, ttl: int) -> str:
        """A link a chat user can open for `ttl` seconds."""
        ...

    async def delete(self, key: str) -> None:
        """Removes the object; deleting a missing key is not an error."""
        ...

    async def exists(self, key: str) -> bool: ...


def validate_key(key: str) -> str:
    """Returns `key` if it is safe as a relative path and as an object name; else InvalidKey."""
    if (
        not isinstance(key, str)
        or len(key) > MAX_KEY_LENGTH
        or ".." in key
        or not _KEY.fullmatch(key)
    ):
        raise InvalidKey(f"invalid storage key {key!r:.80}")
    return key


def new_key(kind: str, suffix: str, *, now: datetime | None = None) -> str:
    """A fresh key such as `videos/2026/11/<uuid4 hex>.mp4` (`suffix` with or without the dot)."""
    ext = suffix.removeprefix(".")
    if not _WORD.fullmatch(kind) or (ext and not _WORD.fullmatch(ext)):
        raise InvalidKey(f"invalid key kind or suffix {kind!r:.40} {suffix!r:.20}")
    when = now or datetime.now(UTC)
    name = uuid.uuid4().hex + (f".{ext}" if ext else "")
    return validate_key(f"{kind}/{when:%Y}/{when:%m}/{name}")


class Digest:
    """Counts and hashes the bytes of one object as they stream past."""

    __slots__ = ("_sha", "size")

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._sha.update(data)
        self.size += len(data)

    def record(self, key: str, content_type: str) -> StoredObject:
        return StoredObject(
            key=key, size=self.size, content_type=content_type, sha256=self._sha.hexdigest()
        )


async def run_blocking(fn: Callable[..., T], /, *args: object) -> T:
    """Runs `fn(*args)` in a worker thread.

    A thread cannot be interrupted, so when the caller is cancelled this waits for the call to
    finish before re-raising: whoever cleans up next (closes the file, aborts the upload) never
    races a write still in progress.
    """
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation is what the caller must see
        raise
