"""First tries are admitted a few at a time, in arrival order (`bot.wechat._admit`): with one
slot, messages are answered one after the other in the order they came, and a slow answer
gives its slot up so the next user is still answered within the window. A retry takes over a
message whose first try's instance died (`_dedup.take_over`), and only such a one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.ordering import Turns
from bot.wechat import _dedup, _serve
from bot.wechat._admit import FAST_SECONDS, Admission
from bot.wechat._serve import Answered
from handlers.types import Inbound, Outbound, Text
from storage import LocalStorage
from tests.factories import FakeClock

from ._wechat import WORDS, Answers, text_xml
from .test_wechat_window import WINDOW, instance


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media", public_base="http://127.0.0.1:9",
                        link_secret="s" * 32)


async def test_admission_is_first_come_first_served() -> None:
    admission, order = Admission(1), []

    async def one(name: str) -> None:
        async with admission.slot():
            order.append(name)
            await asyncio.sleep(0.01)

    first = asyncio.create_task(one("a"))
    await asyncio.sleep(0)  # "a" holds the slot
    rest = [asyncio.create_task(one(n)) for n in "bcd"]
    await asyncio.wait_for(asyncio.gather(first, *rest), 5)
    assert order == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="at least one"):
        Admission(0)


async def test_one_slot_answers_in_arrival_order(
        engine: AsyncEngine, storage: LocalStorage, http: httpx.AsyncClient) -> None:
    started: list[str] = []

    def reply(inbound: Inbound) -> list[Outbound]:
        started.append(inbound.address)
        return [Text(text=f"hi {inbound.address}")]

    answers = Answers(reply=reply)
    async with instance(engine, storage, http, answers, admit=1) as one:
        users = [f"oQ{n}" for n in range(5)]
        replies = await asyncio.gather(*(one.sim.send(text_xml(u, "hello")) for u in users))
    assert list(replies) == [f"hi {u}" for u in users]
    assert sorted(started) == users


async def test_a_slow_answer_gives_its_slot_to_the_next_user(
        engine: AsyncEngine, storage: LocalStorage, http: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert FAST_SECONDS < 4.0 / 4  # production: a fifth of the 4-second window at most
    monkeypatch.setattr(_serve, "FAST_SECONDS", WINDOW / 10)
    release = asyncio.Event()

    async def gate() -> None:
        if len(answers.inbounds) == 1:  # the first user's answer is slow
            await release.wait()

    answers = Answers(gate=gate)
    async with instance(engine, storage, http, answers, admit=1) as one:
        slow = asyncio.create_task(one.sim.send(text_xml("oSlow", "make a video")))
        try:
            async with asyncio.timeout(5):
                while not answers.inbounds:  # noqa: ASYNC110 (bounded)
                    await asyncio.sleep(0.01)
            quick = await one.sim.send(text_xml("oQuick", "/balance"))
            # Answered in its own window while the slow one still holds its request open: the
            # one slot was given up, not kept until the slow one's window ended.
            assert quick == "echo /balance"
            assert not slow.done()
            assert await asyncio.wait_for(slow, 5) is None  # active mode, late: "success"
        finally:
            release.set()
        await one.inbox.wait_idle(5)
    assert [m for _, m in one.sent] == [Text(text="echo make a video")]


# --- a first try whose instance died ----------------------------------------------------------


async def test_a_retry_takes_over_a_message_whose_instance_died(
        engine: AsyncEngine, storage: LocalStorage, http: httpx.AsyncClient) -> None:
    answers = Answers()
    async with instance(engine, storage, http, answers) as one:
        # Another instance claimed it ten seconds ago and died before settling.
        long_ago = FakeClock().advance(seconds=-10)
        assert await _dedup.claim(engine, "m:9001", "oDead", now=long_ago) == (None, False)
        xml = text_xml("oDead", "/balance", MsgId=9001)
        assert await one.sim.send(xml) == "echo /balance"  # handled again, in time
        assert await one.sim.send(xml) == "echo /balance"  # later tries: the stored answer
    assert [i.text for i in answers.inbounds] == ["/balance"]


async def test_a_retry_does_not_take_over_a_live_first_try(
        engine: AsyncEngine, storage: LocalStorage, http: httpx.AsyncClient) -> None:
    answers = Answers()
    async with instance(engine, storage, http, answers) as one:
        # Claimed just now by another instance, still working on it: not taken over.
        assert await _dedup.claim(engine, "m:9002", "oLive", now=FakeClock()()) == \
            (None, False)
        assert await one.sim.send(text_xml("oLive", "/balance", MsgId=9002)) is None
    assert answers.inbounds == []


async def test_a_late_answer_is_kept_before_the_users_turn_is_given_back(
        engine: AsyncEngine, storage: LocalStorage, http: httpx.AsyncClient) -> None:
    """Passive: the user writes again while the first answer is still being made; the turn
    (the lease across replicas) is given back in the transaction that keeps the late answer,
    so the next reply carries it, first."""
    turns = Turns(engine)

    async def answer(inbound: Inbound, held: str | None = None) -> Answered:
        async with turns.hold("wechat", inbound.address, held=held):  # as the answer path
            if inbound.text == "make it":
                await asyncio.sleep(WINDOW * 1.5)  # past its window
            return Answered([Text(text=f"echo {inbound.text}")])

    async with instance(engine, storage, http, answer,  # type: ignore[arg-type]
                        mode="passive", turns=turns) as one:
        assert await one.sim.send(text_xml("oLate", "make it")) == WORDS["wx.pending"]
        assert await one.sim.send(text_xml("oLate", "hi")) == "echo make it\n\necho hi"
