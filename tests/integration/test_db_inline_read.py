"""`core.db.read(...)`: on SQLite a small read runs on the event loop's thread
and never waits there for a lock; a read that would wait goes to a worker thread instead."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import read, sqlite_twin, write
from tests.factories import TestDatabase
from wallet import Wallet
from wallet.tables import users


def count_users(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def busy_timeout(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one())


async def test_inline_and_threaded_reads_see_the_same(database: TestDatabase,
                                                      engine: AsyncEngine) -> None:
    await Wallet(engine).open_account("telegram", "1")
    assert await read(engine, count_users) == 1
    await Wallet(engine).open_account("telegram", "2")  # committed by another connection
    assert await read(engine, count_users) == 2
    assert await read(engine, count_users) == 2


async def test_an_inline_read_that_would_wait_goes_to_a_worker_thread(
        database: TestDatabase, engine: AsyncEngine) -> None:
    if database.kind != "sqlite":
        pytest.skip("the inline path is SQLite's")
    await Wallet(engine).open_account("telegram", "1")
    # Its own connection answers "busy" at once instead of waiting (on the event loop) ...
    assert await read(engine, busy_timeout) == 0
    loop_thread, threads = threading.get_ident(), []

    def busy_on_the_loop(conn: Connection) -> int:
        threads.append(threading.get_ident())
        if threading.get_ident() == loop_thread:
            exc = sqlite3.OperationalError("database is locked")
            exc.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise exc
        return count_users(conn)

    # ... and a busy answer sends the read to a worker thread, which may wait.
    assert await read(engine, busy_on_the_loop) == 1
    assert threads[0] == loop_thread
    assert len(threads) == 2
    assert threads[1] != loop_thread
    # Any other error is the caller's.
    with pytest.raises(ZeroDivisionError):
        await read(engine, lambda conn: 1 // 0)
    # The inline connection's busy timeout of 0 never reaches the pooled connections (the
    # writer's, and a threaded read's).
    assert await write(engine, busy_timeout) == 30_000
    twin = sqlite_twin(engine)
    assert twin is not None
    with twin.connect() as conn:
        assert busy_timeout(conn) == 30_000
    assert await read(engine, count_users) == 1
