"""Media made to fit WeChat's temporary-media limits (video 10 MB MP4, image 2 MB, thumb 64 KB).

Decisions:
- A video within the limit goes as it is. A larger one is transcoded with PyAV to H.264/AAC
  MP4, scaled down to at most 720 lines (even dimensions, aspect kept), at the video bitrate the
  budget leaves: 90 % of the limit over the clip's duration (the rest is the container and
  rate-control slack), minus 64 kbit/s of audio. libx264 runs in average-bitrate mode with a
  VBV cap (maxrate = the target, buffer 2 s), so the size follows the budget, not the content.
  A result still over the limit gets one more try at three quarters of the bitrate. When the
  bitrate left is below `MIN_VIDEO_BPS` (a picture nobody could watch), or the second try fails,
  the answer is "link": the caller sends the thumbnail and a signed link instead.
- Images: a JPEG within the limit goes as it is; anything else (PNG, WebP, a larger JPEG) is
  re-encoded as JPEG at falling quality, then at smaller sizes, until it fits: one type to
  upload, and try-on results are photographs. Thumbnails are JPEG in the same way.
- The bytes are hostile: decoding errors become `MediaError`; images over `MAX_PIXELS` and
  video over 8192 pixels a side are refused before decoding a frame.
- Encoding is CPU work: the async functions run it in a worker thread (`asyncio.to_thread`), so
  the event loop keeps serving. PyAV and PIL are imported there, not at start-up.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from av.container import InputContainer
    from PIL.Image import Image

__all__ = [
    "MIN_VIDEO_BPS",
    "FittedVideo",
    "MediaError",
    "Plan",
    "fit_image",
    "fit_video",
    "plan_video",
    "thumbnail_jpeg",
    "transcode_video",
]

MIN_VIDEO_BPS = 150_000
AUDIO_BPS = 64_000
MAX_HEIGHT = 720
MAX_SIDE = 8192
MAX_PIXELS = 50_000_000
_SHARE = 0.9  # of the byte budget for the streams; the rest is muxing overhead and slack


class MediaError(Exception):
    """The bytes are not media we can read, or cannot be made to fit."""


@dataclass(frozen=True, slots=True)
class FittedVideo:
    how: Literal["as_is", "transcoded", "link"]
    data: bytes = b""


async def fit_video(data: bytes, limit: int, *, max_height: int = MAX_HEIGHT) -> FittedVideo:
    """The video as it is, transcoded under `limit`, or "link" when it cannot fit."""
    if len(data) <= limit:
        return FittedVideo("as_is", data)
    return await asyncio.to_thread(_fit_video, data, limit, max_height)


def _fit_video(data: bytes, limit: int, max_height: int) -> FittedVideo:
    for factor in (1.0, 0.75):
        try:
            out = transcode_video(data, limit, max_height=max_height, factor=factor)
        except MediaError:
            return FittedVideo("link")
        if out is None:
            return FittedVideo("link")
        if len(out) <= limit:
            return FittedVideo("transcoded", out)
    return FittedVideo("link")


def _even(n: float) -> int:
    return max(2, int(n) // 2 * 2)


@dataclass(frozen=True, slots=True)
class Plan:
    """What `transcode_video` makes: the size, the video bitrate, audio or not."""

    width: int
    height: int
    video_bps: int
    audio: bool
    seconds: float


def _plan(src: InputContainer, limit: int, max_height: int, factor: float) -> Plan | None:
    if not src.streams.video:
        raise MediaError("no video stream")
    vin = src.streams.video[0]
    width, height = vin.codec_context.width, vin.codec_context.height
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise MediaError(f"video of {width}x{height}")
    fps = vin.average_rate or vin.guessed_rate or Fraction(25)
    seconds = _duration(src.duration, vin.duration, vin.time_base, vin.frames, fps)
    audio = bool(src.streams.audio)
    video_bps = int(limit * 8 * _SHARE * factor / seconds) - (AUDIO_BPS if audio else 0)
    if video_bps < MIN_VIDEO_BPS:
        return None
    scale = min(1.0, max_height / height)
    return Plan(_even(width * scale), _even(height * scale), video_bps, audio, seconds)


def plan_video(data: bytes, limit: int, *, max_height: int = MAX_HEIGHT,
               factor: float = 1.0) -> Plan | None:
    """The plan `transcode_video` would follow (bench/wechat.py gives ffmpeg the same)."""
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as src:
            return _plan(src, limit, max_height, factor)
    except av.FFmpegError as exc:
        raise MediaError(f"cannot read the video: {type(exc).__name__}") from None


def transcode_video(data: bytes, limit: int, *, max_height: int = MAX_HEIGHT,
                    factor: float = 1.0, preset: str = "veryfast") -> bytes | None:
    """H.264/AAC MP4 aimed at `limit` bytes (× `factor`); None when the bitrate left is too
    low to be worth it. Synchronous: call it in a thread."""
    import av  # heavy: only where a video is transcoded

    try:
        with av.open(io.BytesIO(data), mode="r") as src:
            plan = _plan(src, limit, max_height, factor)
            if plan is None:
                return None
            vin = src.streams.video[0]
            vin.thread_type = "AUTO"  # frame threads decode as fast as ffmpeg's command does
            ain = src.streams.audio[0] if plan.audio else None
            fps = vin.average_rate or vin.guessed_rate or Fraction(25)
            width, height, video_bps = plan.width, plan.height, plan.video_bps
            buffer = io.BytesIO()
            with av.open(buffer, mode="w", format="mp4") as out:
                vout = out.add_stream("libx264", rate=fps)
                vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
                vout.bit_rate = video_bps
                vout.codec_context.time_base = vin.time_base or Fraction(1, 90_000)
                vout.options = {"preset": preset, "maxrate": str(video_bps),
                                "bufsize": str(video_bps * 2)}
                aout = None
                if ain is not None:
                    aout = out.add_stream("aac", rate=44_100)
                    aout.bit_rate = AUDIO_BPS
                    aout.layout = "stereo"
                last_pts = -1
                streams = [s for s in (vin, ain) if s is not None]
                for packet in src.demux(*streams):
                    for frame in packet.decode():
                        if isinstance(frame, av.VideoFrame):
                            pts = frame.pts if frame.pts is not None else last_pts + 1
                            pts = max(pts, last_pts + 1)  # the encoder needs rising pts
                            last_pts = pts
                            scaled = frame.reformat(width=width, height=height,
                                                    format="yuv420p")
                            scaled.pts, scaled.time_base = pts, vout.codec_context.time_base
                            out.mux(vout.encode(scaled))
                        elif aout is not None and isinstance(frame, av.AudioFrame):
                            frame.pts = None  # the encoder's own resampler restamps it
                            out.mux(aout.encode(frame))
                out.mux(vout.encode(None))
                if aout is not None:
                    out.mux(aout.encode(None))
    except av.FFmpegError as exc:
        raise MediaError(f"cannot transcode: {type(exc).__name__}") from None
    return buffer.getvalue()


def _duration(container_us: int | None, stream_duration: int | None,
              time_base: Fraction | None, frames: int, fps: Fraction) -> float:
    if container_us:
        return container_us / 1_000_000
    if stream_duration and time_base:
        return float(stream_duration * time_base)
    if frames and fps:
        return float(frames / fps)
    raise MediaError("unknown duration")


async def fit_image(data: bytes, limit: int) -> bytes:
    """The image as it is (a JPEG within `limit`), else a JPEG under `limit`."""
    return await asyncio.to_thread(_fit_image, data, limit, keep=("JPEG",))


async def thumbnail_jpeg(data: bytes, limit: int) -> bytes:
    """A JPEG under `limit` (WeChat's thumb type takes JPEG only)."""
    return await asyncio.to_thread(_fit_image, data, limit, keep=("JPEG",))


def _fit_image(data: bytes, limit: int, *, keep: tuple[str, ...]) -> bytes:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise MediaError(f"image of {img.width}x{img.height}")
            if img.format in keep and len(data) <= limit:
                return data
            img.load()
            rgb = _flatten(img)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise MediaError("not an image we can read") from None
    while True:
        for quality in (90, 80, 70, 60, 50):
            out = io.BytesIO()
            rgb.save(out, "JPEG", quality=quality, optimize=True)
            if out.tell() <= limit:
                return out.getvalue()
        if min(rgb.size) <= 16:
            raise MediaError(f"no JPEG of this image fits in {limit} bytes")
        rgb = rgb.resize((max(1, rgb.width * 3 // 4), max(1, rgb.height * 3 // 4)))


def _flatten(img: Image) -> Image:
    """RGB on white: JPEG has no alpha channel."""
    from PIL import Image as PILImage

    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        white = PILImage.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return img.convert("RGB")
