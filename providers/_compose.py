"""Composes the demo provider's try-on picture: a real JPEG made from the user's own photos.

The person photo fills the left panel with the first garment laid over the body, half
transparent; every garment is shown whole in a column on the right; a band at the bottom says
"DEMO" and repeats the prompt, and a large translucent "DEMO" crosses the person, so the result
can never pass for a real try-on. No model, no network: a stand-in for the image gateway that
lets a newcomer see the whole try-on flow offline.

Synchronous CPU work: async callers run it in a thread. Photos are decoded with the clip
renderer's `load_image` (same formats, size and pixel limits, same `RenderError`s).

Decision: the JPEG is kept small (at most `MAX_JPEG_BYTES`, lowering the quality until it fits)
because the demo delivers it inline, as a `data:` URL inside its signed callback, like image
gateways do; the callback body must stay well under the HTTP server's body limit (1 MB by
default).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from PIL import Image, ImageDraw, ImageOps

from ._clip import decode_data_url
from ._render import MAX_IMAGE_PIXELS, Font, RenderError, font_for, load_image

__all__ = ["MAX_JPEG_BYTES", "compose_tryon", "decode_data_url", "write_tryon"]

MAX_JPEG_BYTES: Final = 400_000
PERSON: Final = (600, 800)  # the left panel
COLUMN: Final = 200  # width of the garments' column
BAND: Final = 96  # height of the bottom band
_BG: Final = (24, 26, 32)
_ACCENT: Final = (255, 196, 0)
_QUALITIES: Final = (85, 75, 60, 45, 30)


def compose_tryon(person: bytes, clothes: Sequence[bytes], *, prompt: str,
                  max_pixels: int = MAX_IMAGE_PIXELS) -> bytes:
    """The try-on preview as JPEG bytes; raises RenderError for an unusable photo."""
    if not 1 <= len(clothes) <= 10:
        raise ValueError("a try-on takes 1..10 clothing photos")
    pw, ph = PERSON
    cell = (COLUMN - 24, ph // len(clothes) - 16)
    body = ImageOps.contain(load_image(person, PERSON, max_pixels), PERSON)
    garments = [load_image(c, (pw, ph), max_pixels) for c in clothes]

    canvas = Image.new("RGB", (pw + COLUMN, ph + BAND), _BG)
    x0, y0 = (pw - body.width) // 2, (ph - body.height) // 2
    canvas.paste(body, (x0, y0))
    _overlay(canvas, garments[0], (x0, y0, x0 + body.width, y0 + body.height))
    _watermark(canvas, (0, 0, pw, ph))
    for i, garment in enumerate(garments):
        thumb = ImageOps.contain(garment, cell)
        top = i * (ph // len(clothes)) + 8
        cx = pw + (COLUMN - thumb.width) // 2
        cy = top + (cell[1] - thumb.height) // 2
        canvas.paste(thumb, (cx, cy))
        ImageDraw.Draw(canvas).rectangle((cx - 2, cy - 2, cx + thumb.width + 1,
                                          cy + thumb.height + 1), outline=_ACCENT, width=2)
    _band(canvas, prompt, top=ph)
    return _jpeg(canvas)


def write_tryon(path: Path, person: bytes, clothes: Sequence[bytes], *, prompt: str) -> bytes:
    """Composes the picture and writes it to `path` whole or not at all (temp file + rename);
    returns the JPEG bytes."""
    data = compose_tryon(person, clothes, prompt=prompt)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        tmp.write_bytes(data)
        tmp.chmod(0o644)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return data


def _overlay(canvas: Image.Image, garment: Image.Image, box: tuple[int, int, int, int]) -> None:
    """The garment over the upper body: centred, 60% of the width, from about the shoulders."""
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    piece = ImageOps.contain(garment, (max(1, int(w * 0.6)), max(1, int(h * 0.42))))
    # About 65% opaque, so the person shows through; a product shot's white background is
    # left out (near-white pixels fully transparent).
    mask = piece.convert("L").point(lambda v: 0 if v > 235 else 165)
    at = (left + (w - piece.width) // 2, top + int(h * 0.24))
    canvas.paste(piece, at, mask)


def _watermark(canvas: Image.Image, box: tuple[int, int, int, int]) -> None:
    """A large translucent "DEMO" drawn diagonally across `box`."""
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    font, text = font_for("DEMO", max(24, w // 4))
    layer = Image.new("L", (w, h), 0)
    ImageDraw.Draw(layer).text((w / 2, h / 2), text, font=font, fill=110, anchor="mm")
    layer = layer.rotate(35, resample=Image.Resampling.BICUBIC)
    canvas.paste(Image.new("RGB", (w, h), (255, 255, 255)), (left, top), layer)


def _band(canvas: Image.Image, prompt: str, *, top: int) -> None:
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, top, canvas.width, canvas.height), fill=(0, 0, 0))
    label, text = font_for("DEMO · virtual try-on preview", 26)
    draw.text((16, top + 14), text, font=label, fill=_ACCENT)
    small, line = font_for(" ".join(prompt.split())[:300], 20)
    draw.text((16, top + 56), _clip(line, small, canvas.width - 32), font=small,
              fill=(235, 235, 235))


def _clip(text: str, font: Font, width: int) -> str:
    """`text` cut to fit `width` pixels on one line, with an ellipsis when cut."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _jpeg(img: Image.Image) -> bytes:
    data = b""
    for quality in _QUALITIES:
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=quality, optimize=True)
        data = out.getvalue()
        if len(data) <= MAX_JPEG_BYTES:
            return data
    raise RenderError("encode_failed", "The image could not be encoded.")
