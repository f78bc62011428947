"""WeChat's 5-second window and its retries: each message acted on once (also across two
instances on one database), the same answer for every try, late answers sent (active) or held
for the user's next message (passive). Windows are shortened (0.3 s) to keep tests fast."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.ordering import Turns
from bot.wechat import TextRenderer, WeChatInbox, WeChatPhoto, _dedup, _held
from bot.wechat._admit import ADMIT
from bot.wechat._inbox_tables import wechat_held, wechat_inbound
from handlers.tables import chat_turns
from handlers.types import Button, Media, Outbound, Text
from storage import LocalStorage
from tests.factories import FakeClock, TestDatabase
from webhooks.wechat import WeChatWebhook

from ._wechat import APP_ID, TOKEN, WORDS, Answers, WeChatSim, text_xml, wechat_server, words

WINDOW = 1.0  # room for a loaded CI machine: a quick answer's round trips fit in it
SLOW = 2.0  # well past the window


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media", public_base="http://127.0.0.1:9",
                        link_secret="s" * 32)


@dataclass
class Instance:
    sim: WeChatSim
    inbox: WeChatInbox
    sent: list[tuple[str, Outbound]] = field(default_factory=list)


@asynccontextmanager
async def instance(engine: AsyncEngine, storage: LocalStorage, http: httpx.AsyncClient,
                   answers: Answers, *, mode: Literal["active", "passive"] = "active",
                   reply_bytes: int = _held.REPLY_BYTES,
                   refuse: Callable[[Outbound], bool] = lambda m: False,
                   admit: int = ADMIT, turns: Turns | None = None,
                   observe: Callable[[str, Outbound], Awaitable[object]] | None = None,
                   ) -> AsyncIterator[Instance]:
    """One app instance: the web server with the WeChat route and its inbox. `refuse` makes
    the channel's send fail for some messages (45015)."""
    sent: list[tuple[str, Outbound]] = []

    async def send(openid: str, message: Outbound) -> None:
        if observe is not None:
            await observe(openid, message)
        if refuse(message):
            raise RuntimeError("45015 out of the 48-hour window")
        sent.append((openid, message))

    hook = WeChatWebhook(token=TOKEN, app_id=APP_ID)
    inbox = WeChatInbox(engine=engine, answer=answers, send=send,
                        render=TextRenderer(storage, link_ttl=60), words=words,
                        photo=lambda m, u: WeChatPhoto(m, u, None, http), clock=FakeClock(),
                        mode=mode, window=WINDOW, reply_bytes=reply_bytes, admit=admit,
                        turns=turns)
    hook.attach(inbox)
    async with wechat_server(engine, storage, hook) as url:
        sim = WeChatSim(url)
        try:
            yield Instance(sim, inbox, sent)
        finally:
            await inbox.wait_idle(5)
            await sim.aclose()


async def count(engine: AsyncEngine, table: object) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table)))  # type: ignore[arg-type]
                   .scalar_one())


# --- active mode --------------------------------------------------------------------------


async def test_a_retry_gets_the_same_reply_and_is_acted_on_once(
        engine: AsyncEngine, storage: LocalStorage, http: httpx.AsyncClient) -> None:
    answers = Answers()
    async with instance(engine, storage, http, answers) as one:
        xml = text_xml("oR", "/balance")
        first = await one.sim.send(xml)
        again = [await one.sim.send(xml) for _ in range(2)]  # WeChat's two retries
    assert first == "echo /balance"
    assert again == [first, first]
    assert len(answers.inbounds) == 1
    assert one.sent == []


async def test_active_late_answer_is_success_then_a_customer_service_message(
        engine: AsyncEngine, storage: LocalStorage, http: httpx.AsyncClient) -> None:
    answers = Answers(delay=SLOW)
    async with instance(engine, storage, http, answers) as one:
        xml = text_xml("oSlow", "make it")
        assert await one.sim.send(xml) is None  # "success" within the window
        assert await one.sim.send(xml) is None  # a retry: still "success", not acted again
        await one.inbox.wait_idle(5)
        assert one.sent == [("oSlow", Text(text="echo make it"))]
    assert len(answers.inbounds) == 1


async def test_active_media_and_long_answers_go_as_customer_service_messages(
        engine: AsyncEngine, storage: LocalStorage, http: httpx.AsyncClient) -> None:
    video = Media(kind="video", key="videos/a.mp4", caption="done")
    long = Text(text="字" * 1000)  # 3000 bytes: over one passive reply
    replies: Iterator[list[Outbound]] = iter([[Text(text="here"), video], [long]])
    answers = Answers(reply=lambda i: next(replies))
    async with instance(engine, storage, http, answers) as one:
        assert await one.sim.send(text_xml("oM", "1")) is None
        assert await one.sim.send(text_xml("oM", "2")) is None
        await one.inbox.wait_idle(5)
    assert one.sent == [("oM", Text(text="here")), ("oM", video), ("oM", long)]


@pytest.mark.parametrize("late", [True, False], ids=["late", "media"])
async def test_active_customer_service_answers_go_out_in_the_users_turn(
        engine: AsyncEngine, storage: LocalStorage, http: httpx.AsyncClient,
        late: bool) -> None:
    """The answer's messages are sent before its menu is written and the turn given back:
    the user's next message waits for them, and no notice comes between."""
    turns = Turns(engine)
    holders: list[str | None] = []

    async def holder(openid: str) -> str | None:
        async with engine.connect() as conn:
            return (await conn.execute(select(chat_turns.c.holder).where(
                chat_turns.c.address == openid))).scalar_one_or_none()

    async def observe(openid: str, message: Outbound) -> None:
        holders.append(await holder(openid))

    video = Media(kind="video", key="videos/a.mp4", caption="done")
    answers = Answers(delay=SLOW) if late else Answers(reply=lambda i: [video])
    async with instance(engine, storage, http, answers, turns=turns, observe=observe) as one:
        assert await one.sim.send(text_xml("oTurn", "make it")) is None
        await one.inbox.wait_idle(5)
        assert len(one.sent) == 1
        assert holders[0] is not None  # sent while the turn was still the message's
        assert await holder("oTurn") is None  # given back after


async def test_active_refused_messages_are_held_and_sent_when_the_user_writes(
        engine: AsyncEngine, storage: LocalStorage, http: httpx.AsyncClient) -> None:
    refusing = True
    answers = Answers(delay=SLOW)
    async with instance(engine, storage, http, answers,
                        refuse=lambda m: refusing) as one:
        assert await one.sim.send(text_xml("oW", "first")) is None
        await one.inbox.wait_idle(5)
        assert one.sent == []
        assert await count(engine, wechat_held) == 1
        refusing = False
        answers.delay = 0
        assert await one.sim.send(text_xml("oW", "second")) == "echo second"
        await one.inbox.wait_idle(5)
    assert one.sent == [("oW", Text(text="echo first"))]
    assert await count(engine, wechat_held) == 0


# --- passive mode -------------------------------------------------------------------------


async def test_passive_late_answer_rides_on_the_next_message(
        engine: AsyncEngine, storage: LocalStorage, http: httpx.AsyncClient) -> None:
    answers = Answers(delay=SLOW)
    async with instance(engine, storage, http, answers, mode="passive") as one:
        xml = text_xml("oP", "make it")
        assert await one.sim.send(xml) == WORDS["wx.pending"]
        assert await one.sim.send(xml) == WORDS["wx.pending"]  # the retry: the same
        await one.inbox.wait_idle(5)
        answers.delay = 0
        assert await one.sim.send(text_xml("oP", "hi")) == "echo make it\n\necho hi"
        assert await count(engine, wechat_held) == 0
        assert await one.sim.send(text_xml("oP", "again")) == "echo again"
    assert one.sent == []  # passive: nothing is ever sent outside a reply
    assert [i.text for i in answers.inbounds] == ["make it", "hi", "again"]


async def test_a_late_answers_menu_is_written_once_it_is_on_screen(
        engine: AsyncEngine, storage: LocalStorage, http: httpx.AsyncClient) -> None:
    """Active: the late answer goes out, then its menu is written. Passive: it is kept for
    the next reply, not on screen yet, so its menu is not written with it (the reply that
    carries it writes it: `_held.reply_with_held`)."""
    written: list[str] = []
    answers = Answers(delay=SLOW, finish=lambda conn: written.append("menu"))
    async with instance(engine, storage, http, answers, mode="active") as one:
        assert await one.sim.send(text_xml("oA", "make it")) is None  # "success"
        await one.inbox.wait_idle(5)
        assert [m for _, m in one.sent] == [Text(text="echo make it")]
    assert written == ["menu"]
    async with instance(engine, storage, http, answers, mode="passive") as two:
        assert await two.sim.send(text_xml("oP", "make it")) == WORDS["wx.pending"]
        await two.inbox.wait_idle(5)
        assert await count(engine, wechat_held) == 1
    assert written == ["menu"]  # nothing more


async def test_passive_reply_holds_as_much_as_fits_and_says_how_many_are_left(
        engine: AsyncEngine, storage: LocalStorage, http: httpx.AsyncClient) -> None:
    answers = Answers(reply=lambda i: [Text(text=f"{i.text}-{n}" + "." * 60)
                                       for n in range(6)])  # four fit in 430 bytes
    async with instance(engine, storage, http, answers, mode="passive",
                        reply_bytes=430) as one:
        first = await one.sim.send(text_xml("oF", "a"))
        assert first is not None
        assert first.startswith("a-0")
        assert first.endswith(WORDS["wx.more"].format(count=2))
        assert len(first.encode()) <= 430
        assert await count(engine, wechat_held) == 2
        second = await one.sim.send(text_xml("oF", "b"))
        assert second is not None
        assert second.startswith("a-4")  # the oldest first
        assert "b-0" in second
    assert [i.text for i in answers.inbounds] == ["a", "b"]


async def test_passive_menu_buttons_become_numbered_lines(
        engine: AsyncEngine, storage: LocalStorage, http: httpx.AsyncClient) -> None:
    menu = Text(text="Choose:", buttons=((Button(label="Make", data="g"),),
                                         (Button(label="Pay", url="https://pay.example/x"),
                                          Button(label="Balance", data="c:balance"))))
    answers = Answers(reply=lambda i: [menu])
    async with instance(engine, storage, http, answers, mode="passive") as one:
        assert await one.sim.send(text_xml("oN", "/start")) == \
            "Choose:\n1. Make\nPay: https://pay.example/x\n2. Balance"


def test_split_text_cuts_at_line_ends_within_the_byte_limit() -> None:
    text = "line one\n" + "二" * 50 + "\nthree"
    pieces = _held.split_text(text, 60)
    assert all(len(p.encode()) <= 60 for p in pieces)
    assert "".join(pieces).replace("\n", "") == text.replace("\n", "")
    assert _held.split_text("", 10) == [""]


# --- across instances ---------------------------------------------------------------------


async def test_one_message_delivered_to_two_instances_at_once_is_acted_on_once(
        database: TestDatabase, storage: LocalStorage, http: httpx.AsyncClient) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def gate() -> None:
        started.set()
        await release.wait()

    answers = Answers(gate=gate)
    async with AsyncExitStack() as stack:
        engines = [database.engine(), database.engine()]  # two replicas' own pools
        for engine in engines:
            stack.push_async_callback(engine.dispose)
        one, two = [await stack.enter_async_context(instance(e, storage, http, answers))
                    for e in engines]
        xml = text_xml("oTwo", "/balance")
        first = asyncio.create_task(one.sim.send(xml))
        await asyncio.wait_for(started.wait(), 5)
        second = asyncio.create_task(two.sim.send(xml))
        await asyncio.sleep(0.05)  # the second try is waiting on the first one's answer
        release.set()
        replies = await asyncio.gather(first, second)
    assert list(replies) == ["echo /balance", "echo /balance"]
    assert len(answers.inbounds) == 1


async def test_the_dedup_rows_expire(engine: AsyncEngine) -> None:
    clock = FakeClock()
    assert await _dedup.claim(engine, "m:1", "o1", now=clock()) == (None, False)
    seen = await _dedup.claim(engine, "m:1", "o1", now=clock())
    assert seen == (_dedup.Seen(_dedup.WORKING, None), False)
    await _dedup.settle(engine, "m:1", _dedup.REPLIED, "hi")
    assert await _dedup.peek(engine, "m:1") == _dedup.Seen(_dedup.REPLIED, "hi")
    assert await _dedup.purge(engine, clock()) == 0
    assert await _dedup.purge(engine, clock.advance(hours=2)) == 1
    assert await count(engine, wechat_inbound) == 0


async def test_held_messages_survive_as_they_were(engine: AsyncEngine) -> None:
    messages: list[Outbound] = [
        Text(text="t", buttons=((Button(label="a", data="x"),),)),
        Media(kind="video", key="videos/v.mp4", caption="c", thumbnail_key="t/t.jpg",
              link_text="too big"),
        # Numbered already (its menu in `choices`), and a question answered by typing.
        Text(text="t\n1. a", choices=("x",)),
        Text(text="your prompt?", free_text=True),
    ]
    assert [_held.load(_held.dump(m)) for m in messages] == messages
    await _held.hold(engine, "oH", messages, FakeClock()())
    got: list[Outbound] = []

    async def send(message: Outbound) -> None:
        got.append(message)

    assert await _held.deliver_held(engine, "oH", send) == len(messages)
    assert got == messages
    assert await _held.pending(engine, "oH") == 0



async def test_the_claim_takes_the_users_turn_and_the_settle_gives_it_back(
        engine: AsyncEngine) -> None:
    turns, now = Turns(engine), FakeClock()()

    def take(holder: str) -> Callable[[Connection], bool]:
        return lambda conn: turns.take(conn, "wechat", "oT", holder)

    assert await _dedup.claim(engine, "m:10", "oT", now=now, also=take("first")) == \
        (None, True)
    # The user's next message, meanwhile: claimed, but the turn is still the first one's.
    assert await _dedup.claim(engine, "m:11", "oT", now=now, also=take("second")) == \
        (None, False)
    await _dedup.settle(engine, "m:10", _dedup.REPLIED, "a",
                        also=lambda conn: turns.give(conn, "wechat", "oT", "first"))
    assert await _dedup.claim(engine, "m:12", "oT", now=now, also=take("third")) == \
        (None, True)
