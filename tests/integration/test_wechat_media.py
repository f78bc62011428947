"""Media made to fit WeChat: real clips made with PyAV, real images made with PIL."""

from __future__ import annotations

import io
from typing import NamedTuple

import pytest

from bot.wechat._media import (
    MediaError,
    fit_image,
    fit_video,
    thumbnail_jpeg,
)
from tests.fakes.media import noise_clip

MB = 1024 * 1024


@pytest.fixture(scope="module")
def big_clip() -> bytes:
    """Ten seconds of noise with a tone: over 25 MB, made in about two seconds."""
    data = noise_clip(seconds=10, width=352, height=264)
    assert len(data) > 25 * MB
    return data


class Probe(NamedTuple):
    format: str
    video: str
    size: tuple[int, int]
    audio: str | None
    seconds: float


def probe(data: bytes) -> Probe:
    import av

    with av.open(io.BytesIO(data), mode="r") as c:
        video = c.streams.video[0].codec_context
        audio = c.streams.audio[0].codec_context if c.streams.audio else None
        return Probe(c.format.name, video.name, (video.width, video.height),
                     audio.name if audio else None, (c.duration or 0) / 1e6)


async def test_a_video_within_the_limit_goes_as_it_is() -> None:
    data = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 1000
    fitted = await fit_video(data, 10 * MB)
    assert fitted.how == "as_is"
    assert fitted.data is data


async def test_a_25_mb_video_is_transcoded_under_10_mb(big_clip: bytes) -> None:
    fitted = await fit_video(big_clip, 10 * MB)
    assert fitted.how == "transcoded"
    assert len(fitted.data) <= 10 * MB
    info = probe(fitted.data)
    assert "mp4" in info.format
    assert info.video == "h264"
    assert info.audio == "aac"
    assert info.size == (352, 264)
    assert abs(info.seconds - 10) < 0.5  # nothing cut off


async def test_a_tall_video_is_scaled_down_to_the_height_limit() -> None:
    clip = noise_clip(seconds=1, width=160, height=240, audio=False)
    fitted = await fit_video(clip, len(clip) // 2, max_height=120)
    assert fitted.how == "transcoded"
    assert probe(fitted.data).size == (80, 120)
    assert probe(fitted.data).audio is None


async def test_a_video_that_cannot_fit_goes_out_as_a_link(big_clip: bytes) -> None:
    fitted = await fit_video(big_clip, 100 * 1024)  # 80 kbit/s for ten seconds of noise
    assert fitted.how == "link"
    assert fitted.data == b""


async def test_garbage_that_claims_to_be_a_video_goes_out_as_a_link() -> None:
    assert (await fit_video(b"\x00garbage" * 10_000, 1000)).how == "link"


def image(fmt: str, size: tuple[int, int], mode: str = "RGB", noisy: bool = True) -> bytes:
    from PIL import Image

    img = Image.effect_noise(size, 120).convert(mode) if noisy else Image.new(mode, size)
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


async def test_a_jpeg_within_the_limit_is_kept_byte_for_byte() -> None:
    jpeg = image("JPEG", (200, 200), noisy=False)
    assert await fit_image(jpeg, 2 * MB) is jpeg


async def test_a_large_try_on_image_is_re_encoded_as_jpeg_under_2_mb() -> None:
    from PIL import Image

    png = image("PNG", (2400, 2400), mode="RGBA")
    assert len(png) > 2 * MB
    out = await fit_image(png, 2 * MB)
    assert len(out) <= 2 * MB
    with Image.open(io.BytesIO(out)) as img:
        assert img.format == "JPEG"
        assert img.mode == "RGB"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
async def test_other_formats_are_re_encoded_even_when_small(fmt: str) -> None:
    from PIL import Image

    small = image(fmt, (100, 100))
    with Image.open(io.BytesIO(await fit_image(small, 2 * MB))) as img:
        assert img.format == "JPEG"


async def test_a_thumbnail_is_a_jpeg_under_64_kb() -> None:
    from PIL import Image

    png = image("PNG", (1280, 720))
    thumb = await thumbnail_jpeg(png, 64 * 1024)
    assert len(thumb) <= 64 * 1024
    with Image.open(io.BytesIO(thumb)) as img:
        assert img.format == "JPEG"


async def test_bytes_that_are_no_image_are_refused() -> None:
    with pytest.raises(MediaError):
        await fit_image(b"GIF89a but not really", 2 * MB)
