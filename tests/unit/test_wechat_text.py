"""WeChat text parts: within the byte limit, whole characters, cut at natural breaks."""

from __future__ import annotations

import pytest

from bot.wechat._text import split_utf8


def test_short_text_is_one_part() -> None:
    assert split_utf8("你好", 2048) == ["你好"]
    assert split_utf8("", 2048) == []


def test_chinese_text_is_cut_on_character_boundaries() -> None:
    text = "视频" * 1500  # 9000 bytes
    parts = split_utf8(text, 2048)
    assert all(len(p.encode()) <= 2048 for p in parts)
    assert "".join(parts) == text
    assert len(parts) == 5


def test_parts_end_at_paragraphs_then_lines_then_spaces() -> None:
    para = "word " * 150  # 750 bytes
    text = "\n\n".join([para.strip()] * 4)
    parts = split_utf8(text, 2048)
    assert [len(p) for p in parts] == [len(para.strip()) * 2 + 2, len(para.strip()) * 2 + 2]
    assert all(not p.startswith("\n") for p in parts)
    words = split_utf8("a" * 10 + " " + "b" * 10, 16)
    assert words == ["a" * 10, "b" * 10]


@pytest.mark.parametrize("limit", [4, 7, 64, 2048])
def test_every_limit_keeps_all_the_characters(limit: int) -> None:
    text = "Ünïcödé 文字 🎬 " * 300
    parts = split_utf8(text, limit)
    assert all(len(p.encode()) <= limit for p in parts)
    assert "".join(parts).replace(" ", "") == text.replace(" ", "")
