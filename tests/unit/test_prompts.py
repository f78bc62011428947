"""Prompts lose terminal control codes where they enter a job, and keep their line breaks."""

from __future__ import annotations

import pytest

from generation import clean_prompt


@pytest.mark.parametrize(("typed", "stored"), [
    ("a cat surfing", "a cat surfing"),
    ("\x1b[31mred\x1b[0m cat", "red cat"),  # the whole colour code goes, not just ESC
    ("\x1b[1;38;5;196mbold\x1b[m", "bold"),
    ("bell\x07 and\x08 backspace\x7f", "bell and backspace"),
    ("line one\nline two", "line one\nline two"),
    ("windows\r\nline\rold mac", "windows\nline\nold mac"),
    ("tab\there", "tab here"),
    ("\x1b]0;window title\x07after", "after"),  # OSC ended by BEL
    ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC ended by ESC \
    ("\x9b31mC1 csi", "C1 csi"),
    ("nul\x00byte", "nulbyte"),
    ("\u202eevil\u202c override", "evil override"),
    ("你好，世界 🎉", "你好，世界 🎉"),
    ("family 👨\u200d👩\u200d👧", "family 👨\u200d👩\u200d👧"),  # the joiner inside emoji stays
    ("  \x1b[2J  ", ""),
    ("lone escape at the end\x1b", "lone escape at the end"),
])
def test_control_characters_are_stripped_and_newlines_kept(typed: str, stored: str) -> None:
    assert clean_prompt(typed) == stored


def test_nothing_printable_is_lost() -> None:
    text = "".join(chr(c) for c in range(0x20, 0x7F)) + "ÄéØ€中文"
    assert clean_prompt(text) == text.strip()
