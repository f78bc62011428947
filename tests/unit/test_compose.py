"""The demo's try-on picture: a real JPEG from the user's photos, clearly marked DEMO."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageStat

from providers._compose import BAND, COLUMN, MAX_JPEG_BYTES, PERSON, compose_tryon
from providers._render import RenderError


def photo(colour: tuple[int, int, int], size: tuple[int, int] = (300, 400),
          fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format=fmt)
    return out.getvalue()


def pixels(img: Image.Image) -> list[tuple[int, ...]]:
    raw = img.convert("RGB").tobytes()
    return [tuple(raw[i:i + 3]) for i in range(0, len(raw), 3)]


def mean(img: Image.Image, box: tuple[int, int, int, int]) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(img.crop(box).convert("RGB")).mean)


def close(a: tuple[float, ...], b: tuple[int, int, int], tolerance: float = 12) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


GREEN, BLUE, RED = (30, 160, 60), (20, 60, 220), (220, 30, 30)


def test_the_person_wears_the_first_garment_and_every_garment_is_shown() -> None:
    data = compose_tryon(photo(GREEN), [photo(BLUE, (200, 200), "PNG"), photo(RED)],
                         prompt="studio photo, full body")
    opened = Image.open(io.BytesIO(data))
    assert opened.format == "JPEG"
    assert opened.size == (PERSON[0] + COLUMN, PERSON[1] + BAND)
    assert len(data) <= MAX_JPEG_BYTES
    img = opened.convert("RGB")
    pw, ph = PERSON
    # The person's photo shows at the edge of the panel, untouched by the garment.
    assert close(mean(img, (pw // 2 - 20, 10, pw // 2 + 20, 40)), GREEN)
    # Over the body, the garment laid half-transparently on the person: a blend of both.
    torso = mean(img, (pw // 2 - 60, int(ph * 0.38) - 20, pw // 2 - 20, int(ph * 0.38) + 20))
    assert torso[2] > GREEN[2] + 40  # bluer than the person
    assert torso[1] > BLUE[1] + 10  # greener than the garment
    # The column: each garment in its own cell, in order.
    cell = ph // 2
    assert close(mean(img, (pw + 80, cell // 2 - 20, pw + 120, cell // 2 + 20)), BLUE)
    assert close(mean(img, (pw + 80, cell + cell // 2 - 20, pw + 120, cell + cell // 2 + 20)),
                 RED)


def test_the_picture_is_marked_demo() -> None:
    plain = compose_tryon(photo(GREEN), [photo(BLUE)], prompt="")
    img = Image.open(io.BytesIO(plain)).convert("RGB")
    band = img.crop((0, PERSON[1], img.width, img.height))
    # The yellow "DEMO · virtual try-on preview" label in the band.
    yellow = sum(1 for r, g, b in pixels(band) if r > 200 and g > 150 and b < 80)
    assert yellow > 200
    # The diagonal DEMO mark lightens part of the person's plain green photo.
    panel = img.crop((0, 0, PERSON[0], PERSON[1]))
    light = sum(1 for r, g, b in pixels(panel) if r > 100 and b > 100 and g > 180)
    assert light > 2000


def test_a_chinese_prompt_and_many_garments() -> None:
    data = compose_tryon(photo(GREEN), [photo(BLUE)] * 10, prompt="影棚照片，全身 🎉" * 40)
    assert Image.open(io.BytesIO(data)).size == (PERSON[0] + COLUMN, PERSON[1] + BAND)


def test_unusable_photos_are_refused_with_the_renderers_errors() -> None:
    with pytest.raises(RenderError) as bad:
        compose_tryon(photo(GREEN), [b"not an image at all"], prompt="x")
    assert bad.value.code == "image_unsupported"
    with pytest.raises(RenderError) as big:
        compose_tryon(photo(GREEN, (2000, 2000)), [photo(BLUE)], prompt="x", max_pixels=1000)
    assert big.value.code == "image_too_many_pixels"
    with pytest.raises(ValueError, match=r"1\.\.10"):
        compose_tryon(photo(GREEN), [], prompt="x")
