"""One access token for every replica: replicas are `TokenStore`s with their own engines on one
database (SQLite file or PostgreSQL), fetching from the fake WeChat server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.channel import RetryLater
from bot.wechat._tables import wechat_tokens
from bot.wechat._token import TokenStore
from core.db import read, write
from tests.factories import FakeClock, TestDatabase
from tests.fakes import Reply
from tests.fakes.wechat import WeChatFake


@pytest.fixture
async def wx() -> AsyncIterator[WeChatFake]:
    async with WeChatFake(app_id="wx-app", secret="s") as fake:
        yield fake


@pytest.fixture
async def engines(database: TestDatabase) -> AsyncIterator[list[AsyncEngine]]:
    """Two replicas' engines on the one test database."""
    made = [database.engine(pool_size=5, max_overflow=5) for _ in range(2)]
    yield made
    for eng in made:
        await eng.dispose()


def replica(engine: AsyncEngine, http: httpx.AsyncClient, wx: WeChatFake,
            clock: FakeClock, **options: float) -> TokenStore:
    return TokenStore.stable(engine, http, base_url=wx.url, app_id="wx-app", secret="s",
                             clock=clock, **options)


async def stored(engine: AsyncEngine) -> tuple[str, str | None]:
    async with read(engine) as conn:
        row = (await conn.execute(select(wechat_tokens.c.access_token,
                                         wechat_tokens.c.lease_owner))).one()
    return row[0], row[1]


async def test_two_replicas_share_one_token_fetch(engines: list[AsyncEngine],
                                                  http: httpx.AsyncClient, wx: WeChatFake,
                                                  clock: FakeClock) -> None:
    a, b = (replica(e, http, wx, clock) for e in engines)
    wx.script_next("stable_token", Reply(json={"access_token": "SHARED", "expires_in": 7200},
                                         delay=0.3))  # slow, so both replicas are waiting
    tokens = await asyncio.gather(*[(a if i % 2 else b).get() for i in range(20)])
    assert set(tokens) == {"SHARED"}
    assert len(wx.of("stable_token")) == 1
    assert await stored(engines[0]) == ("SHARED", None)  # the lease is released
    assert await a.get() == await b.get() == "SHARED"
    assert len(wx.of("stable_token")) == 1


async def test_the_token_is_refreshed_ahead_of_expiry_once(engines: list[AsyncEngine],
                                                          http: httpx.AsyncClient,
                                                          wx: WeChatFake,
                                                          clock: FakeClock) -> None:
    a, b = (replica(e, http, wx, clock, ahead=300) for e in engines)
    first = await a.get()
    clock.advance(seconds=7200 - 299)  # within `ahead` of expiry: time to refresh
    wx.invalidate_token()  # WeChat hands out a new one now
    got = await asyncio.gather(a.get(), b.get())
    assert len(wx.of("stable_token")) == 2  # one refresh for both replicas
    # Whichever replica takes the lease refreshes; the other may use the old, still valid
    # token meanwhile (which one leads is up to the two engines' threads).
    refreshed = [token for token in got if token != first]
    assert refreshed
    assert await a.get() == await b.get() == refreshed[0]
    assert len(wx.of("stable_token")) == 2


async def test_near_expiry_the_same_token_is_not_asked_for_again_and_again(
        engines: list[AsyncEngine], http: httpx.AsyncClient, wx: WeChatFake,
        clock: FakeClock) -> None:
    a = replica(engines[0], http, wx, clock, ahead=300)
    await a.get()
    clock.advance(seconds=7200 - 200)
    await a.get()  # asks once: normal mode still answers with the same token
    for _ in range(5):
        await a.get()
    assert len(wx.of("stable_token")) == 2


async def test_after_40001_both_replicas_move_to_one_new_token(engines: list[AsyncEngine],
                                                              http: httpx.AsyncClient,
                                                              wx: WeChatFake,
                                                              clock: FakeClock) -> None:
    a, b = (replica(e, http, wx, clock) for e in engines)
    old = await a.get()
    assert await b.get() == old
    wx.invalidate_token()
    new = await asyncio.gather(a.refresh(old), b.refresh(old), a.refresh(old))
    assert len(set(new)) == 1
    assert new[0] != old
    assert new[0] == wx.token
    assert wx.token_fetches == [False, False]


async def test_a_lease_left_by_a_dead_replica_is_taken_over(engines: list[AsyncEngine],
                                                           http: httpx.AsyncClient,
                                                           wx: WeChatFake,
                                                           clock: FakeClock) -> None:
    async with write(engines[0]) as conn:
        await conn.execute(wechat_tokens.insert().values(
            app_id="wx-app", access_token="", lease_owner="dead-replica",
            lease_until=clock() + timedelta(seconds=30),
            updated_at=clock()))
    a = replica(engines[1], http, wx, clock, lease=30)
    waiting = asyncio.create_task(a.get())
    await asyncio.sleep(0.1)
    assert not waiting.done()
    assert wx.of("stable_token") == []
    clock.advance(seconds=31)
    assert await asyncio.wait_for(waiting, 10) == wx.token
    assert await stored(engines[0]) == (wx.token, None)


async def test_a_failed_fetch_releases_the_lease(engines: list[AsyncEngine],
                                                 http: httpx.AsyncClient, wx: WeChatFake,
                                                 clock: FakeClock) -> None:
    a, b = (replica(e, http, wx, clock) for e in engines)
    wx.script_next("stable_token", wx.errcode(45009))
    with pytest.raises(RetryLater):
        await a.get()
    assert await stored(engines[0]) == ("", None)
    assert await b.get() == wx.token  # nobody waits for a lease that is gone
    async with write(engines[0]) as conn:  # and a store re-reads after the row changes
        await conn.execute(update(wechat_tokens).values(access_token="OTHER"))
    assert await a.get() == "OTHER"
