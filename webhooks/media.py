"""File routes: `GET /media/{key}` (local storage, signed expiring links) and `GET /demo/{name}`
(the demo provider's rendered clips, fetched by the job pipeline like any provider result).

Both answer with `web.FileResponse`, which streams from disk and honours Range and
If-Modified-Since. `/media` checks the link before it looks at the disk, so a bad or expired
link gets the same 403 whether or not the key exists.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp import web

from storage import LocalStorage

from ._deps import DEPS
from ._errors import Forbidden, NotFound

__all__ = ["DEMO_NAME", "demo_clip", "media"]

DEMO_NAME = re.compile(r"[a-f0-9]{8,64}\.mp4")
_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"}


def _media_file(storage: LocalStorage, key: str) -> Path | None:
    path = storage.file_path(key)  # InvalidKey (e.g. a symlink out of the root): 404
    return path if path.is_file() else None


def _demo_file(directory: Path, name: str) -> Path | None:
    root = directory.resolve()
    path = (root / name).resolve()
    # A symlink pointing out of the directory is refused like a missing file.
    return path if path.is_relative_to(root) and path.is_file() else None


def _file_response(path: Path | None, content_type: str) -> web.FileResponse:
    if path is None:
        raise NotFound("not found")
    return web.FileResponse(path, headers={"Content-Type": content_type, **_HEADERS})


async def media(request: web.Request) -> web.FileResponse:
    """Serves a stored file to whoever holds an unexpired link signed for its key."""
    storage = request.app[DEPS].storage
    if not isinstance(storage, LocalStorage):  # the route is only added for local storage
        raise NotFound("not found")
    key = request.match_info["key"]
    if not storage.verify_link(key, request.query.get("exp", ""), request.query.get("sig", "")):
        raise Forbidden("bad or expired link")
    path = await asyncio.to_thread(_media_file, storage, key)  # path checks touch the disk
    return _file_response(path, storage.media_type(key))


async def demo_clip(request: web.Request) -> web.FileResponse:
    """Serves one of the demo provider's clips by its content-hash name."""
    directory = request.app[DEPS].demo_dir
    name = request.match_info["name"]
    if directory is None or not DEMO_NAME.fullmatch(name):
        raise NotFound("not found")
    return _file_response(await asyncio.to_thread(_demo_file, directory, name), "video/mp4")
