"""The button-data codec: readable names, the 64-byte limit, and the old forms still in chats."""

from __future__ import annotations

import pytest

from handlers.choices import Choice, decode, encode, fits
from handlers.types import MAX_CHOICE_BYTES

NEW = {
    "menu": Choice("menu"), "generate": Choice("generate"), "cancel": Choice("cancel"),
    "confirm": Choice("confirm"), "done": Choice("done"), "balance": Choice("balance"),
    "topup": Choice("topup"), "history": Choice("history"),
    "history:812": Choice("history", ("812",)), "kind:try-on": Choice("kind", ("try-on",)),
    "model:demo-i2v": Choice("model", ("demo-i2v",)), "duration:10": Choice("duration", ("10",)),
    "aspect:16:9": Choice("aspect", ("16:9",)), "lang:zh": Choice("lang", ("zh",)),
    "topup:pkg_small": Choice("topup", ("pkg_small",)),
    "pay:pkg_small:stripe": Choice("pay", ("pkg_small", "stripe")),
    "video:resend:12": Choice("video", ("resend", "12")),
}

OLD = {
    "g": Choice("generate"), "x": Choice("cancel"), "go": Choice("confirm"),
    "done": Choice("done"), "c:balance": Choice("balance"), "c:checkin": Choice("checkin"),
    "c:videos": Choice("videos"), "c:topup": Choice("topup"), "c:help": Choice("help"),
    "c:start": Choice("menu"), "c:cancel": Choice("cancel"), "c:generate": Choice("generate"),
    "k:image-to-video": Choice("kind", ("image-to-video",)),
    "m:demo-t2v": Choice("model", ("demo-t2v",)), "d:4": Choice("duration", ("4",)),
    "a:9:16": Choice("aspect", ("9:16",)), "h:": Choice("history"),
    "h:77": Choice("history", ("77",)), "l:en": Choice("lang", ("en",)),
    "p:starter": Choice("topup", ("starter",)),
    "$:starter:creem": Choice("pay", ("starter", "creem")),
    "vs:5": Choice("video", ("resend", "5")), "vr:6": Choice("video", ("retry", "6")),
    "va:7": Choice("video", ("again", "7")),
}


@pytest.mark.parametrize(("data", "choice"), NEW.items())
def test_new_forms_round_trip(data: str, choice: Choice) -> None:
    assert decode(data) == choice
    assert encode(choice) == data == choice.data()


@pytest.mark.parametrize(("data", "choice"), OLD.items())
def test_old_forms_mean_the_same(data: str, choice: Choice) -> None:
    assert decode(data) == choice


@pytest.mark.parametrize("data", [
    "", "nonsense", "c:", "c:grant", "k:", "vs:", "$:starter", "$::x", "menu:1", "pay:x",
    "lang:", "video:resend", "kind:a:b:" * 8, "topup:" + "p" * 70,
])
def test_unknown_or_malformed_data_decodes_to_none(data: str) -> None:
    assert decode(data) is None


def test_the_byte_limit() -> None:
    longest = "p" * (MAX_CHOICE_BYTES - len("topup:"))
    assert fits(Choice("topup", (longest,)))
    assert not fits(Choice("topup", (longest + "p",)))
    with pytest.raises(ValueError, match="64 bytes"):
        encode(Choice("model", ("模" * 21,)))  # 63 bytes of CJK plus the name
    with pytest.raises(ValueError, match="not a choice"):
        encode(Choice("unheard-of"))
    with pytest.raises(ValueError, match="not a choice"):
        encode(Choice("pay", ("only-one",)))
    with pytest.raises(ValueError, match="bad choice argument"):
        encode(Choice("pay", ("a:b", "stripe")))  # a colon only in the last argument
    assert all(len(d.encode()) <= MAX_CHOICE_BYTES for d in NEW)
