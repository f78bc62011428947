"""The wallet is right whoever made its engine (issue 9): a plain
`sqlalchemy.ext.asyncio.create_async_engine`, not `core.db.create_engine`, in one process with
hundreds of coroutines (and across processes: test_wallet_concurrency.py), on SQLite and
PostgreSQL; and the account's guarded update refuses a stale read by itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Connection, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.db import write
from tests.factories import TestDatabase, funded_user
from wallet import StaleAccount, Wallet
from wallet import _book as book
from wallet.tables import accounts, ledger


@pytest.fixture
async def plain(database: TestDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database.url)
    # A connection used (and pooled) before anything prepared the engine: the wallet's
    # settings must reach it too.
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    yield engine
    await engine.dispose()


@pytest.mark.parametrize("n", [50, 400])
async def test_concurrent_holds_settles_and_releases(plain: AsyncEngine, n: int) -> None:
    wallet = Wallet(plain)
    uid = await funded_user(wallet, 1000)
    held = await asyncio.gather(*(wallet.hold(uid, 1, ref=f"job-{i}") for i in range(n)))
    assert len({h.id for h in held}) == n
    bal = await wallet.balance(uid)
    assert (bal.available, bal.held) == (1000 - n, n)
    assert await wallet.audit() == []

    await asyncio.gather(*(wallet.settle(h.id) if i % 2 else wallet.release(h.id)
                           for i, h in enumerate(held)))
    bal = await wallet.balance(uid)
    assert (bal.available, bal.held) == (1000 - n // 2, 0)
    assert await wallet.audit() == []


async def test_more_holds_than_credits(plain: AsyncEngine) -> None:
    wallet = Wallet(plain)
    uid = await funded_user(wallet, 30)
    results = await asyncio.gather(*(wallet.hold(uid, 1, ref=f"j{i}") for i in range(120)),
                                   return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 30
    assert (await wallet.balance(uid)).available == 0
    assert await wallet.audit() == []


async def test_a_stale_read_writes_nothing(engine: AsyncEngine) -> None:
    """The counters an operation read (here: 5 available) are not the account's any more
    (10): saving refuses, and neither the counters nor the ledger change."""
    wallet = Wallet(engine)
    uid = await funded_user(wallet, 10)

    def stale(conn: Connection) -> None:
        acct = book.Account(uid, 5, 0, 0, [])
        book.entry(acct, "hold", wallet.balance_params()["balance_now"], amount=-1, held=1)
        book.save(conn, acct)

    with pytest.raises(StaleAccount):
        await write(engine, stale)
    async with engine.connect() as conn:
        row = (await conn.execute(select(accounts).where(accounts.c.user_id == uid))).one()
        entries = (await conn.execute(select(ledger.c.id).where(ledger.c.user_id == uid))).all()
    assert (row.available, row.held) == (10, 0)
    assert len(entries) == 1  # the funding grant only
    assert await wallet.audit() == []
