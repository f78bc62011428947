"""Storing a provider's result: stream each file into storage, then a first-frame thumbnail.

Nothing is held whole in memory: the relay streams into storage, and the thumbnail is read from
the stored file (local storage) or from a temporary copy streamed back to disk (S3).
`thumbnail` (PyAV and Pillow) is imported on the first thumbnail, not at start-up.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from core.config import GenerationConfig
from core.crash import crash_point
from storage import LocalStorage, Storage, StoredObject, new_key, relay

VIDEO_KINDS = ("text-to-video", "image-to-video")


@dataclass(frozen=True, slots=True)
class Stored:
    keys: list[str]
    thumbnail_key: str | None
    size: int


_IMAGE_SUFFIXES = {"image/png": ".png", "image/webp": ".webp", "image/jpeg": ".jpg"}


def image_suffix(url: str) -> str:
    """A file suffix for an image result, from its data: type or its path; .jpg otherwise."""
    if url.startswith("data:"):
        return _IMAGE_SUFFIXES.get(url[5:].split(";", 1)[0].split(",", 1)[0].lower(), ".jpg")
    path = urlsplit(url).path.lower()
    return next((s for s in (".png", ".webp", ".jpg", ".jpeg") if path.endswith(s)), ".jpg")


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _thumbnail(storage: Storage, key: str) -> bytes:
    from .thumbnail import first_frame_jpeg  # PyAV and Pillow: see the module docstring

    if isinstance(storage, LocalStorage):
        return await asyncio.to_thread(first_frame_jpeg, storage.file_path(key))
    fd, name = tempfile.mkstemp(suffix=".mp4")
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in storage.get(key):
                await asyncio.to_thread(out.write, chunk)
        return await asyncio.to_thread(first_frame_jpeg, Path(name))
    finally:
        os.unlink(name)


async def store_results(
    http: httpx.AsyncClient, storage: Storage, urls: Sequence[str], *, kind: str,
    config: GenerationConfig, allow_hosts: frozenset[str],
) -> Stored:
    """Stores every result URL; on any failure removes what it stored and re-raises."""
    video = kind in VIDEO_KINDS
    done: list[StoredObject] = []
    try:
        for url in urls[: 1 if video else 8]:
            suffix = ".mp4" if video else image_suffix(url)
            done.append(await relay(
                http, url, storage, new_key("videos" if video else "images", suffix),
                max_bytes=config.result_max_bytes, timeout=config.download_timeout_seconds,
                allow_hosts=allow_hosts))
        if not done:
            raise ValueError("the provider reported success without a result")
        crash_point("mid_upload")
        thumb = None
        if video:
            thumb = new_key("thumbs", ".jpg")
            await storage.put(thumb, _one(await _thumbnail(storage, done[0].key)),
                              content_type="image/jpeg")
        return Stored([d.key for d in done], thumb, sum(d.size for d in done))
    except BaseException:
        for d in done:
            await storage.delete(d.key)
        raise
