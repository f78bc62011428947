"""Database engine, shared schema metadata, and the two ways to run a query: `read` and `write`.

Every module runs its SQL through `read(engine, …)` or `write(engine, …)`; each picks the best
mechanism for the engine's database internally, so callers never branch on the dialect (dialect
branches live here and in `core/migrate.py` only). Each takes one of two forms:

* `await read(engine, op)` / `await write(engine, op)` run the synchronous `op(conn)` whole, in
  one crossing of SQLAlchemy's async bridge (which costs a hop per statement; four thread hops
  on aiosqlite). `read(engine, op)` is for a small read by key: on SQLite it runs on the event
  loop's thread with no hop (`_sqlite.SqliteWriter.read_here`), on PostgreSQL in autocommit, with
  no BEGIN/COMMIT round trips, so each statement reads its own snapshot (a single statement is
  consistent; use the context form when several must agree). `write(engine, op)` runs on
  SQLite's synchronous twin engine on the event loop's thread too (`SqliteWriter.write_here`),
  through `run_sync` on PostgreSQL. Decided by measurement (bench/wechat.py profile): in a
  worker thread, every sqlite3 call of a write hands the GIL back and forth with the busy event
  loop, a write held the process's one write lock for about a millisecond under load, and the
  writes of 100 concurrent WeChat users queued behind it (2.35 ms of CPU a message in all,
  1.6 ms inline). An `op` is a short transaction by key, as every caller writes it; one that
  would wait (another process holds SQLite's write lock) goes to a worker thread instead, and
  so does the checkpoint that copies the WAL into the database file (it syncs the disk), every
  `CHECKPOINT_COMMITS` inline commits.
* `await write(engine, op, batch=True)`: `op` may share its transaction with the other batched
  writes of the same moment (group commit). On SQLite the batched writes queued while the
  event loop runs what is ready commit together right after, in order, each in a savepoint of
  its own: every caller gets its own op's result or exception, an op that raised leaves no
  change, and the others' changes stand (at most `MAX_BATCH` a transaction; a write whose
  caller was cancelled before the commit does not run; one that would wait for another
  process waits in a worker thread, as above). One BEGIN and COMMIT, one set of SQLite's file
  locks and one write of each page touched, for several writes: WeChat's claim and settle
  (two a message) are batched, and 100 users' messages took 0.44 ms of CPU each instead of
  0.55-0.6 (bench/wechat.py profile, bench/README.md). On PostgreSQL each is a write alone. For
  short ops by key that do not care which other writes commit with them; the default is a
  transaction of the op's own.
* `async with read(engine) as conn` / `async with write(engine) as conn` give an
  `AsyncConnection` in a transaction: a read-only snapshot (REPEATABLE READ on PostgreSQL, a
  deferred BEGIN on SQLite), or a write transaction that commits on success and rolls back on
  any exception.

Correctness never depends on how the engine was made. `create_engine` prepares its engine, and
`read`, `write` and `prepare` prepare any SQLite `AsyncEngine` they are given, once per engine
(one made with plain `create_async_engine` included): WAL, foreign keys and a busy timeout on
every connection (those already pooled at their next checkout), the DBAPI's own transaction
handling off, and BEGIN IMMEDIATE for writes, which takes the write lock at the start, so
concurrent writers queue instead of reading a stale state or failing half-way with "database is
locked" when a read transaction tries to upgrade. Within one process writers also queue on an
asyncio lock per engine: SQLite admits one writer at a time anyway, and a writer waiting on the
lock wakes the moment it is free, where one in SQLite's busy handler sleeps in steps of up to
100 ms (measured: 200 concurrent holds took 3.2 s without the lock, 0.45 s with it). Other
processes queue on the busy timeout. Both forms of `write` share that queue.

PostgreSQL runs at READ COMMITTED; modules that change shared state lock the row they serialise
on (`SELECT … FOR UPDATE`, which renders to nothing on SQLite, where the write lock already
serialises every writer; so does SKIP LOCKED). Money writes are also guarded relative updates
(see `wallet._book`), so even a transaction that read a stale state cannot corrupt a counter.

Timestamps are stored as naive UTC in both databases and come back as aware UTC datetimes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, overload
from weakref import WeakKeyDictionary

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    CursorResult,
    DateTime,
    Insert,
    Integer,
    MetaData,
    Table,
    event,
)
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator

from . import _sqlite
from ._sqlite import fire_before_execute

__all__ = [
    "Id",
    "UTCDateTime",
    "create_engine",
    "fire_before_execute",
    "is_postgres",
    "metadata",
    "new_id",
    "prepare",
    "read",
    "sqlite_twin",
    "upsert",
    "utcnow",
    "write",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_READ_ONLY = _sqlite.READ_ONLY
# SQLite async engine -> its writer (the lock in-process writers queue on, the synchronous twin
# engine on the same file, the writer connection); made with the engine, gone with it.
_SQLITE: WeakKeyDictionary[Engine, _sqlite.SqliteWriter] = WeakKeyDictionary()
_PREPARING = threading.Lock()
BUSY_TIMEOUT_MS = 30_000
CHECKPOINT_COMMITS = 200  # write_here's commits between two checkpoints (in a worker thread)
MAX_BATCH = 64  # batched writes in one group commit at most
T = TypeVar("T")


# Primary and foreign keys: BIGINT, except SQLite, where only INTEGER PRIMARY KEY is the rowid.
Id = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime, stored as naive UTC so SQLite and PostgreSQL compare alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)

    # SQLite keeps a datetime as text, in SQLAlchemy's storage format for its DATETIME
    # ("2026-12-01 12:08:08.617351", microseconds always). SQLAlchemy's own conversion formats
    # with a %-dict and parses with a regex, 2–3 µs a value (bench/wechat.py profile: a WeChat
    # message binds six and reads five); `isoformat`/`fromisoformat` write and read the same
    # text in C, in a third and a tenth of the time. tests/unit/test_db_datetime.py holds
    # them to SQLAlchemy's text, both ways.
    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given; use an aware UTC datetime")
            if value.tzinfo is not UTC:
                value = value.astimezone(UTC)
            return value.isoformat(" ", "microseconds")[:-6]  # without its "+00:00"

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        fallback = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite":
            return fallback

        def process(value: Any) -> datetime | None:
            if value is None:
                return None
            if isinstance(value, str):
                try:  # the storage format: tzinfo is then UTC itself
                    parsed = datetime.fromisoformat(value + "+00:00")
                except ValueError:  # it has an offset of its own
                    try:
                        parsed = datetime.fromisoformat(value)
                    except ValueError:  # none of these: SQLAlchemy's parser decides
                        parsed = None
                if parsed is not None:
                    if parsed.tzinfo is UTC:
                        return parsed
                    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None \
                        else parsed.astimezone(UTC)
            return fallback(value) if fallback is not None else value

        return process


def new_id(result: CursorResult[Any]) -> int:
    """The primary key of the row an INSERT just wrote."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def is_postgres(bind: AsyncEngine | AsyncConnection | Connection) -> bool:
    return bind.dialect.name == "postgresql"


def upsert(bind: AsyncEngine | AsyncConnection | Connection, table: Table,
           values: dict[str, Any], *, key: list[Column[Any]], update: dict[str, Any],
           ) -> Insert:
    """INSERT `values`, or on a clash of the unique `key` UPDATE the existing row with `update`
    (the dialect's own INSERT … ON CONFLICT DO UPDATE; both databases have it)."""
    if is_postgres(bind):  # each dialect's module is imported on first use (start-up time)
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).values(values).on_conflict_do_update(
            index_elements=key, set_=update)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).values(values).on_conflict_do_update(
        index_elements=key, set_=update)


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    sqlite_busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    echo: bool = False,
) -> AsyncEngine:
    """Builds the async engine for `url` (sqlite+aiosqlite or postgresql+asyncpg)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # No pre-ping: it costs a round trip per checkout; a connection found dead raises a
        # disconnect error, which invalidates the pool, and the next checkout reconnects.
        return create_async_engine(url, pool_size=pool_size, max_overflow=max_overflow,
                                   pool_recycle=1800, echo=echo)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, echo=echo,
        # read/write always end their transaction; the pool's extra ROLLBACK is a waste.
        pool_reset_on_return=None,
        connect_args={"timeout": sqlite_busy_timeout_ms / 1000})
    _prepare_sqlite(engine, sqlite_busy_timeout_ms,
                    {"pool_size": pool_size, "max_overflow": max_overflow, "echo": echo})
    return engine


def prepare(engine: AsyncEngine) -> None:
    """Readies any engine for `read` and `write`, once (they call it themselves; a module that
    owns an engine it did not make, like `wallet.Wallet`, calls it at the start)."""
    _writer(engine)


def _writer(engine: AsyncEngine) -> _sqlite.SqliteWriter | None:
    """The engine's SQLite writer, made on first sight of a SQLite engine; None on PostgreSQL."""
    sync = engine.sync_engine
    writer = _SQLITE.get(sync)
    if writer is None and sync.dialect.name == "sqlite":
        with _PREPARING:  # one writer per engine, even if two threads see it first together
            writer = _SQLITE.get(sync) or _prepare_sqlite(engine, BUSY_TIMEOUT_MS, {})
    return writer


def _prepare_sqlite(engine: AsyncEngine, busy_timeout_ms: int,
                    pool: dict[str, Any]) -> _sqlite.SqliteWriter:
    _sqlite.add_pragmas(engine.sync_engine, busy_timeout_ms)
    _sqlite.add_begin_hook(engine.sync_engine)
    database = engine.url.database
    twin: Engine | None = None
    if database and database != ":memory:":  # a twin of an in-memory database is another one
        # The twin has no "begin" hook: its writer issues BEGIN IMMEDIATE itself, and an
        # engine without connection events skips SQLAlchemy's per-statement event dispatch.
        twin = sa_create_engine(
            engine.url.set(drivername="sqlite"), pool_reset_on_return=None,
            connect_args={"timeout": busy_timeout_ms / 1000}, **pool)
        _sqlite.add_pragmas(twin, busy_timeout_ms)
    writer = _sqlite.SqliteWriter(twin)

    def _dispose(_: Any) -> None:
        writer.close()
        if twin is not None:
            twin.dispose()

    event.listen(engine.sync_engine, "engine_disposed", _dispose)
    _SQLITE[engine.sync_engine] = writer
    return writer


def sqlite_twin(engine: AsyncEngine) -> Engine | None:
    """The synchronous engine on the same SQLite file that `write(engine, op)` uses, if any."""
    writer = _writer(engine)
    return writer.twin if writer else None


@overload
def read(engine: AsyncEngine) -> AbstractAsyncContextManager[AsyncConnection]: ...
@overload
def read(engine: AsyncEngine, op: Callable[[Connection], T]) -> Awaitable[T]: ...
def read(engine: AsyncEngine, op: Callable[[Connection], T] | None = None,
         ) -> AbstractAsyncContextManager[AsyncConnection] | Awaitable[T]:
    """A read: `await read(engine, op)` for a small one by key, `async with read(engine) as
    conn` for the rest (one consistent snapshot). See the module docstring."""
    return _read_tx(engine) if op is None else _read_op(engine, op)


@overload
def write(engine: AsyncEngine) -> AbstractAsyncContextManager[AsyncConnection]: ...
@overload
def write(engine: AsyncEngine, op: Callable[[Connection], T], *,
          batch: bool = False) -> Awaitable[T]: ...
def write(engine: AsyncEngine, op: Callable[[Connection], T] | None = None, *,
          batch: bool = False) -> AbstractAsyncContextManager[AsyncConnection] | Awaitable[T]:
    """A write transaction: `await write(engine, op)` runs the synchronous `op` whole; `async
    with write(engine) as conn` gives the connection. `batch=True`: `op` may share its
    transaction with the other batched writes of the same moment (group commit, on SQLite).
    See the module docstring."""
    if op is None:
        return _write_tx(engine)
    return _write_batched(engine, op) if batch else _write_op(engine, op)


async def _read_op(engine: AsyncEngine, op: Callable[[Connection], T]) -> T:
    writer = _writer(engine)
    if writer is None:
        async with engine.connect() as aconn:
            # Autocommit: no BEGIN/COMMIT round trips (on asyncpg a flag, no statement).
            aconn = await aconn.execution_options(isolation_level="AUTOCOMMIT")
            return await aconn.run_sync(op)
    if writer.twin is None:
        async with _read_tx(engine) as aconn:
            return await aconn.run_sync(op)
    try:
        return writer.read_here(op)
    except _sqlite.Busy:
        return await asyncio.to_thread(writer.read, op)


async def _write_op(engine: AsyncEngine, op: Callable[[Connection], T]) -> T:
    writer = _writer(engine)
    if writer is None:
        async with engine.begin() as conn:
            return await conn.run_sync(op)
    async with writer.lock:
        if writer.twin is None:
            async with engine.begin() as conn:
                return await conn.run_sync(op)
        return await _write_locked(writer, op)


async def _write_locked(writer: _sqlite.SqliteWriter, op: Callable[[Connection], T]) -> T:
    """`op` in a write transaction, holding `writer.lock`: on this thread, or when another
    process writes, in a worker thread that waits for it."""
    try:
        result = writer.write_here(op)
    except _sqlite.Busy:
        work = asyncio.get_running_loop().run_in_executor(None, writer.transaction, op)
        try:
            return await asyncio.shield(work)
        finally:  # cancelled: the lock stays held while the thread uses the connection
            if not work.done():
                await asyncio.wait({work})
    writer.checkpoint_soon(CHECKPOINT_COMMITS)
    return result


async def _write_batched(engine: AsyncEngine, op: Callable[[Connection], T]) -> T:
    writer = _writer(engine)
    if writer is None or writer.twin is None:  # PostgreSQL, in-memory SQLite: a write alone
        return await _write_op(engine, op)
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    writer.queued.append(_sqlite.Queued(op, future))
    if len(writer.queued) == 1:  # the first of this moment: the commit after what is ready
        loop.call_soon(_group_commit, writer)
    return await future


def _group_commit(writer: _sqlite.SqliteWriter) -> None:
    """Commits the batched writes queued since the last one, in one transaction (see the module
    doc); a write whose caller was cancelled before it ran does not run."""
    batch = [q for q in writer.queued[:MAX_BATCH] if not q.future.cancelled()]
    del writer.queued[:MAX_BATCH]
    if writer.queued:  # more than one transaction's worth: the rest next
        asyncio.get_running_loop().call_soon(_group_commit, writer)
    if not batch:
        return
    if not writer.lock.locked():  # nobody waits on another process: inline, at once
        try:
            results = writer.write_here(partial(_sqlite.run_batch, batch=batch))
        except _sqlite.Busy:
            pass
        except BaseException as exc:
            _settle_batch(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        else:
            _settle_batch(batch, results)
            writer.checkpoint_soon(CHECKPOINT_COMMITS)
            return
    task = asyncio.get_running_loop().create_task(_group_commit_waiting(writer, batch))
    writer.flushing.add(task)
    task.add_done_callback(writer.flushing.discard)


async def _group_commit_waiting(writer: _sqlite.SqliteWriter,
                                batch: list[_sqlite.Queued]) -> None:
    """The batch when it must wait: for the lock, and for another process's write."""
    try:
        async with writer.lock:
            results = await _write_locked(writer, partial(_sqlite.run_batch, batch=batch))
    except BaseException as exc:
        _settle_batch(batch, exc)
        if not isinstance(exc, Exception):
            raise
        return
    _settle_batch(batch, results)


def _settle_batch(batch: list[_sqlite.Queued],
                  outcome: list[tuple[bool, Any]] | BaseException) -> None:
    for i, queued in enumerate(batch):
        if queued.future.done():  # its caller was cancelled meanwhile
            continue
        if isinstance(outcome, asyncio.CancelledError):  # shutting down while it waited
            queued.future.cancel()
            continue
        if isinstance(outcome, BaseException):
            queued.future.set_exception(outcome)
            continue
        ok, value = outcome[i]
        if ok:
            queued.future.set_result(value)
        else:
            queued.future.set_exception(value)


@asynccontextmanager
async def _write_tx(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    writer = _writer(engine)
    if writer is None:
        async with engine.begin() as conn:
            yield conn
        return
    async with writer.lock, engine.begin() as conn:
        yield conn


@asynccontextmanager
async def _read_tx(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    _writer(engine)  # the begin hook must be there to make this BEGIN a deferred one
    async with engine.connect() as conn:
        if is_postgres(conn):
            await conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        else:
            await conn.execution_options(**{_READ_ONLY: True})
        async with conn.begin():
            yield conn
