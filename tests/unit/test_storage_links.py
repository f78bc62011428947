"""Signed media links: made by LocalStorage.url, checked by verify_link."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from storage import LocalStorage
from storage._links import LinkSigner

SECRET = "0123456789abcdef-test-secret"
KEY = "videos/2026/11/0f1e2d3c4b5a69788796a5b4c3d2e1f0.mp4"


def storage_at(tmp_path: Path, now: float = 1_800_000_000) -> LocalStorage:
    return LocalStorage(tmp_path, public_base="https://bot.example/", link_secret=SECRET,
                        clock=lambda: now)


async def test_url_is_a_signed_link_under_media(tmp_path: Path) -> None:
    link = await storage_at(tmp_path).url(KEY, ttl=600)
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"https://bot.example/media/{KEY}"
    query = parse_qs(parts.query)
    assert query["exp"] == ["1800000600"]
    assert query["sig"] == [LinkSigner(SECRET).sign(KEY, 1_800_000_600)]


async def test_verify_link_good_tampered_and_expired(tmp_path: Path) -> None:
    storage = storage_at(tmp_path)
    query = parse_qs(urlsplit(await storage.url(KEY, ttl=600)).query)
    exp, sig = query["exp"][0], query["sig"][0]
    assert storage.verify_link(KEY, exp, sig, 1_800_000_000)
    assert storage.verify_link(KEY, int(exp), sig.upper(), 1_800_000_599)
    assert storage.verify_link(KEY, exp, sig)  # the storage's own clock
    assert not storage.verify_link(KEY, exp, sig, 1_800_000_600)  # expired at exp
    assert not storage.verify_link(KEY, str(int(exp) + 1), sig, 1_800_000_000)
    assert not storage.verify_link(KEY.replace(".mp4", ".png"), exp, sig, 1_800_000_000)
    assert not storage.verify_link(KEY, exp, sig[:-1] + ("0" if sig[-1] != "0" else "1"),
                                   1_800_000_000)
    other = LocalStorage(tmp_path, public_base="https://bot.example", link_secret=SECRET + "x")
    assert not other.verify_link(KEY, exp, sig, 1_800_000_000)


@pytest.mark.parametrize(("key", "exp", "sig"), [
    (KEY, "", "00"), (KEY, "-1", "00"), (KEY, "1e9", "00"), (KEY, "²", "00"),
    (KEY, "9" * 40, "00"), (KEY, "1800000600", "é"), (KEY, "1800000600", ""),
    ("../etc/passwd", "1800000600", "00"), ("/abs", "1800000600", "00"),
])
def test_verify_link_never_raises_on_garbage(tmp_path: Path, key: str, exp: str, sig: str) -> None:
    assert storage_at(tmp_path).verify_link(key, exp, sig, 0) is False


def test_the_separator_keeps_key_and_expiry_apart() -> None:
    signer = LinkSigner(SECRET)
    assert signer.sign("a1", 23) != signer.sign("a", 123)


def test_secret_must_be_long_and_stays_hidden(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 16"):
        LocalStorage(tmp_path, public_base="https://bot.example", link_secret="short")
    assert SECRET not in repr(LinkSigner(SECRET))
    assert SECRET not in repr(storage_at(tmp_path))


async def test_url_needs_a_positive_ttl(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await storage_at(tmp_path).url(KEY, ttl=0)
