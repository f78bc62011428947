"""A reply "2" on a channel without buttons picks choice 2 of the menu the user was last shown,
read in the same SELECT as the user (`handlers.menus.by_number` in `Handlers.handle`): no read
of its own, on SQLite and PostgreSQL alike; a channel with buttons keeps "2" as text."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import sqlite_twin
from handlers import menus
from tests.factories import TestDatabase
from tests.integration._chat import chatting, texts


@contextmanager
def selects(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SELECT statements run on `engine` (and SQLite's synchronous twin) in the block."""
    seen: list[str] = []
    engines = [e for e in (engine.sync_engine, sqlite_twin(engine)) if e is not None]

    def listen(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        if sql.lstrip().upper().startswith("SELECT"):
            seen.append(" ".join(sql.split()))

    for e in engines:
        event.listen(e, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        for e in engines:
            event.remove(e, "before_cursor_execute", listen)


async def test_a_number_picks_from_the_menu_read_with_the_user(
        database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user("num", channel="console")
        await user.send("/start")
        engine = h.app.engine
        await menus.remember(engine, "console", "num", ["checkin", "balance"])
        with selects(engine) as seen:
            out = texts(await user.send("２"))  # full-width, as a phone may type it
        assert "Available: 10 credits" in out  # choice 2 of the menu: Balance
        assert len(seen) == 1, seen  # the user, chat, menu and balance: one SELECT
        assert "chats.menu" in seen[0]
        assert "accounts.available" in seen[0]

        # Outside the menu: text, which the conversation answers as it answers text.
        assert "Available:" not in texts(await user.send("7"))

        # A channel with buttons never reads a typed number as a choice.
        tg = h.user("tg", channel="telegram")
        await tg.send("/start")
        await menus.remember(engine, "telegram", "tg", ["checkin", "balance"])
        assert "Available:" not in texts(await tg.send("2"))
