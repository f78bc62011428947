"""Photos from the chat: real images are kept or re-encoded to JPEG within the providers' limit;
anything else is refused before it reaches storage."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from handlers import photos
from handlers.photos import PhotoRejected, prepare
from tests.factories import jpeg_bytes


def decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_a_jpeg_within_the_limit_is_kept_byte_for_byte() -> None:
    data = jpeg_bytes()
    assert prepare(data) == data


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_png_and_webp_become_jpeg(fmt: str) -> None:
    out = decoded(prepare(jpeg_bytes(64, 48, fmt)))
    assert (out.format, out.size, out.mode) == ("JPEG", (64, 48), "RGB")


def test_transparency_is_flattened_onto_white() -> None:
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    out = decoded(prepare(buf.getvalue()))
    r, g, b = out.convert("RGB").getpixel((4, 4))  # type: ignore[misc]
    assert min(r, g, b) > 240


def test_an_image_over_the_providers_limit_is_shrunk_until_it_fits(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(photos, "PROVIDER_LIMIT", 20_000)  # our own constant, made small
    noisy = Image.frombytes("RGB", (300, 300), os.urandom(300 * 300 * 3))
    buf = io.BytesIO()
    noisy.save(buf, format="JPEG", quality=95)
    assert len(buf.getvalue()) > 20_000
    out = prepare(buf.getvalue())
    assert len(out) <= 20_000
    img = decoded(out)
    assert img.format == "JPEG"
    assert img.width < 300


@pytest.mark.parametrize("data", [b"", b"hello", b"%PDF-1.7\n" + b"x" * 100,
                                  jpeg_bytes()[:200],  # truncated
                                  jpeg_bytes(fmt="GIF"), jpeg_bytes(fmt="BMP")])
def test_what_is_not_a_usable_photo_is_refused(data: bytes) -> None:
    with pytest.raises(PhotoRejected) as refused:
        prepare(data)
    assert refused.value.key == "photo.unusable"


def test_too_many_pixels_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(photos, "MAX_PIXELS", 1000)
    with pytest.raises(PhotoRejected) as refused:
        prepare(jpeg_bytes(100, 100))
    assert refused.value.key == "photo.too_many_pixels"
