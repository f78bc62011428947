"""The chat's hot path (bench/telegram.py): /balance is one read and, most of the time, no write.

Checked on the statements the database sees (a `before_cursor_execute` listener on the async
engine and, on SQLite, on the twin engine `read`/`write` use): no write for a command
that changes nothing unless `last_seen_at` is a minute old or the row says blocked; the balance
read with the user is exactly `Wallet.balance`, never a stale one (first contact's bonus, a
grant between two updates); `Wallet.balance_on` inside `read` equals `Wallet.balance`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import read, write
from handlers.state import SEEN_STEP
from handlers.tables import chats
from tests.factories import TestDatabase
from tests.integration._chat import chatting, choices, statements, texts
from wallet.tables import users


def writes(seen: list[str]) -> list[str]:
    return [s for s in seen if s.startswith(("INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE"))]


async def last_seen(engine: AsyncEngine, uid: int) -> Any:
    async with read(engine) as conn:
        return (await conn.execute(select(chats.c.last_seen_at, chats.c.blocked_at)
                                   .where(chats.c.user_id == uid))).one()


async def test_balance_is_one_read_and_last_seen_is_written_a_minute_apart(
        database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        await user.send("/start")
        uid = await user.id()
        started = h.clock()
        with statements(h.app.engine) as seen:
            out = texts(await user.send("/balance"))
        assert "Available: 10 credits" in out
        assert writes(seen) == []
        assert sum(s.startswith("SELECT") for s in seen) == 1  # who + chat + balance, one SELECT
        h.clock.advance(seconds=SEEN_STEP.total_seconds() - 1)
        with statements(h.app.engine) as seen:
            await user.press("c:balance")
        assert writes(seen) == []
        assert (await last_seen(h.app.engine, uid)).last_seen_at == started
        moved = h.clock.advance(seconds=1)  # a minute since it was written
        with statements(h.app.engine) as seen:
            assert "Available: 10 credits" in texts(await user.send("/balance"))
        assert [s for s in writes(seen) if s.startswith("UPDATE")] == [
            next(s for s in seen if s.startswith("UPDATE CHATS SET LAST_SEEN_AT"))]
        assert (await last_seen(h.app.engine, uid)).last_seen_at == moved


async def test_a_blocked_user_who_writes_is_unblocked_at_once(database: TestDatabase,
                                                              tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        await user.send("/start")
        uid = await user.id()
        async with write(h.app.engine) as conn:
            await conn.execute(update(chats).where(chats.c.user_id == uid)
                               .values(blocked_at=h.clock()))
        h.clock.advance(seconds=5)  # well within a minute of last_seen_at
        await user.send("/help")
        row = await last_seen(h.app.engine, uid)
        assert row.blocked_at is None
        assert row.last_seen_at == h.clock()


async def test_the_balance_read_with_the_user_is_never_stale(database: TestDatabase,
                                                             tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        first = h.user("201")
        out = texts(await first.send("/balance"))  # first contact: bonus granted after the read
        assert "Welcome" in out
        assert "Available: 10 credits" in out
        uid = await first.id()
        await h.app.wallet.grant(uid, 7, source="test", key="between",
                                 expires_at=h.clock() + timedelta(days=2))
        out = texts(await first.send("/balance"))
        assert "Available: 17 credits" in out
        assert "7 of them expire by 2026-03-03" in out
        pressed = await first.press("c:balance")
        assert "Available: 17 credits" in texts(pressed)
        assert "balance" in choices(pressed)  # the main menu, as for the typed command
        hold = await h.app.wallet.hold(uid, 4, ref="between-hold")
        assert "running jobs: 4" in texts(await first.press("c:balance"))
        await h.app.wallet.release(hold.id)
        h.clock.advance(days=3)  # the 7 lapsed; the expiry sweep has not run
        assert "Available: 10 credits" in texts(await first.send("/balance"))


async def test_balance_on_in_one_read_equals_balance(database: TestDatabase,
                                                     tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        wallet = h.app.wallet
        uid = await wallet.open_account("telegram", "301")
        await wallet.grant(uid, 9, source="test", key="a", expires_at=h.clock() + timedelta(1))
        await wallet.grant(uid, 4, source="test", key="b")
        await wallet.grant(uid, 2, source="test", key="c", expires_at=h.clock() + timedelta(30))
        hold = await wallet.hold(uid, 3, ref="r")

        def balance(conn: Connection) -> Any:
            return wallet.balance_on(conn, uid)

        assert await read(h.app.engine, balance) == await wallet.balance(uid)
        await wallet.release(hold.id)


async def test_balance_read_in_the_callers_select_equals_balance(database: TestDatabase,
                                                                 tmp_path: Path) -> None:
    """`Wallet.with_balance` (the chat's one SELECT) against `Wallet.balance`, at each edge:
    a grant lapsing at exactly now, within the 7-day window, beyond it, none open."""
    async with chatting(database, tmp_path) as h:
        wallet = h.app.wallet
        uid = await wallet.open_account("telegram", "401")
        query = wallet.with_balance(select(users.c.id).where(users.c.id == uid), users.c.id)

        async def both() -> tuple[Any, Any]:
            async with read(h.app.engine) as conn:
                row = (await conn.execute(query, wallet.balance_params())).one()
            return wallet.balance_of(row, uid), await wallet.balance(uid)

        got, want = await both()
        assert got == want
        assert want.available == 0
        assert want.next_expiry is None
        await wallet.grant(uid, 9, source="test", key="a", expires_at=h.clock() + timedelta(1))
        await wallet.grant(uid, 4, source="test", key="b")
        await wallet.grant(uid, 2, source="test", key="c", expires_at=h.clock() + timedelta(30))
        hold = await wallet.hold(uid, 3, ref="r")
        for step in (timedelta(0), timedelta(hours=23), timedelta(hours=1), timedelta(days=2),
                     timedelta(days=30)):
            h.clock.advance(seconds=step.total_seconds())  # the 1-day grant lapses at 24 h
            got, want = await both()
            assert got == want
        assert want.next_expiry is None
        assert want.expiring_soon == 0
        await wallet.release(hold.id)
