"""Two replicas of the whole service on one database, as WeChat's retries and a user's next
message may reach either: the numbered menu one replica showed is answered on the other, a
retry on the other replica gets the stored answer, a message whose replica died while handling
it is handled by the other, and a message costs two write transactions (the claim with the
user's turn; the settle with the reply, the menu and the turn given back)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, select

from bot.ordering import Turns
from bot.wechat import _dedup, _held, _serve
from bot.wechat._inbox_tables import wechat_held
from core.db import read, sqlite_twin, utcnow
from core.outbox import outbox
from handlers.messages import t, tn
from handlers.tables import chat_turns
from handlers.types import Media, Text
from tests.factories import TestDatabase
from tests.fakes.wechat import WeChatFake
from tests.integration._wechat import text_xml

from .test_wechat_e2e import Person, Stack, held, joined, wechat_service


@contextmanager
def commits(stack: Stack) -> Iterator[list[int]]:
    """Counts the write transactions committed on the replica's engine (SQLite's twin too)
    that touched a chat's tables (a scheduler sweep meanwhile is not the message's)."""
    engine = stack.app.engine
    targets = [engine.sync_engine, *filter(None, [sqlite_twin(engine)])]
    seen = [0]

    def statement(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        conn.info.setdefault(_SQL, []).append(sql)

    def commit(conn: Any) -> None:
        if any(name in sql for sql in conn.info.pop(_SQL, [])
               for name in ("wechat_inbound", "chat_turns", "chats")):
            seen[0] += 1

    def rollback(conn: Any) -> None:
        conn.info.pop(_SQL, None)

    hooks = (("before_cursor_execute", statement), ("commit", commit), ("rollback", rollback))
    for target in targets:
        for name, hook in hooks:
            event.listen(target, name, hook)
    try:
        yield seen
    finally:
        for target in targets:
            for name, hook in hooks:
                event.remove(target, name, hook)


_SQL = "test_statements"


async def settled(stack: Stack) -> None:
    """Waits (bounded) until the outbox dispatcher has taken every message: delivered, or
    held for the user's next message in passive mode."""
    for _ in range(200):
        async with read(stack.app.engine) as conn:
            if (await conn.execute(select(outbox.c.id).where(
                    outbox.c.state.in_(("pending", "sending"))))).first() is None:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the outbox did not settle within 10 s")


async def test_a_menu_shown_by_one_replica_is_answered_on_the_other(
        database: TestDatabase, tmp_path: Path) -> None:
    async with WeChatFake() as wx, \
            wechat_service(database, tmp_path / "a", wx, mode="passive") as one, \
            wechat_service(database, tmp_path / "b", wx, mode="passive") as two:
        on_one, on_two = Person(one, "oMia"), Person(two, "oMia")
        await on_one.says("/start")
        await settled(one)  # /start's notices are held, then carried by the next reply:
        if await held(one):  # not by /language's, whose transactions are counted below
            await on_one.says("/balance")
        with commits(one) as written:
            menu = joined(await on_one.says("/language"))
        assert "1. English" in menu
        assert written[0] == 2  # the claim, and the settle that kept the menu
        assert await on_one.menu() == ["lang:en", "lang:zh"]
        english = joined(await on_two.says("1"))  # the other replica reads the menu
        assert t("en", "lang.set") in english
        # The balance shows the main menu; the same again changes nothing but is answered.
        with commits(two) as written:
            first = joined(await on_two.says("/balance"))
            again = joined(await on_one.says("/balance"))
        assert first == again
        assert t("en", "balance.text", available=tn("en", "n.credits", 10),
                 held=tn("en", "n.credits", 0)) in first
        assert written[0] == 2
        assert (await on_one.menu())[0].startswith("generate")
        async with read(one.app.engine) as conn:
            turn = (await conn.execute(select(chat_turns.c.holder).where(
                chat_turns.c.address == "oMia"))).scalar_one()
        assert turn is None  # given back with the settle


async def test_a_retry_on_the_other_replica_gets_the_stored_answer(
        database: TestDatabase, tmp_path: Path) -> None:
    async with WeChatFake() as wx, \
            wechat_service(database, tmp_path / "a", wx, mode="passive") as one, \
            wechat_service(database, tmp_path / "b", wx, mode="passive") as two:
        await Person(one, "oRex").says("/start")
        # Waiting for the user's next message: a text, and a video made a link when shown
        # (rendered between the settle's two transactions).
        await _held.hold(one.app.engine, "oRex", [
            Text(text="a result waiting for the user"),
            Media(kind="video", key="videos/rex.mp4", caption="your video")], utcnow())
        xml = text_xml("oRex", "/balance")
        first = await one.sim.send(xml)
        assert first is not None
        assert first.startswith("a result waiting for the user\n\nyour video\nhttp")
        assert "/media/videos/rex.mp4" in first
        retries = await asyncio.gather(two.sim.send(xml), one.sim.send(xml))
        assert list(retries) == [first, first]  # the stored reply, the held message once
        async with read(two.app.engine) as conn:
            assert (await conn.execute(select(wechat_held.c.id))).first() is None


async def test_a_message_whose_instance_died_is_handled_by_the_other_replica(
        database: TestDatabase, tmp_path: Path) -> None:
    async with WeChatFake() as wx, \
            wechat_service(database, tmp_path / "a", wx, mode="passive") as one, \
            wechat_service(database, tmp_path / "b", wx, mode="passive") as two:
        await Person(one, "oDee").says("/start")
        xml = text_xml("oDee", "/balance", MsgId=424242)
        # Replica one claimed the message and took the user's turn twenty seconds ago, then
        # died: the row stays `working`, the turn's lease runs two minutes more.
        key, now = "m:424242", utcnow()
        turns = Turns(one.app.engine)
        assert await _dedup.claim(
            one.app.engine, key, "oDee", now=now - timedelta(seconds=20),
            also=lambda conn: turns.take(conn, "wechat", "oDee", _serve._holder(key)),
        ) == (None, True)
        reply = await two.sim.send(xml)  # WeChat's retry reaches replica two
        assert reply is not None
        assert t("zh", "balance.text", available=tn("zh", "n.credits", 10),
                 held=tn("zh", "n.credits", 0)) in reply  # in time: the turn taken over too
        assert await one.sim.send(xml) == reply  # the last retry: the stored reply
        async with read(one.app.engine) as conn:
            turn = (await conn.execute(select(chat_turns.c.holder).where(
                chat_turns.c.address == "oDee"))).scalar_one()
        assert turn is None
