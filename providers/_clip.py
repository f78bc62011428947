"""What the demo provider's renderer promises, without the renderer: limits, frame sizes, errors.

`_render` (PyAV and Pillow, heavy) draws the clips; the demo provider checks a request against
these at once and imports `_render` only inside the worker thread of its first render, so
starting the service loads neither library.

    RenderError      .code; str() is an English, user-safe sentence (no paths, no internals)
                     codes: image_too_large, image_too_many_pixels, image_unsupported,
                     image_unreadable, encode_failed
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

__all__ = ["MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "ClipInfo", "RenderError", "frame_size"]

MAX_IMAGE_BYTES: Final = 20 * 1024 * 1024
# Below Pillow's own bomb limit (~89.5 MP), which we leave alone: it is process-wide state.
MAX_IMAGE_PIXELS: Final = 40_000_000

RenderErrorCode = Literal[
    "image_too_large", "image_too_many_pixels", "image_unsupported", "image_unreadable",
    "encode_failed",
]


class RenderError(Exception):
    """The clip could not be rendered; `code` picks the user's message from the catalogue."""

    def __init__(self, code: RenderErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: RenderErrorCode = code


@dataclass(frozen=True, slots=True)
class ClipInfo:
    path: Path
    width: int
    height: int
    frames: int
    seconds: int
    size_bytes: int
    codec: str


def frame_size(aspect_ratio: str, width: int | None = None) -> tuple[int, int]:
    """Even (width, height) for "W:H"; 640 on the longest side unless `width` is given."""
    try:
        rw, rh = (int(part) for part in aspect_ratio.split(":"))
    except ValueError:
        raise ValueError(f"aspect ratio must look like 16:9, not {aspect_ratio!r}") from None
    if not (0 < rw <= 100 and 0 < rh <= 100 and 1 / 4 <= rw / rh <= 4):
        raise ValueError(f"unsupported aspect ratio {aspect_ratio!r}")
    w = _even(width if width is not None else 640 * min(1, rw / rh))
    h = _even(w * rh / rw)
    if not (16 <= w <= 1920 and 16 <= h <= 1920):
        raise ValueError(f"frame size {w}x{h} is outside 16..1920")
    return w, h


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)
