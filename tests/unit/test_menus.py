"""Numbered menus and the shared sender's preparation: rendering, numbers, splitting."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.answer import split_text
from handlers.menus import by_number, choice_number, keep_stored, menu_change, numbered
from handlers.types import Button, Inbound, Media, Text
from tests.factories import BytesPhoto

MENU = Text(text="What now?", buttons=(
    (Button(label="Make a video", data="generate"),),
    (Button(label="Balance", data="balance"), Button(label="Pay", url="https://pay.example/x")),
    (Button(label="Help", data="help"),),
), track_job=3)


def test_numbered_lists_choices_and_links() -> None:
    shown = numbered(MENU)
    assert shown.text == ("What now?\n1. Make a video\n2. Balance\n"
                          "Pay: https://pay.example/x\n3. Help")
    assert shown.buttons == ()
    assert shown.track_job == 3
    plain = Text(text="hi")
    assert numbered(plain) is plain


def test_menu_change() -> None:
    assert menu_change(MENU) == ["generate", "balance", "help"]
    assert menu_change(Text(text="note")) is None  # leaves the menu
    assert menu_change(Text(text="your prompt?", free_text=True)) == []  # clears it
    links = Text(text="pay", buttons=((Button(label="Pay", url="https://p.example"),),))
    assert menu_change(links) is None
    assert menu_change(Media(kind="video", key="k", caption="c")) is None


@pytest.mark.parametrize(("text", "number"), [
    ("1", 1), (" 2 ", 2), ("１", 1), ("１２", 12), ("0", 0), ("12a", None), ("", None),
    ("²", None), ("1234", None), ("٣", None), ("one", None), ("-1", None),
])
def test_choice_number(text: str, number: int | None) -> None:
    assert choice_number(text) == number


def test_split_text_keeps_every_character_within_the_limit() -> None:
    text = "\n".join(f"line {i} " + "字" * (i % 40) for i in range(200))
    pieces = split_text(text, 2048)
    assert all(len(p.encode()) <= 2048 for p in pieces)
    assert len(pieces) > 1
    assert "\n".join(pieces) == text
    long_line = "词" * 3000  # one line over the limit: cut at characters, never inside one
    cut = split_text(long_line, 2048)
    assert "".join(cut) == long_line
    assert all(len(p.encode()) <= 2048 for p in cut)
    assert split_text("short", 2048) == ["short"]


def test_by_number_picks_from_the_menu_read_with_the_user() -> None:
    menu = ["kind:text-to-video", "balance", "checkin"]
    two = Inbound(channel="wechat", address="o1", text=" ２ ")
    assert by_number(two, menu) == replace(two, text="", choice="balance")
    for text in ("4", "0", "two", "2 please", ""):  # outside the menu, or not a number: text
        inbound = Inbound(channel="wechat", address="o1", text=text)
        assert by_number(inbound, menu) is inbound
    for menu_read in (None, [], {"1": "x"}, [None, ""], "balance"):  # no (usable) menu
        assert by_number(Inbound(channel="wechat", address="o1", text="2"), menu_read) \
            .choice is None
    pressed = Inbound(channel="wechat", address="o1", text="2", choice="checkin")
    assert by_number(pressed, menu) is pressed  # a choice already made stays
    photo = Inbound(channel="wechat", address="o1", text="2", photos=(BytesPhoto(b"x"),))
    assert by_number(photo, menu) is photo  # a caption "2" on a photo is a caption


def test_keep_stored_marks_a_reply_that_ends_on_the_stored_menu() -> None:
    main = Text(text="menu", buttons=((Button(label="Make", data="kind"),
                                       Button(label="Balance", data="balance")),))
    other = Text(text="lang", buttons=((Button(label="English", data="lang:en"),),))
    ask = Text(text="Type your prompt", free_text=True)
    plain = Text(text="Available: 10 credits")
    stored = ["kind", "balance"]

    kept = keep_stored([plain, main], stored)
    assert kept == [plain, replace(main, keep_menu=True)]
    assert [menu_change(m) for m in kept] == [None, None]  # nothing to write

    # Only the last menu counts: an earlier one in the same reply is not written either.
    kept = keep_stored([other, plain, main], stored)
    assert [menu_change(m) for m in kept] == [None, None, None]

    # Ending on another menu, or on a question for free text: written as before.
    assert keep_stored([main, other], stored) == [main, other]
    assert keep_stored([plain, ask], stored) == [plain, ask]
    assert keep_stored([plain], stored) == [plain]  # no menu in the reply
    assert keep_stored([plain, main], None) == [plain, main]  # none stored yet
    # A question for free text when the menu is cleared already: nothing to clear.
    assert keep_stored([ask], None) == [replace(ask, keep_menu=True)]
