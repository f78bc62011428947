"""The CJK font ships with the package, draws Chinese, and emoji are dropped instead of boxed."""

from __future__ import annotations

from PIL import Image, ImageChops, ImageDraw, ImageFont

from providers import _render
from providers._render import font_for
from providers.fonts import cjk_face, drawable, glyphs


def bitmap(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, ch: str) -> bytes:
    img = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(img).text((32, 32), ch, font=font, fill=255, anchor="mm")
    return img.tobytes()


def test_the_packaged_noto_sans_cjk_is_found_with_its_chinese_face() -> None:
    face = cjk_face()
    assert face is not None  # a dependency of the package: always there after pip install
    assert face.path.name == "NotoSansCJK-Regular.ttc"
    font = ImageFont.truetype(str(face.path), 20, index=face.index)
    assert font.getname()[0] == "Noto Sans CJK SC"
    covered = glyphs(face)
    assert {ord("你"), ord("好"), ord("A"), ord("é"), ord("，")} <= covered
    assert ord("🎉") not in covered


def test_chinese_draws_as_distinct_glyphs_not_boxes() -> None:
    font, text = font_for("你好世界", 40)
    assert text == "你好世界"
    shapes = {bitmap(font, ch) for ch in text}
    assert len(shapes) == 4  # boxes (a missing glyph) would all look the same
    assert all(any(shape) for shape in shapes)


def test_characters_the_font_lacks_are_dropped() -> None:
    face = cjk_face()
    assert face is not None
    covered = glyphs(face)
    assert drawable("party 🎉 time", covered) == "party time"
    assert drawable("👨\u200d👩\u200d👧 家庭", covered) == " 家庭"
    assert drawable("❤\ufe0f love", covered).endswith("love")
    assert drawable("two\nlines\x1b", covered) == "two\nlines"
    # Without a known cmap (Pillow's own font) only Latin-1 is kept.
    assert drawable("café 中文 🎉!", None) == "café !"
    _, text = font_for("a 🎉 b", 20)
    assert text == "a b"


def test_a_chinese_prompt_shows_in_the_clip_and_emoji_leave_no_boxes() -> None:
    size = (320, 180)

    def first(prompt: str) -> Image.Image:
        return next(_render._prompt_frames(prompt, size, 2))

    # With boxes, "你好" and "好你" would be the same two boxes.
    assert ImageChops.difference(first("你好"), first("好你")).getbbox() is not None
    assert ImageChops.difference(first("🎉🎉"), first("")).getbbox() is None
    assert ImageChops.difference(first("猫 🎉"), first("猫")).getbbox() is None
