"""The customer-service budget per openid, on SQLite and PostgreSQL, with racing replicas."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.wechat._peers import give_back, hold, peer, take_slot, user_wrote
from tests.factories import FakeClock, TestDatabase


async def test_progress_leaves_the_last_slots_to_results_and_money(engine: AsyncEngine,
                                                                   clock: FakeClock) -> None:
    await user_wrote(engine, "oA", now=clock())
    progress = [await take_slot(engine, "oA", essential=False, quota=5, now=clock())
                for _ in range(4)]
    assert progress == [None, None, None, "budget"]  # 5 - 2 reserved
    essential = [await take_slot(engine, "oA", essential=True, quota=5, now=clock())
                 for _ in range(3)]
    assert essential == [None, None, "quota"]
    await user_wrote(engine, "oA", now=clock())
    assert await take_slot(engine, "oA", essential=False, quota=5, now=clock()) is None


async def test_the_window_closes_48_hours_after_the_last_message(engine: AsyncEngine,
                                                                 clock: FakeClock) -> None:
    await user_wrote(engine, "oB", now=clock())
    clock.advance(hours=47, minutes=59)
    assert await take_slot(engine, "oB", essential=True, quota=5, now=clock()) is None
    clock.advance(minutes=2)
    assert await take_slot(engine, "oB", essential=True, quota=5, now=clock()) == "window"
    await user_wrote(engine, "oB", now=clock())
    assert await take_slot(engine, "oB", essential=True, quota=5, now=clock()) is None


async def test_a_hold_lasts_until_the_user_writes(engine: AsyncEngine, clock: FakeClock) -> None:
    assert await take_slot(engine, "oC", essential=True, quota=5, now=clock()) is None
    await hold(engine, "oC", "window", now=clock())
    assert await take_slot(engine, "oC", essential=True, quota=5, now=clock()) == "window"
    await hold(engine, "oC", "passive", now=clock())
    assert await take_slot(engine, "oC", essential=True, quota=5, now=clock()) == "passive"
    await user_wrote(engine, "oC", now=clock())
    state = await peer(engine, "oC")
    assert state is not None
    assert (state.held, state.cs_sent, state.last_inbound_at) == (None, 0, clock())


async def test_a_slot_given_back_can_be_taken_again(engine: AsyncEngine,
                                                    clock: FakeClock) -> None:
    await user_wrote(engine, "oD", now=clock())
    for _ in range(5):
        assert await take_slot(engine, "oD", essential=True, quota=5, now=clock()) is None
    await give_back(engine, "oD", now=clock())
    assert await take_slot(engine, "oD", essential=True, quota=5, now=clock()) is None
    assert await take_slot(engine, "oD", essential=True, quota=5, now=clock()) == "quota"


async def test_racing_replicas_never_take_more_than_the_quota(database: TestDatabase,
                                                              clock: FakeClock) -> None:
    engines = [database.engine(pool_size=5, max_overflow=5) for _ in range(2)]
    try:
        results = await asyncio.gather(*[
            take_slot(engines[i % 2], "oE", essential=True, quota=5, now=clock())
            for i in range(12)])
        assert results.count(None) == 5
        assert set(results) == {None, "quota"}
        await asyncio.gather(*[user_wrote(e, "oF", now=clock()) for e in engines * 3])
        state = await peer(engines[0], "oF")
        assert state is not None
        assert state.cs_sent == 0
    finally:
        for e in engines:
            await e.dispose()
