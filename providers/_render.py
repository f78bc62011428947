"""Renders the demo provider's clips locally: a real short MP4, with no network and no key.

With an image: a slow Ken Burns pan-and-zoom over it. Without: the prompt, wrapped, over a
moving gradient with a progress bar, so every frame differs. `render_clip` is CPU work and
synchronous; async callers run it in a thread (`await asyncio.to_thread(render_clip, ...)`).

Codec: H.264 through `libx264` when this PyAV build has it (the PyPI wheels do), yuv420p, CRF 27,
preset veryfast: a 4 s 640x360 clip is a few hundred kB at most. A build without it falls back
to `mpeg4` (MPEG-4 Part 2) at a fixed bitrate; those files play in desktop players but not
inline in browsers or Telegram. Either way the `moov` atom is written first (`faststart`) so the
clip can stream, and the file appears at `out_path` only when complete (temp file + rename).

    RenderError      (from `_clip`, with the limits and `frame_size`, which need neither
                     library) .code; str() is an English, user-safe sentence

Bad arguments from the caller (an unknown aspect ratio, zero seconds) raise ValueError.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import av
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from ._clip import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, ClipInfo, RenderError, frame_size

__all__ = [
    "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "ClipInfo", "RenderError", "frame_size", "pick_codec",
    "render_clip",
]

_FORMATS: Final = ("JPEG", "PNG", "WEBP")
_ZOOM: Final = (1.05, 1.25)  # Ken Burns zoom at the first and the last frame
# Fonts with CJK glyphs, tried in order when the prompt needs them; Pillow's default font
# (Latin only) draws boxes for CJK when none is installed.
_CJK_FONTS: Final = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def render_clip(
    out_path: Path,
    *,
    prompt: str,
    image: bytes | None = None,
    seconds: int = 4,
    aspect_ratio: str = "16:9",
    fps: int = 12,
    width: int | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    codec: str | None = None,
) -> ClipInfo:
    """Renders a clip to `out_path`; `width` defaults to 640 on the longest side.

    `codec` forces "libx264" or "mpeg4" (tests); by default the best available is used."""
    if not 1 <= seconds <= 60:
        raise ValueError(f"seconds must be 1..60, not {seconds}")
    if not 1 <= fps <= 60:
        raise ValueError(f"fps must be 1..60, not {fps}")
    size = frame_size(aspect_ratio, width)
    codec = codec or pick_codec()
    total = seconds * fps
    if image is not None:
        source = _load_image(image, size, max_pixels)
        frames = _ken_burns(source, size, total)
    else:
        frames = _prompt_frames(prompt, size, total)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".part",
                                    dir=out_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        count = _encode(tmp, frames, size, fps, codec)
        tmp.chmod(0o644)  # mkstemp makes 0600; the file is served to users
        tmp.replace(out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ClipInfo(path=out_path, width=size[0], height=size[1], frames=count,
                    seconds=seconds, size_bytes=out_path.stat().st_size, codec=codec)


def pick_codec() -> str:
    """Returns "libx264" when this PyAV build can encode with it, else "mpeg4"."""
    try:
        av.Codec("libx264", "w")
    except ValueError:  # av.codec.codec.UnknownCodecError
        return "mpeg4"
    return "libx264"


def _load_image(data: bytes, size: tuple[int, int], max_pixels: int) -> Image.Image:
    """Decodes an uploaded JPEG/PNG/WebP into RGB, no larger than the pan needs."""
    if len(data) > MAX_IMAGE_BYTES:
        raise RenderError("image_too_large", "The image is larger than 20 MB.")
    try:
        opened = Image.open(io.BytesIO(data), formats=_FORMATS)
        iw, ih = opened.size
        if iw * ih > max_pixels:
            raise RenderError("image_too_many_pixels", "The image has too many pixels.")
        # JPEG can decode at 1/2, 1/4 or 1/8 scale: never decode more than the zoom needs.
        scale = max(size) * _ZOOM[1] / min(iw, ih)
        if scale < 1:
            opened.draft("RGB", (math.ceil(iw * scale), math.ceil(ih * scale)))
        opened.load()
        img = ImageOps.exif_transpose(opened)
        if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
            rgba = img.convert("RGBA")
            img = Image.new("RGB", rgba.size, (0, 0, 0))
            img.paste(rgba, mask=rgba)
        return img.convert("RGB")
    except Image.DecompressionBombError:
        raise RenderError("image_too_many_pixels", "The image has too many pixels.") from None
    except UnidentifiedImageError:
        raise RenderError("image_unsupported",
                          "Only JPEG, PNG and WebP images can be used.") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError):
        raise RenderError("image_unreadable", "The image could not be read.") from None


def _ken_burns(src: Image.Image, size: tuple[int, int], total: int) -> Iterator[Image.Image]:
    """Zooms in slowly while the window drifts from upper left to lower right of centre."""
    w, h = size
    # The largest window of the clip's shape that fits the image, at zoom 1.
    base_w = min(src.width, src.height * w / h)
    # Shrink the source once so the per-frame resize only ever downsamples a little.
    shrink = w * _ZOOM[1] / base_w
    if shrink < 1:
        src = src.resize((max(1, round(src.width * shrink)), max(1, round(src.height * shrink))),
                         Image.Resampling.LANCZOS, reducing_gap=3.0)
        base_w *= shrink
    base_h = base_w * h / w
    for i in range(total):
        t = _smoothstep(i / max(1, total - 1))
        zoom = _ZOOM[0] + (_ZOOM[1] - _ZOOM[0]) * t
        bw, bh = base_w / zoom, base_h / zoom
        fx, fy = 0.35 + 0.3 * t, 0.4 + 0.2 * t  # window position within its free range
        x0 = (src.width - bw) * fx
        y0 = (src.height - bh) * fy
        yield src.resize(size, Image.Resampling.BILINEAR, box=(x0, y0, x0 + bw, y0 + bh))


def _smoothstep(t: float) -> float:
    return t * t * (3 - 2 * t)


def _prompt_frames(prompt: str, size: tuple[int, int], total: int) -> Iterator[Image.Image]:
    """The wrapped prompt, still, over a gradient that slides half its period in the clip."""
    w, h = size
    text = " ".join(prompt.split())[:1000]
    font = _load_font(max(12, min(w, h) // 12), text)
    if not isinstance(font, ImageFont.FreeTypeFont):
        text = text.encode("latin-1", "replace").decode("latin-1")  # bitmap fonts are Latin-1
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    if text:
        lines = _wrap(text, font, w * 0.86, max(1, int(h * 0.8 // (_font_px(font) * 1.3))))
        ImageDraw.Draw(layer).multiline_text(
            (w / 2, h / 2), "\n".join(lines), font=font, fill=(255, 255, 255, 255),
            anchor="mm", align="center", spacing=max(2, _font_px(font) // 4),
            stroke_width=2, stroke_fill=(0, 0, 0, 255))
    strip = _gradient_strip(w, h)
    bar_h = max(2, h // 90)
    for i in range(total):
        offset = w * i // (2 * max(1, total - 1))
        frame = strip.crop((offset, 0, offset + w, h))
        frame.paste(layer, (0, 0), layer)
        frame.paste((255, 255, 255), (0, h - bar_h, max(1, w * (i + 1) // total), h))
        yield frame


def _font_px(font: Font) -> int:
    size = getattr(font, "size", None)
    return size if isinstance(size, int) else 11


def _load_font(px: int, text: str) -> Font:
    if any(ord(ch) >= 0x2E80 for ch in text):
        for path in _CJK_FONTS:
            with contextlib.suppress(OSError):
                return ImageFont.truetype(path, px)
    return ImageFont.load_default(px)


def _gradient_strip(w: int, h: int) -> Image.Image:
    """A strip 2w wide whose colours repeat every w pixels, darkening towards the bottom."""
    row = bytearray()
    for x in range(2 * w):
        phase = 2 * math.pi * x / w
        row += bytes(int(70 + 55 * math.cos(phase + shift)) for shift in (0.0, 2.1, 4.2))
    strip = Image.frombytes("RGB", (2 * w, 1), bytes(row)).resize((2 * w, h),
                                                                 Image.Resampling.NEAREST)
    shade = Image.linear_gradient("L").resize((2 * w, h)).point(lambda v: v * 0.45)
    return Image.composite(Image.new("RGB", strip.size, (0, 0, 0)), strip, shade)


def _wrap(text: str, font: Font, max_width: float, max_lines: int) -> list[str]:
    """Greedy wrap at spaces, or between any two characters where there are none (CJK);
    past `max_lines` the last line ends in an ellipsis."""
    lines: list[str] = []
    line = ""
    for ch in text:
        if not line or font.getlength(line + ch) <= max_width:
            line += ch
            continue
        cut = line.rfind(" ")
        if ch != " " and cut > 0:
            lines.append(line[:cut].rstrip())
            line = line[cut + 1:] + ch
        else:
            lines.append(line.rstrip())
            line = "" if ch == " " else ch
        if len(lines) > max_lines:
            break
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and font.getlength(last + "…") > max_width:
            last = last[:-1]
        lines = [*lines[:max_lines - 1], last.rstrip() + "…"]
    return lines


def _encode(tmp: Path, frames: Iterator[Image.Image], size: tuple[int, int], fps: int,
            codec: str) -> int:
    w, h = size
    count = 0
    try:
        with av.open(str(tmp), mode="w", format="mp4",
                     container_options={"movflags": "+faststart"}) as container:
            stream = container.add_stream(codec, rate=fps)
            if not isinstance(stream, av.VideoStream):
                raise RenderError("encode_failed", "The video could not be encoded.")
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            if codec == "libx264":
                stream.options = {"preset": "veryfast", "crf": "27"}
            else:
                stream.bit_rate = 900_000
            for img in frames:
                # PyAV copies only RGBA from bytes; RGBX is Pillow's native RGB layout.
                raw = img.tobytes("raw", "RGBX")
                frame = av.VideoFrame.from_bytes(raw, w, h, format="rgba")
                frame.pts = count
                count += 1
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    except av.FFmpegError as exc:
        raise RenderError("encode_failed", "The video could not be encoded.") from exc
    return count
