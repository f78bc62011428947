"""`core.db.read(...)` and `write(...)`: on SQLite a small read and a write operation run on
the event loop's thread and never wait there for a lock; one that would wait goes to a worker
thread instead. The inline writer never checkpoints: a worker thread does, now and then."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core._sqlite import SqliteWriter
from core.db import CHECKPOINT_COMMITS, read, sqlite_twin, utcnow, write
from tests.factories import TestDatabase
from wallet import Wallet
from wallet.tables import users


def count_users(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def add_user(conn: Connection) -> int:
    conn.execute(users.insert().values(created_at=utcnow(), language="en"))
    return count_users(conn)


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
    # The inline connections' busy timeout of 0 (the inline reader's and writer's) never
    # reaches the pooled connections (the threaded writer's, and a threaded read's).
    assert await write(engine, busy_timeout) == 0
    twin = sqlite_twin(engine)
    assert twin is not None
    with twin.connect() as conn:
        assert busy_timeout(conn) == 30_000
    assert await read(engine, count_users) == 1


async def test_an_inline_write_that_would_wait_goes_to_a_worker_thread(
        database: TestDatabase, engine: AsyncEngine) -> None:
    if database.kind != "sqlite":
        pytest.skip("the inline path is SQLite's")
    await Wallet(engine).open_account("telegram", "1")
    loop_thread, threads = threading.get_ident(), []

    def tracked(conn: Connection) -> int:
        threads.append(threading.get_ident())
        return add_user(conn)

    assert await write(engine, tracked) == 2
    assert threads == [loop_thread]  # no other writer: on the loop's thread
    # Another process holds SQLite's write lock: the write waits for it in a worker thread,
    # and the event loop goes on meanwhile.
    twin = sqlite_twin(engine)
    assert twin is not None
    other = sqlite3.connect(twin.url.database or "", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        waiting = asyncio.ensure_future(write(engine, tracked))
        started = time.monotonic()
        await asyncio.sleep(0.2)
        assert time.monotonic() - started < 1.0  # the loop was not blocked
        assert not waiting.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(waiting, 10) == 3
    finally:
        other.close()
    assert len(threads) == 2
    assert threads[1] != loop_thread


async def test_inline_writes_are_checkpointed_in_a_worker_thread(
        database: TestDatabase, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    if database.kind != "sqlite":
        pytest.skip("the inline path is SQLite's")

    def autocheckpoint(conn: Connection) -> int:
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())

    assert await write(engine, autocheckpoint) == 0  # the inline writer never checkpoints
    checkpoints: list[int] = []
    original = SqliteWriter.checkpoint

    def counted(self: SqliteWriter) -> None:
        checkpoints.append(threading.get_ident())
        original(self)

    monkeypatch.setattr(SqliteWriter, "checkpoint", counted)
    for _ in range(CHECKPOINT_COMMITS + 1):
        await write(engine, add_user)
    for _ in range(100):  # bounded: the checkpoint runs in a worker thread
        if checkpoints:
            break
        await asyncio.sleep(0.02)
    assert len(checkpoints) == 1
    assert checkpoints[0] != threading.get_ident()
    assert await read(engine, count_users) == CHECKPOINT_COMMITS + 1


async def test_reads_and_writes_on_the_loop_share_one_connection_and_stay_apart(
        database: TestDatabase, engine: AsyncEngine) -> None:
    """The inline read and write share a connection (its page cache outlives its own commits):
    a write that fails leaves nothing behind for the read after it, a read that fails leaves
    no transaction open for the write after it, and each sees what the other committed."""
    if database.kind != "sqlite":
        pytest.skip("the inline path is SQLite's")
    connections: list[object] = []

    def which(conn: Connection) -> int:
        connections.append(conn.connection.dbapi_connection)
        return count_users(conn)

    assert await write(engine, add_user) == 1
    assert await read(engine, which) == 1
    assert await write(engine, lambda conn: (which(conn), add_user(conn))[1]) == 2
    assert connections[0] is connections[1]  # one connection for both

    def add_then_fail(conn: Connection) -> None:
        add_user(conn)
        raise RuntimeError("the write fails after its INSERT")

    with pytest.raises(RuntimeError, match="fails"):
        await write(engine, add_then_fail)
    assert await read(engine, count_users) == 2  # rolled back, not seen by the read

    def read_then_fail(conn: Connection) -> None:
        count_users(conn)
        raise RuntimeError("the read fails")

    with pytest.raises(RuntimeError, match="the read fails"):
        await read(engine, read_then_fail)
    assert await write(engine, add_user) == 3  # no read transaction left open in its way
    twin = sqlite_twin(engine)
    assert twin is not None
    other = sqlite3.connect(twin.url.database or "", isolation_level=None)
    try:  # another connection's commit drops the shared connection's cache: seen at once
        other.execute("INSERT INTO users (created_at, language) "
                      "VALUES ('2026-12-01 00:00:00.000000', 'en')")
    finally:
        other.close()
    assert await read(engine, count_users) == 4
