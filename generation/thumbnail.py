"""The first frame of a finished video as a small JPEG (Telegram `sendVideo` thumbnails must be
JPEG, at most 200 kB and 320 px on the longest side).

`first_frame_jpeg` is CPU work and synchronous; async callers run it in a thread. PyAV opens
the path itself and reads only as far as the first frame, so a large video costs little memory.
A missing or unreadable path raises the usual OSError (FileNotFoundError, PermissionError).

    ThumbnailError   the file is not a video we can decode (empty, garbage, audio only, no
                     frames, absurd dimensions), or no JPEG fits `max_bytes`
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Final

import av
from PIL import Image

__all__ = ["ThumbnailError", "first_frame_jpeg", "frame_to_image"]

# Refuse to decode frames beyond 8K x 8K: a hostile header could otherwise ask for gigabytes.
MAX_FRAME_PIXELS: Final = 8192 * 8192
_QUALITIES: Final = (85, 75, 65, 50, 35, 20)


class ThumbnailError(Exception):
    """No thumbnail can be made from this file."""


def first_frame_jpeg(video_path: Path, *, max_side: int = 320, max_bytes: int = 200_000) -> bytes:
    """Returns the first frame scaled to fit `max_side`, as a JPEG of at most `max_bytes`."""
    if max_side < 16 or max_bytes < 1_000:
        raise ValueError("max_side must be at least 16 and max_bytes at least 1000")
    image = _first_frame(video_path)
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    while True:
        for quality in _QUALITIES:
            buf = io.BytesIO()
            image.save(buf, "JPEG", quality=quality, optimize=True)
            if buf.tell() <= max_bytes:
                return buf.getvalue()
        # Only a tiny max_bytes gets here: shrink until even the lowest quality fits.
        if max(image.size) <= 16:
            raise ThumbnailError(f"no JPEG of the first frame fits in {max_bytes} bytes")
        image = image.resize((max(1, image.width // 2), max(1, image.height // 2)),
                             Image.Resampling.LANCZOS)


def _first_frame(video_path: Path) -> Image.Image:
    try:
        with av.open(str(video_path), mode="r") as container:
            if not container.streams.video:
                raise ThumbnailError("the file has no video stream")
            stream = container.streams.video[0]
            if stream.width * stream.height > MAX_FRAME_PIXELS:
                raise ThumbnailError(f"the video is too large ({stream.width}x{stream.height})")
            for frame in container.decode(stream):
                return frame_to_image(frame)
    except av.FFmpegError as exc:
        if isinstance(exc, OSError):  # missing file, a directory, no permission: not ours
            raise
        raise ThumbnailError(f"the file is not a decodable video: {exc.strerror}") from None
    raise ThumbnailError("the video has no frames")


def frame_to_image(frame: av.VideoFrame) -> Image.Image:
    """The frame as an RGB Pillow image, turned upright by its display rotation (phone videos).

    A typed stand-in for PyAV's untyped `VideoFrame.to_image`."""
    rotation = frame.rotation
    frame = frame.to_rgb()
    plane = frame.planes[0]
    row = frame.width * 3
    raw = bytes(plane)
    if plane.line_size != row:  # rows are padded for alignment
        raw = b"".join(raw[y * plane.line_size:y * plane.line_size + row]
                       for y in range(frame.height))
    image = Image.frombytes("RGB", (frame.width, frame.height), raw)
    # `rotation` is counter-clockwise degrees, as is Pillow's ROTATE_90.
    turn = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
            270: Image.Transpose.ROTATE_270}.get(rotation % 360)
    return image.transpose(turn) if turn is not None else image
