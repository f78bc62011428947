"""`core.db.write(engine, op, batch=True)`: the batched writes of one moment share a transaction
on SQLite (group commit), each in a savepoint of its own; on PostgreSQL each is a write alone.
Either way every caller gets its own op's result or exception, and an op that raised leaves no
change behind."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.db import read, sqlite_twin, utcnow, write
from tests.factories import TestDatabase
from wallet.tables import identities, users


def count_users(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def add_user(conn: Connection) -> int:
    result = conn.execute(users.insert().values(created_at=utcnow(), language="en"))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def add_user_then_fail(conn: Connection) -> int:
    add_user(conn)
    raise ValueError("this op fails after writing")


def add_identity(conn: Connection, external_id: str) -> int:
    user_id = add_user(conn)
    conn.execute(identities.insert().values(channel="telegram", external_id=external_id,
                                            user_id=user_id, created_at=utcnow()))
    return user_id


def commits(engine: AsyncEngine) -> list[int]:
    """Counts the commits on the engine's SQLite twin (where the inline writes run)."""
    seen: list[int] = []
    twin = sqlite_twin(engine)
    assert twin is not None

    @event.listens_for(twin, "commit")
    def _commit(conn: Any) -> None:
        seen.append(1)

    return seen


@pytest.mark.parametrize("made", ["ours", "plain"])
async def test_the_batched_writes_of_one_moment_commit_together(
        database: TestDatabase, made: str) -> None:
    # Outside code makes its engine as it likes: batching must not depend on our factory.
    engine = database.engine() if made == "ours" else create_async_engine(database.url)
    try:
        await read(engine, count_users)  # prepared on first use
        seen = commits(engine) if database.kind == "sqlite" else []
        ids = await asyncio.gather(*(write(engine, add_user, batch=True) for _ in range(20)))
        assert len(set(ids)) == 20
        assert await read(engine, count_users) == 20
        if database.kind == "sqlite":
            assert len(seen) == 1  # one transaction for the twenty
            # A write of a later moment is a transaction of its own.
            await write(engine, add_user, batch=True)
            assert len(seen) == 2
    finally:
        await engine.dispose()


async def test_an_op_that_raises_leaves_nothing_and_the_others_stand(
        database: TestDatabase, engine: AsyncEngine) -> None:
    results = await asyncio.gather(
        write(engine, add_user, batch=True),
        write(engine, add_user_then_fail, batch=True),
        write(engine, lambda conn: add_identity(conn, "7"), batch=True),
        write(engine, lambda conn: add_identity(conn, "7"), batch=True),  # the same identity
        write(engine, add_user, batch=True),
        return_exceptions=True)
    assert isinstance(results[0], int)
    assert isinstance(results[4], int)
    assert isinstance(results[1], ValueError)
    # The same identity twice: one is written, the other gets its own error, as from a write
    # alone (on SQLite the first in order; on PostgreSQL, where each is a transaction of its
    # own, whichever commits first).
    twins = sorted(results[2:4], key=lambda r: isinstance(r, IntegrityError))
    assert isinstance(twins[0], int)
    assert isinstance(twins[1], IntegrityError)
    if database.kind == "sqlite":
        assert isinstance(results[2], int)
    # The failed ops' users are not there: only those of the three that succeeded.
    assert await read(engine, count_users) == 3
    ids = {r for r in results if isinstance(r, int)}
    async with read(engine) as conn:
        found = set((await conn.execute(select(users.c.id))).scalars())
    assert found == ids


async def test_a_write_cancelled_before_its_commit_does_not_run(
        database: TestDatabase, engine: AsyncEngine) -> None:
    if database.kind != "sqlite":
        pytest.skip("group commit is SQLite's")
    ran: list[int] = []

    def tracked(conn: Connection) -> int:
        ran.append(1)
        return add_user(conn)

    kept = asyncio.ensure_future(write(engine, tracked, batch=True))
    dropped = asyncio.ensure_future(write(engine, tracked, batch=True))
    await asyncio.sleep(0)  # both queued, the commit not yet run
    dropped.cancel()
    assert isinstance(await kept, int)
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert ran == [1]
    assert await read(engine, count_users) == 1


async def test_a_batch_waits_for_another_process_in_a_worker_thread(
        database: TestDatabase, engine: AsyncEngine) -> None:
    if database.kind != "sqlite":
        pytest.skip("group commit is SQLite's")
    loop_thread, threads = threading.get_ident(), []

    def tracked(conn: Connection) -> int:
        threads.append(threading.get_ident())
        return add_user(conn)

    twin = sqlite_twin(engine)
    assert twin is not None
    other = sqlite3.connect(twin.url.database or "", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process writes
        waiting = [asyncio.ensure_future(write(engine, tracked, batch=True)) for _ in range(3)]
        started = time.monotonic()
        await asyncio.sleep(0.2)
        assert time.monotonic() - started < 1.0  # the event loop was not blocked
        assert not any(w.done() for w in waiting)
        # A batch of a later moment queues behind the one waiting (the writers' lock).
        later = asyncio.ensure_future(write(engine, tracked, batch=True))
        await asyncio.sleep(0.05)
        assert not later.done()
        other.execute("COMMIT")
        ids = await asyncio.wait_for(asyncio.gather(*waiting, later), 10)
    finally:
        other.close()
    assert len(set(ids)) == 4
    assert threads[0] != loop_thread  # the waiting batch ran in a worker thread
    assert await read(engine, count_users) == 4
