"""The terminal channel behind `videofly chat`: lines in, printed messages out.

Input, one line at a time (`ConsoleChannel.inbound`):
- a line naming existing files (a path, `~` expanded, quotes stripped; several paths separated
  by spaces make an album) → those files as photos, each read only when the conversation asks
  for it, and refused over `PHOTO_LIMIT` (20 MB, as on every channel). Looking for files never
  raises: a line too long to be a path (over 255 bytes a name, "File name too long"), with a
  NUL, or otherwise unusable as one is text;
- anything else → text (commands as "/balance"); a number is text too, and the shared answer
  path (`bot.answer`) turns it into the numbered menu's choice it stands for.

The console declares no edit and no buttons (`handlers.types.CHANNELS["console"]`): menus come
numbered from the shared sender (`handlers.menus.numbered`), and the menu state lives with the
chat row like WeChat's. Output: texts are printed, a video
or image result is copied out of storage to `<data_dir>/videos/` and its path printed; a
picture (the admin chart) is saved as PNG under `<data_dir>/pictures/`; a Stars invoice says
that Stars are paid in Telegram only. A status message edit prints the new status line.

The channel's own words come from the message catalogue in the language `$LANG` names; the
conversations speak the user's language, which the handlers keep.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shlex
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from pathlib import Path

from handlers.menus import numbered
from handlers.messages import language_of, t, tn
from handlers.types import (
    CHANNELS,
    PHOTO_LIMIT,
    Attachment,
    AttachmentTooLarge,
    Inbound,
    Invoice,
    Media,
    Outbound,
    Picture,
    Text,
)
from storage import Storage

__all__ = ["ADDRESS", "ConsoleChannel", "FileAttachment", "lang_hint", "missing_path"]

ADDRESS = "console"  # the one user of the terminal
MAX_LINE_PATH = 4096  # bytes: PATH_MAX; a longer line is never file paths
MAX_PATHS = 10  # more "paths" than an album holds is text


def lang_hint(environ: Mapping[str, str] | None = None) -> str | None:
    """The language part of `$LANG` ("zh_CN.UTF-8" → "zh-CN"); None when unset or "C"."""
    env = os.environ if environ is None else environ
    raw = (env.get("LC_ALL") or env.get("LANG") or "").split(".", 1)[0].replace("_", "-")
    return None if raw in ("", "C", "POSIX") else raw


class FileAttachment:
    """A photo given as a file path; read when the conversation wants it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def size(self) -> int | None:
        try:
            return self.path.stat().st_size
        except OSError:
            return None

    async def read(self, limit: int) -> bytes:
        cap = min(limit, PHOTO_LIMIT)
        size = self.size
        if size is not None and size > cap:
            raise AttachmentTooLarge(size, cap)

        def read_capped() -> bytes:
            with self.path.open("rb") as f:
                return f.read(cap + 1)

        data = await asyncio.to_thread(read_capped)
        if len(data) > cap:  # the file grew since it was measured
            raise AttachmentTooLarge(None, cap)
        return data


def _paths(line: str) -> list[Path] | None:
    """The files a line names, or None when it is not (only) file paths; never raises."""
    if len(line.encode("utf-8", "replace")) > MAX_LINE_PATH:
        return None
    try:
        return _existing(line)
    except (OSError, ValueError, RuntimeError):  # too long a name, a NUL, no home directory
        return None


def _existing(line: str) -> list[Path] | None:
    whole = Path(line.strip().strip("'\"")).expanduser()
    if whole.is_file():  # one path with unquoted spaces in it
        return [whole]
    try:
        words = shlex.split(line)
    except ValueError:  # an unbalanced quote: just text
        return None
    if not words or len(words) > MAX_PATHS:
        return None
    paths = [Path(w).expanduser() for w in words]
    return paths if all(p.is_file() for p in paths) else None


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".heic")


def missing_path(line: str) -> str | None:
    """The path a line names when it looks like a path but there is no file there; None for
    an existing file (`inbound` takes it) and for everything else.

    The rule (a line of prose, or a command, is not a path): one path, quotes stripped, that
    starts with `~`, `./` or `../`, or starts with `/` and has another `/` in it ("/balance"
    is a command, "/home/me/a.jpg" a path), or that ends in an image file extension."""
    text = line.strip()
    if not text or _paths(text) is not None:
        return None
    candidate = text.strip("'\"")
    lower = candidate.lower()
    if candidate.startswith(("~", "./", "../")) or lower.endswith(_IMAGE_SUFFIXES) or (
            candidate.startswith("/") and "/" in candidate[1:].split(" ", 1)[0]):
        return candidate[:300]
    return None


class ConsoleChannel:
    """The `Channel` of the terminal; `write` prints one block of text."""

    name = "console"
    capabilities = CHANNELS["console"]

    def __init__(self, *, storage: Storage, data_dir: Path, lang: str,
                 write: Callable[[str], None] = print) -> None:
        self.storage = storage
        self.videos = data_dir / "videos"
        self.pictures = data_dir / "pictures"
        self.lang = lang
        self.write = write
        self._shown: dict[str, str] = {}  # message id → its text, to print changes only
        self._ids = itertools.count(1)
        self.hint = lang_hint()  # the language hint sent with every update
        # The user's language as the conversations know it (it follows /language); until the
        # session wires it, the language of $LANG.
        self.language: Callable[[], Awaitable[str]] | None = None

    async def user_lang(self) -> str:
        """The language of the channel's own words: the user's."""
        return await self.language() if self.language is not None else self.lang

    @classmethod
    def for_language(cls, *, storage: Storage, data_dir: Path, default: str,
                     write: Callable[[str], None] = print) -> ConsoleChannel:
        return cls(storage=storage, data_dir=data_dir, write=write,
                   lang=language_of(lang_hint(), default))

    # --- in ------------------------------------------------------------------------------------

    def inbound(self, line: str) -> Inbound | None:
        """The update a typed line stands for; None for an empty line."""
        text = line.strip()
        if not text:
            return None
        update = partial(Inbound, channel=self.name, address=ADDRESS, language=self.hint)
        if (paths := _paths(text)) is not None:
            photos: tuple[Attachment, ...] = tuple(FileAttachment(p) for p in paths)
            album = f"console:{next(self._ids)}" if len(photos) > 1 else None
            return update(photos=photos, album=album)
        return update(text=text)

    # --- out -----------------------------------------------------------------------------------

    async def send(self, address: str, message: Outbound) -> str | None:
        if isinstance(message, Text):
            self.write(numbered(message).text)  # numbered already when the sender sent it
            message_id = str(next(self._ids))
            if message.track_job is not None:
                self._shown[message_id] = message.text
            return message_id
        if isinstance(message, Media):
            path = await self._save_media(message)
            lang = await self.user_lang()
            self.write("\n".join(filter(None, (message.caption,
                                               t(lang, "console.saved", path=path)))))
            return None
        if isinstance(message, Picture):
            path = await asyncio.to_thread(self._save_picture, message)
            lang = await self.user_lang()
            self.write("\n".join(filter(None, (message.caption,
                                               t(lang, "console.picture", path=path)))))
            return None
        if isinstance(message, Invoice):
            lang = await self.user_lang()
            self.write(t(lang, "console.stars", title=message.title,
                         stars=tn(lang, "n.stars", message.stars)))
            return None
        raise TypeError(f"cannot show {type(message).__name__} in the terminal")

    async def edit(self, address: str, message_id: str, message: Text) -> None:
        # A printed line cannot change: print the status again, unless it reads the same.
        if self._shown.get(message_id) != message.text:
            self._shown[message_id] = message.text
            self.write(t(self.lang, "console.status", text=message.text))

    async def _save_media(self, message: Media) -> Path:
        """Copies a stored result out of storage, streaming; returns where it is now."""
        name = message.key.rsplit("/", 1)[-1]
        target = self.videos / name
        partial = target.with_name(f".{name}.part")
        await asyncio.to_thread(self.videos.mkdir, parents=True, exist_ok=True)
        out = await asyncio.to_thread(partial.open, "wb")
        try:
            async for chunk in self.storage.get(message.key):  # read to the end
                await asyncio.to_thread(out.write, chunk)
            out.close()
            await asyncio.to_thread(partial.replace, target)
        except BaseException:
            out.close()
            partial.unlink(missing_ok=True)
            raise
        return target

    def _save_picture(self, message: Picture) -> Path:
        self.pictures.mkdir(parents=True, exist_ok=True)
        stem = Path(message.filename).stem or "picture"
        target = self.pictures / f"{stem}-{next(self._ids)}.png"
        target.write_bytes(message.data)
        return target
