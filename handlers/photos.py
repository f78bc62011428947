"""Photos from the chat: fetched, checked to be a real image, and stored as JPEG.

Decisions: we download at most 20 MB (`PHOTO_LIMIT`, Telegram's getFile limit; the channel's
`AttachmentTooLarge` becomes a clear text). Pillow must recognise the bytes as JPEG, PNG or WEBP
and decode them whole (a renamed PDF or a truncated file is refused), under 40 megapixels (a
decompression bomb is refused before it is decoded). Everything is stored as JPEG, the one format
every provider takes: a JPEG of at most 10 MB (the providers' limit) is kept byte for byte; PNG
and WEBP are re-encoded (transparency flattened onto white, EXIF rotation applied), and anything
over 10 MB is re-encoded at smaller sizes until it fits. Decoding runs in a worker thread.
Pillow is imported where it is used, so importing the conversations does not load it.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from storage import Storage, new_key

from .errors import Explained
from .types import PHOTO_LIMIT, Attachment, AttachmentTooLarge

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["MAX_PIXELS", "PROVIDER_LIMIT", "PhotoRejected", "prepare", "store_photo"]

PROVIDER_LIMIT = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000
FORMATS = ("JPEG", "PNG", "WEBP")


class PhotoRejected(Explained):
    """The file is not a photo we can use; `key` and `params` make the user's text."""


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()


def _flatten(img: Image.Image) -> Image.Image:
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(img) or img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        back = Image.new("RGB", rgba.size, (255, 255, 255))
        back.paste(rgba, mask=rgba.getchannel("A"))
        return back
    return img.convert("RGB")


def prepare(data: bytes) -> bytes:
    """The JPEG to store for `data`; PhotoRejected when it is not a usable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in FORMATS:
                raise PhotoRejected("photo.unusable")
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise PhotoRejected("photo.too_many_pixels",
                                    megapixels=round(width * height / 1e6))
            img.load()  # decodes it all: a truncated or corrupt file fails here
            if img.format == "JPEG" and len(data) <= PROVIDER_LIMIT:
                return data
            rgb = _flatten(img)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError,
            ValueError) as exc:
        raise PhotoRejected("photo.unusable") from exc
    out = _jpeg(rgb)
    while len(out) > PROVIDER_LIMIT:
        rgb = rgb.resize((max(1, rgb.width * 3 // 4), max(1, rgb.height * 3 // 4)))
        out = _jpeg(rgb, quality=85)
    return out


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def store_photo(storage: Storage, photo: Attachment) -> str:
    """Fetches, checks and stores one photo; returns its storage key."""
    if photo.size is not None and photo.size > PHOTO_LIMIT:
        raise AttachmentTooLarge(photo.size, PHOTO_LIMIT)
    data = await photo.read(PHOTO_LIMIT)
    if len(data) > PHOTO_LIMIT:  # an adapter that ignored the limit
        raise AttachmentTooLarge(len(data), PHOTO_LIMIT)
    jpeg = await asyncio.to_thread(prepare, data)
    key = new_key("inputs", ".jpg")
    await storage.put(key, _one(jpeg), content_type="image/jpeg")
    return key
