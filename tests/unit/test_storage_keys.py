"""Keys: the scheme `new_key` makes, and what `validate_key` lets through."""

from __future__ import annotations

import posixpath
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import InvalidKey, new_key, validate_key

BAD_KEYS = [
    "", "/etc/passwd", "../secret", "videos/../../etc/passwd", "a/./b", "a//b", "a/", ".env",
    "videos/.x.mp4.abc.part", "a..b", "Videos/x.mp4", "a b", "a\\b", "a\x00b", "vidéo.mp4",
    "a?b", "a%2fb", "~/x", "x" * 513,
]


def test_new_key_has_kind_date_uuid_and_suffix() -> None:
    key = new_key("videos", ".mp4", now=datetime(2026, 11, 3, tzinfo=UTC))
    assert re.fullmatch(r"videos/2026/11/[0-9a-f]{32}\.mp4", key)


def test_new_key_accepts_suffix_without_dot_or_none() -> None:
    assert new_key("images", "png").endswith(".png")
    assert re.fullmatch(r"images/\d{4}/\d{2}/[0-9a-f]{32}", new_key("images", ""))


def test_new_keys_are_unique() -> None:
    assert len({new_key("videos", ".mp4") for _ in range(200)}) == 200


@pytest.mark.parametrize(("kind", "suffix"), [("../x", ".mp4"), ("a/b", ".mp4"),
                                              ("Videos", ".mp4"), ("videos", "./x"),
                                              ("videos", ".mp4/../x"), ("", ".mp4")])
def test_new_key_refuses_odd_kind_or_suffix(kind: str, suffix: str) -> None:
    with pytest.raises(InvalidKey):
        new_key(kind, suffix)


@pytest.mark.parametrize("key", ["videos/2026/11/ab12.mp4", "a", "try-on/x_y.v2.png"])
def test_validate_key_accepts_plain_keys(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize("key", BAD_KEYS)
def test_validate_key_refuses(key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)
    with pytest.raises(ValueError, match="invalid storage key"):
        validate_key(key)


@given(st.text(alphabet="ab./-_\\%:~ \x00", max_size=24))
def test_every_accepted_key_stays_below_the_root(key: str) -> None:
    try:
        validate_key(key)
    except InvalidKey:
        return
    joined = posixpath.normpath(posixpath.join("/root", key))
    assert joined.startswith("/root/")
    assert joined == f"/root/{key}"  # nothing to normalise: no `.`, `..` or empty segment
