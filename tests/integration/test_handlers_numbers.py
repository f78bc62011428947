"""On a channel without buttons the menu the user was last shown is read with the user: a reply
"2" picks its choice 2 (`handlers.menus.by_number` in `Handlers.handle`) with no read of its
own, on SQLite and PostgreSQL alike (a channel with buttons keeps "2" as text), and a reply that
ends on that same menu is marked so the sender writes no menu (`menus.keep_stored`)."""

from __future__ import annotations

from pathlib import Path

from handlers import menus
from handlers.types import Text
from tests.factories import TestDatabase
from tests.integration._chat import chatting, statements, texts


async def test_a_number_picks_from_the_menu_read_with_the_user(
        database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user("num", channel="console")
        await user.send("/start")
        engine = h.app.engine
        await menus.remember(engine, "console", "num", ["checkin", "balance"])
        with statements(engine) as seen:
            out = texts(await user.send("２"))  # full-width, as a phone may type it
        assert "Available: 10 credits" in out  # choice 2 of the menu: Balance
        reads = [s for s in seen if s.startswith("SELECT")]
        assert len(reads) == 1, reads  # the user, chat, menu and balance: one SELECT
        assert "CHATS.MENU" in reads[0]
        assert "ACCOUNTS.AVAILABLE" in reads[0]

        # Outside the menu: text, which the conversation answers as it answers text.
        assert "Available:" not in texts(await user.send("7"))

        # A channel with buttons never reads a typed number as a choice.
        tg = h.user("tg", channel="telegram")
        await tg.send("/start")
        await menus.remember(engine, "telegram", "tg", ["checkin", "balance"])
        assert "Available:" not in texts(await tg.send("2"))


async def test_a_reply_ending_on_the_stored_menu_writes_no_menu(
        database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user("menu", channel="console")
        await user.send("/start")
        first = await user.send("/balance")
        shown = menus.menu_change(first[-1])
        assert shown  # the main menu, not stored yet (the harness sends nothing): written
        await menus.remember(h.app.engine, "console", "menu", shown)
        again = await user.send("/balance")
        assert [menus.menu_change(m) for m in again] == [None] * len(again)  # kept
        assert numbered_text(again[-1]) == numbered_text(first[-1])  # still shown in full
        other = await user.send("/language")
        assert menus.menu_change(other[-1]) not in (None, shown)  # another menu: written


def numbered_text(message: object) -> str:
    assert isinstance(message, Text)
    return menus.numbered(message).text
