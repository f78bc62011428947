"""First-frame thumbnails: small upright JPEGs, and refusals of files that are not videos."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import av
import pytest
from PIL import Image

from generation.thumbnail import ThumbnailError, first_frame_jpeg
from providers._render import render_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A landscape, a portrait and a hard-to-compress clip, rendered once for this module."""
    folder = tmp_path_factory.mktemp("clips")
    noise = Image.merge("RGB", [Image.effect_noise((640, 640), 100) for _ in range(3)])
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    return {
        "landscape": render_clip(folder / "l.mp4", prompt="landscape", seconds=1,
                                 width=1280).path,
        "portrait": render_clip(folder / "p.mp4", prompt="portrait", seconds=1,
                                aspect_ratio="9:16").path,
        "noise": render_clip(folder / "n.mp4", prompt="", image=buf.getvalue(), seconds=1,
                             width=1280).path,
    }


def jpeg(data: bytes) -> Image.Image:
    assert data[:3] == b"\xff\xd8\xff"
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image


def test_landscape_thumbnail_fits_telegram_limits(clips: dict[str, Path]) -> None:
    data = first_frame_jpeg(clips["landscape"])
    assert len(data) <= 200_000
    assert jpeg(data).size == (320, 180)


def test_portrait_thumbnail_keeps_its_shape(clips: dict[str, Path]) -> None:
    assert jpeg(first_frame_jpeg(clips["portrait"])).size == (180, 320)


def test_max_side_is_respected(clips: dict[str, Path]) -> None:
    assert jpeg(first_frame_jpeg(clips["landscape"], max_side=100)).size == (100, 56)


def test_quality_drops_until_it_fits_max_bytes(clips: dict[str, Path]) -> None:
    roomy = first_frame_jpeg(clips["noise"])
    tight = first_frame_jpeg(clips["noise"], max_bytes=len(roomy) // 2)
    assert len(tight) <= len(roomy) // 2
    assert jpeg(tight).size == (320, 180)


def test_a_tiny_budget_shrinks_the_picture(clips: dict[str, Path]) -> None:
    data = first_frame_jpeg(clips["noise"], max_bytes=1_500)
    assert len(data) <= 1_500
    assert max(jpeg(data).size) < 320


def test_display_rotation_is_applied(tmp_path: Path) -> None:
    """A landscape frame stored with a 90° counter-clockwise display matrix, as phones do."""
    path = tmp_path / "rotated.mp4"
    frame_image = Image.new("RGB", (64, 32), (255, 0, 0))
    frame_image.paste((0, 0, 255), (32, 0, 64, 32))  # red left half, blue right half
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)
        frame = av.VideoFrame.from_bytes(frame_image.tobytes("raw", "RGBX"), 64, 32, "rgba")
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    thumb = jpeg(first_frame_jpeg(path)).convert("RGB")
    assert thumb.size == (32, 64)
    top, bottom = thumb.getpixel((16, 4)), thumb.getpixel((16, 60))
    assert isinstance(top, tuple)
    assert isinstance(bottom, tuple)
    assert top[2] > 200 > top[0]  # the right half turned to the top
    assert bottom[0] > 150 > bottom[2]


def audio_only(path: Path) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(8000))
    return path


@pytest.mark.parametrize("kind", ["garbage", "empty", "audio-only", "truncated"])
def test_files_that_are_not_videos_raise(
    tmp_path: Path, clips: dict[str, Path], kind: str,
) -> None:
    path = tmp_path / "file.mp4"
    if kind == "garbage":
        path.write_bytes(bytes(range(256)) * 64)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "audio-only":
        audio_only(path)
    else:  # moov comes first (faststart), so the head has no picture data at all
        path.write_bytes(clips["landscape"].read_bytes()[:1_000])
    with pytest.raises(ThumbnailError):
        first_frame_jpeg(path)


def test_a_missing_file_is_an_os_error_not_a_bad_video(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        first_frame_jpeg(tmp_path / "missing.mp4")


@pytest.mark.parametrize(("max_side", "max_bytes"), [(0, 200_000), (320, 10)])
def test_absurd_limits_raise_value_error(
    clips: dict[str, Path], max_side: int, max_bytes: int,
) -> None:
    with pytest.raises(ValueError, match="at least"):
        first_frame_jpeg(clips["portrait"], max_side=max_side, max_bytes=max_bytes)
