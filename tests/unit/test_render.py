"""The demo renderer: real MP4s that PyAV can decode, and refusals of unsafe images."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageStat

from generation.thumbnail import frame_to_image
from providers import _render
from providers._render import MAX_IMAGE_BYTES, RenderError, frame_size, pick_codec, render_clip


@dataclass(frozen=True)
class Decoded:
    format_name: str
    codec: str
    width: int
    height: int
    pix_fmt: str
    frames: list[Image.Image]


def decode(path: Path) -> Decoded:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame_to_image(frame) for frame in container.decode(stream)]
        return Decoded(container.format.name, stream.codec_context.name, stream.width,
                       stream.height, str(stream.pix_fmt), frames)


def differ(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two frames, 0..255."""
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def top_level_atoms(path: Path) -> list[bytes]:
    data, atoms, pos = path.read_bytes(), [], 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        atoms.append(kind)
        pos += size
    return atoms


def photo(fmt: str = "JPEG", size: tuple[int, int] = (1200, 800), mode: str = "RGB") -> bytes:
    """A picture with structure, so a pan or zoom visibly changes the frame."""
    img = Image.linear_gradient("L").resize(size).convert(mode)
    draw = ImageDraw.Draw(img)
    w, h = size
    for i in range(8):
        draw.ellipse((i * w // 8, i * h // 10, i * w // 8 + w // 6, i * h // 10 + h // 4),
                     fill=(40 * i % 256, 255 - 30 * i, 90))
    if mode == "RGBA":
        img.putalpha(Image.linear_gradient("L").rotate(90).resize(size))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A few dozen bytes of PNG whose header claims `width` x `height` pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_prompt_clip_is_a_real_h264_mp4(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    info = render_clip(out, prompt="A cat surfing a huge wave at sunset, cinematic lighting")
    assert (info.path, info.width, info.height, info.frames, info.seconds) == (
        out, 640, 360, 48, 4)
    assert info.size_bytes == out.stat().st_size < 1_000_000
    clip = decode(out)
    assert "mp4" in clip.format_name
    assert clip.codec == ("h264" if info.codec == "libx264" else "mpeg4")
    assert (clip.width, clip.height, clip.pix_fmt) == (640, 360, "yuv420p")
    assert 46 <= len(clip.frames) <= 50
    assert differ(clip.frames[0], clip.frames[-1]) > 5
    assert top_level_atoms(out).index(b"moov") < top_level_atoms(out).index(b"mdat")
    assert list(tmp_path.iterdir()) == [out]


def test_image_clip_pans_and_zooms(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    info = render_clip(out, prompt="", image=photo("JPEG"), seconds=2, fps=10)
    clip = decode(out)
    assert (clip.width, clip.height, len(clip.frames)) == (640, 360, info.frames) == (640, 360, 20)
    assert differ(clip.frames[0], clip.frames[-1]) > 5
    assert differ(clip.frames[0], clip.frames[10]) > 1


def test_portrait_clip_from_a_transparent_png(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    info = render_clip(out, prompt="", image=photo("PNG", (500, 900), "RGBA"), seconds=1,
                       aspect_ratio="9:16")
    clip = decode(out)
    assert (info.width, info.height) == (clip.width, clip.height) == (360, 640)


def test_webp_is_accepted_and_width_sets_the_size(tmp_path: Path) -> None:
    info = render_clip(tmp_path / "clip.mp4", prompt="", image=photo("WEBP"), seconds=1,
                       width=320)
    clip = decode(info.path)
    assert (clip.width, clip.height) == (320, 180)


def test_cjk_prompt_renders(tmp_path: Path) -> None:
    prompt = "一只猫在日落时冲浪，电影感灯光，慢动作。" * 20
    info = render_clip(tmp_path / "clip.mp4", prompt=prompt, seconds=1)
    assert len(decode(info.path).frames) == info.frames == 12


def test_mpeg4_fallback_is_decodable(tmp_path: Path) -> None:
    info = render_clip(tmp_path / "clip.mp4", prompt="fallback", seconds=1, codec="mpeg4")
    clip = decode(info.path)
    assert (info.codec, clip.codec, len(clip.frames)) == ("mpeg4", "mpeg4", 12)


def test_pick_codec_prefers_libx264() -> None:
    assert pick_codec() == ("libx264" if "libx264" in av.codecs_available else "mpeg4")


@pytest.mark.parametrize(("ratio", "width", "size"), [
    ("16:9", None, (640, 360)), ("9:16", None, (360, 640)), ("1:1", None, (640, 640)),
    ("16:9", 1280, (1280, 720)), ("4:3", 321, (320, 240)),
])
def test_frame_size_is_even(ratio: str, width: int | None, size: tuple[int, int]) -> None:
    assert frame_size(ratio, width) == size


@pytest.mark.parametrize("ratio", ["", "16x9", "0:9", "1:10", "a:b", "16:9:1"])
def test_frame_size_refuses_odd_ratios(ratio: str) -> None:
    with pytest.raises(ValueError, match="aspect ratio"):
        frame_size(ratio)


@pytest.mark.parametrize(("seconds", "fps", "width"), [(0, 12, None), (61, 12, None),
                                                       (4, 0, None), (4, 12, 8)])
def test_bad_arguments_raise_value_error(
    tmp_path: Path, seconds: int, fps: int, width: int | None,
) -> None:
    with pytest.raises(ValueError, match=r"must be|outside"):
        render_clip(tmp_path / "clip.mp4", prompt="x", seconds=seconds, fps=fps, width=width)
    assert list(tmp_path.iterdir()) == []


def gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, "GIF")
    return buf.getvalue()


@pytest.mark.parametrize(("image", "code"), [
    (b"not an image at all", "image_unsupported"),
    (b"", "image_unsupported"),
    (gif(), "image_unsupported"),
    (photo("JPEG")[:600], "image_unreadable"),
    (png_declaring(100_000, 100_000), "image_too_many_pixels"),  # Pillow's bomb error
    (png_declaring(8_000, 6_000), "image_too_many_pixels"),  # our 40 MP limit
    (b"\xff\xd8\xff" + bytes(MAX_IMAGE_BYTES), "image_too_large"),
], ids=["garbage", "empty", "gif", "truncated-jpeg", "pillow-bomb", "over-40mp", "over-20mb"])
def test_unsafe_images_are_refused(tmp_path: Path, image: bytes, code: str) -> None:
    with pytest.raises(RenderError) as caught:
        render_clip(tmp_path / "clip.mp4", prompt="x", image=image, seconds=1)
    assert caught.value.code == code
    assert "/" not in str(caught.value)  # user-safe: no paths or internals
    assert list(tmp_path.iterdir()) == []


def test_max_pixels_is_a_parameter(tmp_path: Path) -> None:
    with pytest.raises(RenderError) as caught:
        render_clip(tmp_path / "clip.mp4", prompt="x", image=photo("PNG", (200, 100)),
                    max_pixels=10_000)
    assert caught.value.code == "image_too_many_pixels"


def test_failure_mid_encode_leaves_no_temp_file_and_keeps_the_old_clip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"previous clip")

    def failing(prompt: str, size: tuple[int, int], total: int) -> Iterator[Image.Image]:
        yield Image.new("RGB", size)
        raise RuntimeError("boom")

    monkeypatch.setattr(_render, "_prompt_frames", failing)
    with pytest.raises(RuntimeError, match="boom"):
        render_clip(out, prompt="x")
    assert list(tmp_path.iterdir()) == [out]
    assert out.read_bytes() == b"previous clip"


@pytest.mark.parametrize("text", ["word " * 400, "一只猫在日落时冲浪" * 100, "x" * 2000])
def test_wrap_fits_the_width_and_truncates_with_an_ellipsis(text: str) -> None:
    font = ImageFont.load_default(24)
    lines = _render._wrap(text, font, 500, 4)
    assert len(lines) == 4
    assert lines[-1].endswith("…")
    assert all(font.getlength(line) <= 500 for line in lines)


def test_wrap_keeps_short_text_whole() -> None:
    font = ImageFont.load_default(24)
    assert _render._wrap("a short prompt", font, 500, 4) == ["a short prompt"]
