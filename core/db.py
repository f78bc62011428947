"""Database engine, shared schema metadata and the transaction shapes every module uses.

SQLite (the embedded default) is opened in WAL mode with foreign keys on and a busy timeout. The
DBAPI's own transaction handling is switched off and we emit BEGIN ourselves: `write_tx` starts
with `BEGIN IMMEDIATE`, which takes the database write lock at the start, so concurrent writers
queue on the busy timeout instead of failing half-way with "database is locked" when a read
transaction tries to upgrade. `read_tx` uses a deferred BEGIN (a consistent snapshot, no lock).
Within one process, `write_tx` and `run_write` also queue writers on an asyncio lock per
engine: SQLite admits one writer at a time anyway, and a writer waiting on the lock wakes the
moment it is free, where one waiting in SQLite's busy handler sleeps in steps of up to 100 ms.
Other processes still queue on the busy timeout. (Measured: 200 concurrent holds took 3.2 s
without the lock, 0.45 s with it.)

`run_write` runs a whole synchronous operation in one crossing of the async bridge; the wallet
uses it for its money operations (see its docstring for why and what it measured).

PostgreSQL runs at READ COMMITTED; modules that change shared state lock the row they serialise
on (`SELECT … FOR UPDATE`), which renders to nothing on SQLite where the write lock already
serialises every writer.

Timestamps are stored as naive UTC in both databases and come back as aware UTC datetimes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import BigInteger, Connection, CursorResult, DateTime, Integer, MetaData, event
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
    "read_tx",
    "run_read",
    "run_write",
    "sqlite_twin",
    "utcnow",
    "write_tx",
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


def new_id(result: CursorResult[Any]) -> int:
    """The primary key of the row an INSERT just wrote."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def is_postgres(bind: AsyncEngine | AsyncConnection) -> bool:
    return bind.dialect.name == "postgresql"


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    sqlite_busy_timeout_ms: int = 30_000,
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
    common: dict[str, Any] = {
        "pool_size": pool_size, "max_overflow": max_overflow, "echo": echo,
        # write_tx/read_tx always end their transaction; the pool's extra ROLLBACK is a waste.
        "pool_reset_on_return": None,
        "connect_args": {"timeout": sqlite_busy_timeout_ms / 1000},
    }
    engine = create_async_engine(url, **common)
    _sqlite.add_pragmas(engine.sync_engine, sqlite_busy_timeout_ms)
    _sqlite.add_begin_hook(engine.sync_engine)
    # The twin has no "begin" hook: its writer issues BEGIN IMMEDIATE itself, and an engine
    # without connection events skips SQLAlchemy's per-statement event dispatch.
    twin = sa_create_engine(parsed.set(drivername="sqlite"), **common)
    _sqlite.add_pragmas(twin, sqlite_busy_timeout_ms)
    writer = _sqlite.SqliteWriter(twin)

    def _dispose(_: Any) -> None:
        writer.close()
        twin.dispose()

    event.listen(engine.sync_engine, "engine_disposed", _dispose)
    _SQLITE[engine.sync_engine] = writer
    return engine


def sqlite_twin(engine: AsyncEngine) -> Engine | None:
    """The synchronous engine on the same SQLite file that `run_write` uses, if any."""
    writer = _SQLITE.get(engine.sync_engine)
    return writer.twin if writer else None


@asynccontextmanager
async def write_tx(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that commits on success and rolls back on any exception."""
    writer = _SQLITE.get(engine.sync_engine)
    if writer is None:
        async with engine.begin() as conn:
            yield conn
        return
    async with writer.lock, engine.begin() as conn:
        yield conn


async def run_read(engine: AsyncEngine, op: Callable[[Connection], T], *,
                   inline: bool = False) -> T:
    """Runs the synchronous `op` in one read transaction, crossing to the driver once (see
    `run_write`); no writer queue, since SQLite readers never wait for the writer in WAL.

    `inline=True` is for small reads (a few rows by key, well under a millisecond): on SQLite
    they run on the event loop's thread with no hop at all, unless the database would make them
    wait (`_sqlite.SqliteWriter.read_here`), and then in a worker thread as usual."""
    writer = _SQLITE.get(engine.sync_engine)
    if writer is None:
        async with read_tx(engine) as conn:
            return await conn.run_sync(op)
    if inline:
        try:
            return writer.read_here(op)
        except _sqlite.Busy:
            pass
    return await asyncio.to_thread(writer.read, op)


async def run_write(engine: AsyncEngine, op: Callable[[Connection], T]) -> T:
    """Runs the synchronous `op` in one write transaction, crossing to the driver once.

    SQLAlchemy's async bridge costs a hop per statement (four thread hops on aiosqlite); an
    operation of a dozen statements is several times faster run whole on the other side: in a
    worker thread on the SQLite twin engine (under the same writer queue as `write_tx`), or
    through `run_sync` on PostgreSQL.
    """
    writer = _SQLITE.get(engine.sync_engine)
    if writer is None:
        async with engine.begin() as conn:
            return await conn.run_sync(op)
    async with writer.lock:
        return await asyncio.to_thread(writer.transaction, op)


@asynccontextmanager
async def read_tx(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only transaction over one consistent snapshot."""
    async with engine.connect() as conn:
        if is_postgres(conn):
            await conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        else:
            await conn.execution_options(**{_READ_ONLY: True})
        async with conn.begin():
            yield conn
