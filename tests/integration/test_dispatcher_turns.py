"""The outbox dispatcher and the user's turn (`bot.dispatcher`, `bot.ordering.Turns.attempt`), on
a real database (SQLite, or PostgreSQL when named): on a channel without buttons a notice whose
numbered menu would land inside an answer goes out after it, so `chats.menu` ends as the menu
the user was shown last; the answer in progress runs in this process, on another replica (the
lease row), or holds a lease a WeChat claim took, and the dispatcher never blocks it. A channel
with buttons, or a part that writes no menu, takes no turn; a user whose turn stays taken
holds up no one else."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.answer import Answerer
from bot.dispatcher import Dispatcher, DispatchPolicy
from bot.ordering import Turns
from core.db import read, write
from core.outbox import outbox
from handlers import state
from handlers.menus import remember_in
from handlers.tables import chat_turns, chats
from handlers.types import Button, Inbound, Outbound, Text
from tests.factories import FakeClock, TestDatabase
from tests.integration.test_dispatcher import Recorder, queue
from wallet import Wallet

BOUND = 20.0  # seconds any test here may take at most (the turns wait far longer: 60 s)

ANSWER = Text(text="Your balance", buttons=(
    (Button(label="Top up", data="topup"), Button(label="Check in", data="checkin")),))
NOTICE = Text(text="Your video is ready", buttons=(
    (Button(label="Make a video", data="generate"), Button(label="Balance", data="balance"),
     Button(label="Videos", data="videos")),))


class Notices:
    """The handlers' rendering: `menu` → the notice with the main menu; `video` → a text that
    writes no menu, then the menu; `say` → a plain text."""

    async def notification(self, user_id: int, kind: str,
                           payload: dict[str, Any]) -> list[Outbound]:
        if kind == "menu":
            return [NOTICE]
        if kind == "video":
            return [Text(text="Your video"), NOTICE]
        return [Text(text=payload["text"])]

    async def job_status(self, job_id: int) -> tuple[str, Text] | None:
        return None

    async def remember_status(self, job_id: int, *, channel: str, address: str,
                              message_id: str) -> None:
        raise AssertionError("nothing is tracked here")


class Gated:
    """The conversations, stopped in the middle of an answer until `gate` is set."""

    def __init__(self) -> None:
        self.inside, self.gate = asyncio.Event(), asyncio.Event()

    async def handle(self, inbound: Inbound) -> list[Outbound]:
        self.inside.set()
        await self.gate.wait()
        return [ANSWER]

    async def remember_status(self, job_id: int, *, channel: str, address: str,
                              message_id: str) -> None:
        raise AssertionError("nothing is tracked here")


class Watched(Turns):
    """Turns that note every `attempt` the dispatcher makes."""

    def __init__(self, engine: AsyncEngine | None, **kw: Any) -> None:
        super().__init__(engine, **kw)
        self.asked: list[tuple[str, str]] = []

    def attempt(self, channel: str, address: str) -> Any:
        self.asked.append((channel, address))
        return super().attempt(channel, address)


def dispatcher(engine: AsyncEngine, channel: Recorder, clock: FakeClock,
               turns: Turns | None) -> Dispatcher:
    return Dispatcher(engine=engine, handlers=Notices(), channels={channel.name: channel},
                      clock=clock, policy=DispatchPolicy(), rng=random.Random(5), turns=turns)


async def chat_user(wallet: Wallet, engine: AsyncEngine, clock: FakeClock, channel: str,
                    address: str) -> int:
    user = await wallet.open_account(channel, address)
    assert await state.create(engine, user, clock())  # the chat row that keeps the menu
    return user


async def menu_of(engine: AsyncEngine, user: int) -> list[str] | None:
    async with read(engine) as conn:
        menu = (await conn.execute(select(chats.c.menu).where(
            chats.c.user_id == user))).scalar_one()
    return menu if menu is None else list(menu)


async def outbox_rows(engine: AsyncEngine, user: int) -> list[Any]:
    async with read(engine) as conn:
        return list((await conn.execute(select(outbox).where(
            outbox.c.user_id == user).order_by(outbox.c.id))).all())


def data(message: Text) -> list[str]:
    return [b.data for row in message.buttons for b in row]


def numbered(message: Text) -> str:
    return "\n".join([message.text, *(f"{n}. {label}" for n, label in enumerate(
        (b.label for row in message.buttons for b in row), 1))])


@pytest.fixture
async def replica(database: TestDatabase) -> AsyncIterator[AsyncEngine]:
    """A second engine on the same database: another instance of the service."""
    other = database.engine()
    yield other
    await other.dispose()


@pytest.mark.parametrize("where", ["this process", "another replica", "the console"])
async def test_a_notice_waits_for_the_answer_being_made_and_its_menu_is_kept_last(
        where: str, engine: AsyncEngine, replica: AsyncEngine, wallet: Wallet,
        clock: FakeClock) -> None:
    """The defect: the notice went out (and wrote its menu) while the answer was being made;
    the answer then wrote its own, so "2" picked from the answer's menu although the user saw
    the notice's last."""
    name, address = ("console", "console") if where == "the console" else ("wechat", "oAnn")
    user = await chat_user(wallet, engine, clock, name, address)
    channel = Recorder(name)
    if where == "this process":  # one Turns for both, as `App.turns`
        answer_turns = dispatch_turns = Turns(engine, max_wait=60)
    elif where == "another replica":  # the lease row is all they share
        answer_turns, dispatch_turns = Turns(replica, max_wait=60), Turns(engine, max_wait=60)
    else:  # `videofly chat`: one in-process Turns, no lease
        answer_turns = dispatch_turns = Turns(None, lease=False)
    handlers = Gated()
    answers = Answerer(engine=replica if where == "another replica" else engine,
                       handlers=handlers, channel=channel, default_language="en",
                       turns=answer_turns)
    d = dispatcher(engine, channel, clock, dispatch_turns)
    await queue(engine, clock, user, "menu")

    async with asyncio.timeout(BOUND):
        answering = asyncio.create_task(
            answers.answer(Inbound(channel=name, address=address, text="/balance")))
        await handlers.inside.wait()  # the answer holds the user's turn now
        assert await d.run_once() == 0  # not sent, and no pass waits for the answer
        assert channel.log == []
        [row] = await outbox_rows(engine, user)
        assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 0, clock())
        handlers.gate.set()
        await answering
        assert await menu_of(engine, user) == data(ANSWER)
        assert await d.run_once() == 1  # the turn is free: the notice goes now

    assert channel.log == [(address, numbered(ANSWER)), (address, numbered(NOTICE))]
    assert await menu_of(engine, user) == data(NOTICE)  # the menu the user saw last
    assert [r.state for r in await outbox_rows(engine, user)] == ["sent"]


async def test_a_turn_a_wechat_claim_took_holds_the_notice_until_the_settle(
        engine: AsyncEngine, wallet: Wallet, clock: FakeClock) -> None:
    """WeChat's inbox takes the lease with the message's claim, before its answer takes the
    in-process lock of the same `Turns`, and gives it back with the menu when it settles. The
    dispatcher, sharing that `Turns`, never makes the answer wait on that lock."""
    user = await chat_user(wallet, engine, clock, "wechat", "oAnn")
    channel = Recorder("wechat")
    turns = Turns(engine, max_wait=60)
    d = dispatcher(engine, channel, clock, turns)
    await queue(engine, clock, user, "menu")
    holder = "claim-of-msg-1"
    assert await write(engine, lambda conn: turns.take(conn, "wechat", "oAnn", holder))
    handlers = Gated()
    answers = Answerer(engine=engine, handlers=handlers, channel=channel,
                       default_language="en", turns=turns, keep_menus=True)

    async with asyncio.timeout(BOUND):
        # The dispatcher comes between the claim and the answer, then the answer runs.
        assert await d.run_once() == 0
        answering = asyncio.create_task(
            answers.answer(Inbound(channel="wechat", address="oAnn", text="hi"), held=holder))
        await handlers.inside.wait()
        assert await d.run_once() == 0  # the in-process lock is the answer's
        handlers.gate.set()
        await answering
        assert await d.run_once() == 0  # answered, but the turn is the claim's till it settles
        assert channel.log == [("oAnn", numbered(ANSWER))]
        kept = answers.sender.menu
        assert kept == data(ANSWER)

        def settle(conn: Connection) -> None:  # as the inbox does: the menu, the turn back
            remember_in(conn, "wechat", "oAnn", kept)
            turns.give(conn, "wechat", "oAnn", holder)

        await write(engine, settle)
        assert await d.run_once() == 1

    assert channel.log[-1] == ("oAnn", numbered(NOTICE))
    assert await menu_of(engine, user) == data(NOTICE)
    assert len(turns.local) == 0


async def test_a_buttons_channel_and_a_part_without_a_menu_take_no_turn(
        engine: AsyncEngine, replica: AsyncEngine, wallet: Wallet, clock: FakeClock) -> None:
    ann = await chat_user(wallet, engine, clock, "telegram", "100")
    bob = await chat_user(wallet, engine, clock, "wechat", "oBob")
    telegram, wechat = Recorder("telegram"), Recorder("wechat")
    turns = Watched(engine, max_wait=60)
    d = Dispatcher(engine=engine, handlers=Notices(),
                   channels={"telegram": telegram, "wechat": wechat}, clock=clock,
                   rng=random.Random(5), turns=turns)
    await queue(engine, clock, ann, "menu")
    await queue(engine, clock, bob, text="credited: 100")
    elsewhere = Turns(replica, max_wait=60)  # both users' answers in progress on a replica
    async with asyncio.timeout(BOUND), elsewhere.hold("telegram", "100"), \
            elsewhere.hold("wechat", "oBob"):
        assert await d.run_once() == 2
    assert turns.asked == []  # no try, no lease written: nothing but the sends
    assert telegram.log == [("100", NOTICE.text)]  # buttons stay buttons
    assert wechat.log == [("oBob", "credited: 100")]
    assert await menu_of(engine, ann) is None  # a channel with buttons keeps no menu
    async with read(engine) as conn:
        holders = (await conn.execute(select(chat_turns.c.holder))).scalars().all()
    assert holders == [None, None]  # only the replica's turns, given back


async def test_a_user_whose_turn_stays_taken_holds_up_no_one_else(
        engine: AsyncEngine, replica: AsyncEngine, wallet: Wallet, clock: FakeClock) -> None:
    """Ann's turn stays taken (an instance died mid-answer, or a long answer): her notice's
    part without a menu goes, the part with the menu waits, recorded as the retry point, and
    her later row waits behind it; Bob's notice goes in the same pass. No attempt is counted,
    and once her turn is free the rest goes, nothing twice."""
    ann = await chat_user(wallet, engine, clock, "wechat", "oAnn")
    bob = await chat_user(wallet, engine, clock, "wechat", "oBob")
    channel = Recorder("wechat")
    d = dispatcher(engine, channel, clock, Turns(engine, max_wait=60))
    await queue(engine, clock, ann, "video")
    await queue(engine, clock, ann, text="credited: 100")
    await queue(engine, clock, bob, "menu")
    elsewhere = Turns(replica, max_wait=60)
    async with asyncio.timeout(BOUND), elsewhere.hold("wechat", "oAnn"):
        for _ in range(3):  # pass after pass: Bob's goes at once, Ann's waits every time
            await d.run_once()
            assert [t for a, t in channel.log if a == "oBob"] == [numbered(NOTICE)]
            assert [t for a, t in channel.log if a == "oAnn"] == ["Your video"]
            first, later = await outbox_rows(engine, ann)
            assert (first.state, first.attempts, first.payload.get("_sent_parts")) == (
                "pending", 0, 1)
            assert (later.state, later.attempts) == ("pending", 0)
        assert await menu_of(engine, bob) == data(NOTICE)
        assert await menu_of(engine, ann) is None

    async with asyncio.timeout(BOUND):
        assert await d.run_once() == 2
    assert [t for a, t in channel.log if a == "oAnn"] == [
        "Your video", numbered(NOTICE), "credited: 100"]
    assert await menu_of(engine, ann) == data(NOTICE)
    assert [(r.state, r.attempts) for r in await outbox_rows(engine, ann)] == [
        ("sent", 0), ("sent", 0)]
