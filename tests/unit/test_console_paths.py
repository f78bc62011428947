"""The terminal's rule for a mistyped path: a line that looks like a path but names no file
gets "No file at PATH"; prose and commands are not paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.console import missing_path


@pytest.mark.parametrize(("line", "missing"), [
    ("/no/such/dir/me.jpg", "/no/such/dir/me.jpg"),  # absolute
    ("photos/me.jpg", "photos/me.jpg"),  # relative, by its image extension
    ("./me.png", "./me.png"),
    ("../up/me", "../up/me"),
    ("~/nothing-here.webp", "~/nothing-here.webp"),
    ("'/quoted path/me.JPG'", "/quoted path/me.JPG"),
    ("/tmp/x/y", "/tmp/x/y"),
    ("/balance", None),  # a command
    ("/redeem ABCD", None),
    ("a cat surfing at sunset", None),  # prose
    ("1", None),
    ("", None),
    ("/", None),
])
def test_what_counts_as_a_mistyped_path(line: str, missing: str | None) -> None:
    assert missing_path(line) == missing


def test_an_existing_file_is_not_missing(tmp_path: Path) -> None:
    photo = tmp_path / "me.jpg"
    photo.write_bytes(b"x")
    assert missing_path(str(photo)) is None
    assert missing_path(str(tmp_path / "other.jpg")) == str(tmp_path / "other.jpg")
