"""Media as files under one directory, served by the web layer at `GET /media/{key}`.

Writes go to a hidden temporary file (`.<name>.<random>.part`) in the key's own directory and
are renamed over the final name only once complete (and, by default, fsynced), so a reader never
sees half a file; on any error, or cancellation, the temporary file is removed. Keys can never
name such a file (no key segment starts with a dot).

Links are signed and expire (see `storage._links`): `url()` returns
`{public_base}/media/{key}?exp=<unix>&sig=<hex HMAC-SHA256>`. The secret comes from the
environment variable `MEDIA_LINK_SECRET` (at least 16 bytes; `build_storage` reads it). Changing
it invalidates every link already sent. The route does, in this order::

    if not storage.verify_link(key, request.query.get("exp", ""), request.query.get("sig", "")):
        raise web.HTTPForbidden()
    path = storage.file_path(key)            # InvalidKey → 404; stays inside the root
    return web.FileResponse(path, headers={"Content-Type": storage.media_type(key)})

Files are created with mode 0600: only the service user reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from storage._base import Digest, StoredObject, run_blocking, validate_key
from storage._exceptions import BackendError, InvalidKey, ObjectNotFound
from storage._links import LinkSigner

__all__ = ["LocalStorage"]

T = TypeVar("T")
_FLUSH_BYTES = 1 << 20  # hand the disk 1 MiB at a time: few thread hops, little memory
_READ_BYTES = 256 << 10
_PARTIAL = ".part"


async def _io(fn: Callable[..., T], /, *args: object) -> T:
    try:
        return await run_blocking(fn, *args)
    except OSError as exc:
        raise BackendError(f"local storage: {type(exc).__name__}: {exc.strerror}") from exc


def _write(fd: int, digest: Digest, data: bytearray) -> None:
    view = memoryview(data)
    digest.update(view)  # hashlib drops the GIL for large buffers, so this runs in the thread
    while view:
        view = view[os.write(fd, view):]


async def _write_all(fd: int, chunks: AsyncIterable[bytes], digest: Digest) -> None:
    """Writes the stream to `fd` in 1 MiB pieces, hashing and writing each in a worker thread
    while the next one is received. One write at a time is in flight, so order is kept."""
    in_flight: asyncio.Task[None] | None = None
    try:
        buf = bytearray()
        async for chunk in chunks:
            buf += chunk
            if len(buf) >= _FLUSH_BYTES:
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.create_task(_io(_write, fd, digest, buf))
                buf = bytearray()
        if in_flight is not None:
            await in_flight
        if buf:
            await _io(_write, fd, digest, buf)
    finally:
        if in_flight is not None:
            if not in_flight.done():
                # Stopped by the stream's error or a cancellation: the caller closes `fd`
                # next, so the write in progress must end first.
                await asyncio.wait({in_flight})
            if not in_flight.cancelled():
                in_flight.exception()  # retrieved: the error that stopped us is the one raised


def _open_temp(directory: Path, name: str) -> tuple[int, str]:
    directory.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=_PARTIAL)


def _open_for_reading(path: Path) -> BinaryIO:
    return path.open("rb")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStorage:
    """`Storage` on the local disk, with signed links served by the application itself."""

    def __init__(
        self,
        root: str | os.PathLike[str] = "data/media",
        *,
        public_base: str,
        link_secret: str | bytes,
        durable: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._root = Path(root)
        self._base = public_base.rstrip("/")
        self._signer = LinkSigner(link_secret)
        self._durable = durable
        self._clock = clock

    def __repr__(self) -> str:
        return f"LocalStorage(root={str(self._root)!r}, public_base={self._base!r})"

    @property
    def root(self) -> Path:
        return self._root

    def file_path(self, key: str) -> Path:
        """The file for `key`, resolved; InvalidKey if it would fall outside the root."""
        root = self._root.resolve()
        path = (root / validate_key(key)).resolve()
        if not path.is_relative_to(root) or path == root:
            raise InvalidKey(f"storage key {key!r:.80} leaves the media directory")
        return path

    @staticmethod
    def media_type(key: str) -> str:
        """The Content-Type to serve `key` with, from its suffix (which `new_key` chose)."""
        return mimetypes.guess_type(validate_key(key))[0] or "application/octet-stream"

    def verify_link(self, key: str, exp: str | int, sig: str, now: float | None = None) -> bool:
        """True for an unexpired link made by `url()` with this secret (constant-time check)."""
        return self._signer.verify(key, exp, sig, self._clock() if now is None else now)

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str
    ) -> StoredObject:
        final = self.file_path(key)
        fd, temp = await _io(_open_temp, final.parent, final.name)
        digest = Digest()
        try:
            try:
                await _write_all(fd, chunks, digest)
                if self._durable:
                    await _io(os.fsync, fd)
            finally:
                os.close(fd)
            await _io(os.replace, temp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        if self._durable:
            await _io(_fsync_dir, final.parent)
        return digest.record(key, content_type)

    async def get(self, key: str) -> AsyncGenerator[bytes, None]:
        path = self.file_path(key)
        try:
            file = await run_blocking(_open_for_reading, path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key!r}") from None
        except OSError as exc:
            raise BackendError(f"local storage: cannot open {key!r}: {exc.strerror}") from exc
        try:
            while chunk := await _io(file.read, _READ_BYTES):
                yield chunk
        finally:
            file.close()

    async def url(self, key: str, *, ttl: int) -> str:
        if ttl <= 0:
            raise ValueError("ttl must be a positive number of seconds")
        validate_key(key)
        exp = int(self._clock()) + ttl
        return f"{self._base}/media/{key}?exp={exp}&sig={self._signer.sign(key, exp)}"

    async def delete(self, key: str) -> None:
        await _io(self.file_path(key).unlink, True)

    async def exists(self, key: str) -> bool:
        return await run_blocking(self.file_path(key).is_file)

    async def purge_partials(self, older_than: float) -> int:
        """Removes temporary files a crash left behind, older than `older_than` seconds."""
        cutoff = self._clock() - older_than

        def sweep() -> int:
            removed = 0
            for path in self._root.rglob(f".*{_PARTIAL}"):
                try:
                    if path.is_file() and path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
            return removed

        return await _io(sweep)

    async def aclose(self) -> None:
        """Nothing to release; present so every backend closes the same way."""
