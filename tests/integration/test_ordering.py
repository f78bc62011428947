"""Per-user ordering across instances (`bot.ordering`): two engines on one database stand for two
replicas. One user's turns never overlap, whichever replica takes them; different users' do run
at the same time; a crashed holder's lease runs out. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.ordering import KeyedLock, Turns
from core.db import read, write
from handlers.tables import chat_turns
from tests.factories import FakeClock, TestDatabase

BOUND = 30.0  # seconds any test here may take at most


@pytest.fixture
async def replicas(database: TestDatabase) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    first, second = database.engine(), database.engine()
    yield first, second
    await first.dispose()
    await second.dispose()


async def test_one_users_turns_never_overlap_across_replicas(
        replicas: tuple[AsyncEngine, AsyncEngine]) -> None:
    a, b = (Turns(e, max_wait=BOUND) for e in replicas)
    inside, most, done = 0, 0, []

    async def turn(turns: Turns, n: int) -> None:
        nonlocal inside, most
        async with turns.hold("wechat", "openid-1"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.005)  # a turn that yields to the loop: others could run
            done.append(n)
            inside -= 1

    async with asyncio.timeout(BOUND):
        await asyncio.gather(*(turn(a if n % 2 else b, n) for n in range(16)))
    assert most == 1
    assert sorted(done) == list(range(16))
    async with read(replicas[0]) as conn:
        row = (await conn.execute(select(chat_turns))).one()
    assert row.holder is None
    assert row.until is None


async def test_different_users_run_at_the_same_time(
        replicas: tuple[AsyncEngine, AsyncEngine]) -> None:
    a, b = (Turns(e) for e in replicas)
    first_in, second_in = asyncio.Event(), asyncio.Event()

    async def one() -> None:
        async with a.hold("wechat", "alice"):
            first_in.set()
            await second_in.wait()  # only ends if bob's turn runs while alice's is held

    async def two() -> None:
        async with b.hold("wechat", "bob"):
            await first_in.wait()
            second_in.set()

    async with asyncio.timeout(BOUND):
        await asyncio.gather(one(), two())


async def test_a_crashed_holders_lease_runs_out(
        replicas: tuple[AsyncEngine, AsyncEngine]) -> None:
    clock = FakeClock()
    crashed = Turns(replicas[0], lease_seconds=60, clock=clock)
    assert await crashed._try("wechat", "openid-2", "crashed-holder")  # never released
    later = Turns(replicas[1], lease_seconds=60, max_wait=BOUND, clock=clock)
    assert not await later._try("wechat", "openid-2", "other")  # still held
    clock.advance(seconds=61)
    async with asyncio.timeout(BOUND), later.hold("wechat", "openid-2"):
        async with read(replicas[1]) as conn:
            holder = (await conn.execute(select(chat_turns.c.holder))).scalar_one()
        assert holder != "crashed-holder"


async def test_in_process_turns_are_first_come_first_served() -> None:
    lock, order = KeyedLock(), []
    gate = asyncio.Event()

    async def first() -> None:
        async with lock.hold("u"):
            await gate.wait()
            order.append(0)

    async def later(n: int) -> None:
        async with lock.hold("u"):
            order.append(n)

    async with asyncio.timeout(BOUND):
        holder = asyncio.create_task(first())
        await asyncio.sleep(0)  # the first task takes the lock
        waiters = [asyncio.create_task(later(n)) for n in range(1, 6)]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(holder, *waiters)
    assert order == [0, 1, 2, 3, 4, 5]
    assert len(lock) == 0  # forgotten once nobody holds or waits


async def test_attempt_takes_a_free_turn_and_never_waits_for_a_taken_one(
        replicas: tuple[AsyncEngine, AsyncEngine]) -> None:
    """`Turns.attempt` (the outbox dispatcher's): True holding the turn when it is free; else
    False at once, holding nothing, whether the turn is held in this process (or waited for:
    it never jumps the queue) or on another replica."""
    here, there = Turns(replicas[0], max_wait=BOUND * 2), Turns(replicas[1])

    async def holder() -> str | None:
        async with read(replicas[0]) as conn:
            return (await conn.execute(select(chat_turns.c.holder))).scalar_one_or_none()

    async with asyncio.timeout(BOUND):
        async with here.attempt("wechat", "u") as ours:
            assert ours
            assert await holder() is not None  # the lease, for the other replicas
            assert len(here.local) == 1
        assert await holder() is None
        assert len(here.local) == 0

        async with there.hold("wechat", "u"), here.attempt("wechat", "u") as ours:
            assert not ours
            assert len(here.local) == 0  # the in-process lock is not kept while it says so

        inside, gate = asyncio.Event(), asyncio.Event()

        async def answer() -> None:
            async with here.hold("wechat", "u"):
                inside.set()
                await gate.wait()

        task = asyncio.create_task(answer())
        await inside.wait()
        async with here.attempt("wechat", "u") as ours:
            assert not ours
        gate.set()
        await task

        local = Turns(None, lease=False)
        async with contextlib.AsyncExitStack() as held:
            await held.enter_async_context(local.local.hold(("console", "console")))
            waiting = asyncio.create_task(_hold(local))
            await asyncio.sleep(0)  # it queues behind the holder
        # Given back, and the one waiting is next: no attempt goes before it.
        async with local.attempt("console", "console") as ours:
            assert not ours
        await waiting
        async with local.attempt("console", "console") as ours:
            assert ours
        assert len(local.local) == 0


async def _hold(turns: Turns) -> None:
    async with turns.hold("console", "console"):
        pass


async def test_a_holder_of_the_lease_never_queues_behind_a_message_waiting_for_it(
        database: TestDatabase) -> None:
    """WeChat: message 1's claim took the lease (`take`, in its own transaction); message 2,
    whose claim could not, got into the in-process lock first and polls the lease there.
    Message 1's answer (`held=`) must go ahead at once, not wait behind message 2 until that
    one gives up (`max_wait`); then message 2 has the turn."""
    engine = database.engine()
    turns = Turns(engine, max_wait=BOUND)
    try:
        assert await write(engine, lambda c: turns.take(c, "wechat", "oTwo", "message-1"))
        second_in, order = asyncio.Event(), []

        async def second() -> None:
            async with turns.hold("wechat", "oTwo"):  # waits for message 1's lease
                second_in.set()
                order.append(2)

        waiting = asyncio.create_task(second())
        async with asyncio.timeout(5):
            while not turns.local:  # noqa: ASYNC110 (bounded): message 2 holds the lock
                await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(BOUND), turns.hold("wechat", "oTwo", held="message-1"):
            assert loop.time() - started < 1.0  # not behind message 2
            assert not second_in.is_set()
            order.append(1)
        await write(engine, lambda c: turns.give(c, "wechat", "oTwo", "message-1"))
        async with asyncio.timeout(BOUND):
            await waiting
        assert order == [1, 2]
    finally:
        await engine.dispose()
