"""Wallet throughput: hold→settle pairs per second against hand-written SQL floors.

For each database the script times `Wallet.hold()` then `Wallet.settle()` (full settle) and, in
the same run, *floors*: the very same statements in the same order, one transaction per
operation, written by hand on the raw driver, no SQLAlchemy. Before anything is timed, one pair
of each side runs with its statements recorded (the wallet's through a `before_cursor_execute`
listener on its engine and on its SQLite twin) and the lists must be identical.

Floors:

* SQLite, `aiosqlite` floor: aiosqlite connections, one `await` per statement.
* SQLite, `sqlite3` floor: the wallet's own architecture without SQLAlchemy: one stdlib
  `sqlite3` connection, each whole operation (BEGIN IMMEDIATE … COMMIT) run on the event loop's
  thread under the writer lock, its WAL checkpointed in a worker thread every
  `core.db.CHECKPOINT_COMMITS` commits, as `core.db.write` does (`SqliteWriter.write_here`).
  This is the stricter floor and the one the SQLite ratio target is judged against.
* PostgreSQL, `asyncpg` floor: an asyncpg pool of the engine's size.

Both SQLite floors use the pragmas of `core.db` and its in-process asyncio writer lock, and make
connections on demand as SQLAlchemy's queue pool does (so, behind the lock, they use one).

Rounds alternate between the sides (the order rotates each round); the figure reported is the
median of the rounds, min–max beside it. After every timed run `Wallet(engine).audit()` must come
back empty and the row counts must have grown by exactly what the run wrote, or the script stops
with exit code 1. A PostgreSQL server that cannot be reached gives exit code 2 (after the SQLite
report); otherwise it exits 0 whatever the figures (a report, not a test).

    python bench/wallet.py                 # everything, about a minute
    python bench/wallet.py --skip-pg       # SQLite only
    python bench/wallet.py --pairs 4000 --rounds 5 --pg-url postgresql+asyncpg://u@host/db
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as `python bench/wallet.py`: this file's folder would be sys.path[0] and this very
    # file would then shadow the `wallet` package. Put the project root there instead.
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

import argparse
import asyncio
import itertools
import re
import sqlite3
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import aiosqlite
import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from core import migrate
from core.db import CHECKPOINT_COMMITS, create_engine, sqlite_twin
from tests.factories import create_pg_database, drop_pg_database
from wallet import Wallet

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/videofly"
SQLITE_BUSY_MS = 30_000  # core.db.create_engine's default busy timeout
SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                  f"busy_timeout={SQLITE_BUSY_MS}")  # core.db._configure_sqlite, in its order
CREDITS = 7  # per hold
TTL = timedelta(minutes=30)  # holds carry an expiry, as a job's hold would
FUND = 1_000_000_000  # per grant; never runs out during a bench
TARGET_RATIO = 0.7
TARGET_SQLITE_PAIRS = 1_000.0


# --------------------------------------------------------------------------------------------
# What is timed: something that can hold and settle.


class PairMaker(Protocol):
    trace: list[str] | None  # when a list, every statement's SQL is appended to it

    async def hold(self, user_id: int, ref: str) -> int: ...

    async def settle(self, hold_id: int) -> None: ...


class WalletPairs:
    """The real thing: `Wallet.hold()` then `Wallet.settle()`."""

    def __init__(self, wallet: Wallet) -> None:
        self._wallet = wallet
        self.trace: list[str] | None = None  # filled by the statement check's listener

    async def hold(self, user_id: int, ref: str) -> int:
        return (await self._wallet.hold(user_id, CREDITS, ref=ref, ttl=TTL)).id

    async def settle(self, hold_id: int) -> None:
        await self._wallet.settle(hold_id)


class FloorError(RuntimeError):
    """The floor met a state the wallet would have refused; the bench is broken, not slow."""


@dataclass(slots=True)
class Plan:
    """What a hold writes, worked out from the locked counters and the open lots (as _ops.hold)."""

    available: int
    held: int
    debt: int
    changes: list[tuple[int, int]] = field(default_factory=list)  # (new remaining, grant id)
    locked: tuple[int, int, int] = (0, 0, 0)  # the counters as read, for the guarded update
    parts: list[tuple[int, int]] = field(default_factory=list)  # (grant id, credits)
    entries: list[list[Any]] = field(default_factory=list)  # ledger rows, hold_id filled later


def ledger_row(p: Plan, user_id: int, kind: str, now: Any, *, amount: int = 0, held: int = 0,
               ref: str | None = None, grant_id: int | None = None,
               hold_id: int | None = None) -> list[Any]:
    """Applies a change to the counters; returns its ledger row in LEDGER_COLUMNS order."""
    p.available += amount
    p.held += held
    return [user_id, kind, amount, held, 0, p.available, p.held, p.debt, ref, grant_id, hold_id,
            None, None, now]


def plan_hold(user_id: int, locked: Sequence[Any], lots: Sequence[Sequence[Any]], now: Any,
              ref: str) -> Plan:
    """The arithmetic of `wallet._ops.hold`: expire lapsed lots, take soonest-expiring first.

    `locked` is the row of the lock-with-ref statement: available, held, debt, then the hold
    already made under `ref` (all NULL when there is none, as there never is in the bench).
    `now` and each lot's expiry are compared as given: naive UTC datetimes on PostgreSQL, the
    stored text on SQLite (which sorts like the instant it names).
    """
    if locked[3] is not None:
        raise FloorError(f"hold {ref} exists")
    p = Plan(locked[0], locked[1], locked[2], locked=(locked[0], locked[1], locked[2]))
    live = [r for r in lots if r[2] is None or r[2] > now]
    usable = p.available - sum(r[1] for r in lots) + sum(r[1] for r in live)
    if usable < CREDITS:
        raise FloorError(f"user {user_id}: {usable} usable, {CREDITS} needed")
    for gid, remaining, expires_at in lots:
        if expires_at is not None and expires_at <= now:
            p.entries.append(ledger_row(p, user_id, "expire", now, amount=-remaining,
                                        ref=f"grant:{gid}", grant_id=gid))
            p.changes.append((0, gid))
    need = CREDITS
    for gid, remaining, _ in live:
        take = min(remaining, need)
        p.parts.append((gid, take))
        p.changes.append((remaining - take, gid))
        need -= take
        if not need:
            break
    p.entries.append(ledger_row(p, user_id, "hold", now, amount=-CREDITS, held=CREDITS, ref=ref))
    return p


HOLD_COLUMNS = ("holds.id, holds.user_id, holds.ref, holds.credits, holds.status, holds.spent,"
                " holds.created_at, holds.expires_at, holds.finished_at")
LEDGER_COLUMNS = ("user_id, kind, amount, held_delta, debt_delta, balance_after, held_after, "
                  "debt_after, ref, grant_id, hold_id, note, actor, created_at")


def save_args(p: Plan, user_id: int) -> tuple[int, ...]:
    """The guarded update's parameters: the deltas, the user, the counters as locked."""
    a0, h0, d0 = p.locked
    return (p.available - a0, p.held - h0, p.debt - d0, user_id, a0, h0, d0)


def settle_save_args(user_id: int, credits: int, available: int, held: int,
                     debt: int) -> tuple[int, ...]:
    """The same for a full settle: held goes down by the hold's credits."""
    return (0, -credits, 0, user_id, available, held, debt)


def saved(rowcount: int) -> None:
    if rowcount != 1:
        raise FloorError("the account changed under the operation")


def same_sql(sql: str) -> str:
    """SQL with runs of whitespace made one space, to compare statements."""
    return re.sub(r"\s+", " ", sql).strip()


# --------------------------------------------------------------------------------------------
# The SQLite floors. Statements: what SQLAlchemy renders for wallet._ops / wallet._book on
# SQLite, verbatim (captured with a before_cursor_execute listener on the twin engine), in the
# order the wallet issues them. The statement check at start-up proves they still match.


class SqliteSql:
    BEGIN = "BEGIN IMMEDIATE"
    LOCK_WITH_REF = (f"SELECT accounts.available, accounts.held, accounts.debt, {HOLD_COLUMNS}"
                     " FROM accounts LEFT OUTER JOIN holds ON holds.ref = ?"
                     " WHERE accounts.user_id = ?")
    OPEN_LOTS = ("SELECT grants.id, grants.remaining, grants.expires_at FROM grants"
                 " WHERE grants.user_id = ? AND grants.remaining > 0"
                 " ORDER BY grants.expires_at ASC NULLS LAST, grants.id")
    INSERT_HOLD = ("INSERT INTO holds (user_id, ref, credits, status, spent, created_at,"
                   " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id")
    SET_REMAINING = "UPDATE grants SET remaining=? WHERE grants.id = ?"
    INSERT_PARTS = "INSERT INTO hold_parts (hold_id, grant_id, credits) VALUES (?, ?, ?)"
    INSERT_LEDGER = f"INSERT INTO ledger ({LEDGER_COLUMNS}) VALUES ({', '.join('?' * 14)})"
    # The guarded relative update (wallet._book.save): deltas, then the counters as locked.
    SAVE = ("UPDATE accounts SET available=(accounts.available + ?),"
            " held=(accounts.held + ?), debt=(accounts.debt + ?)"
            " WHERE accounts.user_id = ? AND accounts.available = ? AND accounts.held = ?"
            " AND accounts.debt = ?")
    LOCK_HOLD = (f"SELECT {HOLD_COLUMNS}, accounts.available, accounts.held, accounts.debt"
                 " FROM holds JOIN accounts ON accounts.user_id = holds.user_id"
                 " WHERE holds.id = ?")
    FINISH = "UPDATE holds SET status=?, spent=?, finished_at=? WHERE holds.id = ?"


def sqlite_time(dt: datetime) -> str:
    """A naive UTC instant as SQLAlchemy's SQLite DATETIME stores it."""
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")


def sqlite_now() -> tuple[datetime, str]:
    now = datetime.now(UTC).replace(tzinfo=None)
    return now, sqlite_time(now)


class AiosqliteFloor(SqliteSql):
    """Floor (a): aiosqlite, one await (one hop to the connection's thread) per statement."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._idle: list[aiosqlite.Connection] = []  # FIFO, grown on demand like QueuePool
        self._all: list[aiosqlite.Connection] = []
        self._lock = asyncio.Lock()  # core.db's in-process writer queue
        self.trace: list[str] | None = None

    async def open(self) -> None:
        pass  # connections are made on first use, as SQLAlchemy's pool makes them

    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self._path, timeout=SQLITE_BUSY_MS / 1000,
                                     isolation_level=None)
        for pragma in SQLITE_PRAGMAS:
            await db.execute(f"PRAGMA {pragma}")
        self._all.append(db)
        return db

    async def close(self) -> None:
        for db in self._all:
            await db.close()

    def _t(self, sql: str) -> str:
        if self.trace is not None:
            self.trace.append(sql)
        return sql

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:  # under the lock one connection is all that is ever used
            db = self._idle.pop(0) if self._idle else await self._connect()
            try:
                await db.execute(self._t(self.BEGIN))
                try:
                    yield db
                except BaseException:
                    await db.rollback()
                    raise
                await db.commit()
            finally:
                self._idle.append(db)

    async def _many(self, db: aiosqlite.Connection, sql: str,
                    rows: Sequence[Sequence[Any]]) -> None:
        # As SQLAlchemy does: one row is an execute(), several an executemany().
        if len(rows) == 1:
            await db.execute(self._t(sql), rows[0])
        elif rows:
            await db.executemany(self._t(sql), rows)

    async def hold(self, user_id: int, ref: str) -> int:
        now_dt, now = sqlite_now()
        async with self._tx() as db:
            locked = await db.execute_fetchall(self._t(self.LOCK_WITH_REF), (ref, user_id))
            if not locked:
                raise FloorError(f"no account {user_id}")
            lots = await db.execute_fetchall(self._t(self.OPEN_LOTS), (user_id,))
            p = plan_hold(user_id, next(iter(locked)), list(lots), now, ref)
            cur = await db.execute(self._t(self.INSERT_HOLD), (
                user_id, ref, CREDITS, "active", None, now, sqlite_time(now_dt + TTL)))
            returned = await cur.fetchone()
            assert returned is not None
            hold_id: int = returned[0]
            await self._many(db, self.SET_REMAINING, p.changes)
            await self._many(db, self.INSERT_PARTS, [(hold_id, g, c) for g, c in p.parts])
            p.entries[-1][10] = hold_id
            await self._many(db, self.INSERT_LEDGER, p.entries)
            saved((await db.execute(self._t(self.SAVE), save_args(p, user_id))).rowcount)
        return hold_id

    async def settle(self, hold_id: int) -> None:
        _, now = sqlite_now()
        async with self._tx() as db:
            rows = await db.execute_fetchall(self._t(self.LOCK_HOLD), (hold_id,))
            if not rows:
                raise FloorError(f"no hold {hold_id}")
            _, user_id, ref, credits, status, _, _, _, _, available, held, debt = next(iter(rows))
            if status != "active":
                raise FloorError(f"hold {hold_id} is {status}")
            # A full settle spends it all; nothing goes back to the lots.
            await db.execute(self._t(self.FINISH), ("settled", credits, now, hold_id))
            await db.execute(self._t(self.INSERT_LEDGER), (
                user_id, "settle", 0, -credits, 0, available, held - credits, debt, ref, None,
                hold_id, None, None, now))
            saved((await db.execute(self._t(self.SAVE), settle_save_args(
                user_id, credits, available, held, debt))).rowcount)


class Sqlite3Floor(SqliteSql):
    """Floor (b): the wallet's architecture without SQLAlchemy.

    A stdlib `sqlite3` connection; each whole operation, BEGIN IMMEDIATE to COMMIT, is one
    synchronous call on the event loop's thread under the writer lock (busy_timeout 0, no
    automatic checkpoint), and every `CHECKPOINT_COMMITS` commits a PASSIVE checkpoint runs in
    a worker thread on a connection of its own, exactly as `core.db.write` runs the wallet's
    operations on its twin engine (`SqliteWriter.write_here`, `checkpoint_soon`).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._idle: list[sqlite3.Connection] = []  # FIFO, grown on demand like QueuePool
        self._all: list[sqlite3.Connection] = []
        self._lock = asyncio.Lock()  # core.db's in-process writer queue
        self._commits = 0  # since the last checkpoint
        self._checkpoint: asyncio.Future[None] | None = None
        self.trace: list[str] | None = None

    async def open(self) -> None:
        pass  # the connection is made on first use, as the writer's is

    def _connect(self) -> sqlite3.Connection:
        # Used on the event loop's thread, one operation at a time (the writer lock is held).
        db = sqlite3.connect(self._path, timeout=SQLITE_BUSY_MS / 1000, isolation_level=None,
                             check_same_thread=False)
        for pragma in SQLITE_PRAGMAS:
            db.execute(f"PRAGMA {pragma}")
        db.execute("PRAGMA busy_timeout=0")  # as write_here's connection
        db.execute("PRAGMA wal_autocheckpoint=0")
        self._all.append(db)
        return db

    async def close(self) -> None:
        if self._checkpoint is not None:
            await self._checkpoint
        for db in self._all:
            db.close()

    def _t(self, sql: str) -> str:
        if self.trace is not None:
            self.trace.append(sql)
        return sql

    @contextmanager
    def _tx(self, db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        db.execute(self._t(self.BEGIN))
        try:
            yield db
        except BaseException:
            db.rollback()
            raise
        db.commit()

    def _call(self, op: Any, *args: Any) -> Any:
        """On the event loop's thread: check a connection out, run the operation, check it in."""
        db = self._idle.pop(0) if self._idle else self._connect()
        try:
            return op(db, *args)
        finally:
            self._idle.append(db)

    async def _run(self, op: Any, *args: Any) -> Any:
        async with self._lock:  # under the lock one connection is all that is ever used
            result = self._call(op, *args)
        self._commits += 1
        if self._commits >= CHECKPOINT_COMMITS and (
                self._checkpoint is None or self._checkpoint.done()):
            self._commits = 0
            self._checkpoint = asyncio.get_running_loop().run_in_executor(None, self._wal)
        return result

    def _wal(self) -> None:
        """In a worker thread: copy the WAL into the database file, as the writer does."""
        db = sqlite3.connect(self._path, timeout=SQLITE_BUSY_MS / 1000, isolation_level=None)
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def _many(self, db: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if len(rows) == 1:
            db.execute(self._t(sql), rows[0])
        elif rows:
            db.executemany(self._t(sql), rows)

    def _hold(self, db: sqlite3.Connection, user_id: int, ref: str) -> int:
        now_dt, now = sqlite_now()
        with self._tx(db):
            locked = db.execute(self._t(self.LOCK_WITH_REF), (ref, user_id)).fetchone()
            if locked is None:
                raise FloorError(f"no account {user_id}")
            lots = db.execute(self._t(self.OPEN_LOTS), (user_id,)).fetchall()
            p = plan_hold(user_id, locked, lots, now, ref)
            hold_id: int = db.execute(self._t(self.INSERT_HOLD), (
                user_id, ref, CREDITS, "active", None, now, sqlite_time(now_dt + TTL))
            ).fetchone()[0]
            self._many(db, self.SET_REMAINING, p.changes)
            self._many(db, self.INSERT_PARTS, [(hold_id, g, c) for g, c in p.parts])
            p.entries[-1][10] = hold_id
            self._many(db, self.INSERT_LEDGER, p.entries)
            saved(db.execute(self._t(self.SAVE), save_args(p, user_id)).rowcount)
        return hold_id

    def _settle(self, db: sqlite3.Connection, hold_id: int) -> None:
        _, now = sqlite_now()
        with self._tx(db):
            row = db.execute(self._t(self.LOCK_HOLD), (hold_id,)).fetchone()
            if row is None:
                raise FloorError(f"no hold {hold_id}")
            _, user_id, ref, credits, status, _, _, _, _, available, held, debt = row
            if status != "active":
                raise FloorError(f"hold {hold_id} is {status}")
            db.execute(self._t(self.FINISH), ("settled", credits, now, hold_id))
            db.execute(self._t(self.INSERT_LEDGER), (
                user_id, "settle", 0, -credits, 0, available, held - credits, debt, ref, None,
                hold_id, None, None, now))
            saved(db.execute(self._t(self.SAVE), settle_save_args(
                user_id, credits, available, held, debt)).rowcount)

    async def hold(self, user_id: int, ref: str) -> int:
        hold_id: int = await self._run(self._hold, user_id, ref)
        return hold_id

    async def settle(self, hold_id: int) -> None:
        await self._run(self._settle, hold_id)


# --------------------------------------------------------------------------------------------
# The floor on PostgreSQL: asyncpg, a pool of the engine's size, one tx per operation.


class PgFloor:
    # What SQLAlchemy renders on PostgreSQL, verbatim, casts included. The ledger table has
    # implicit_returning=False, so for a one-row insert SQLAlchemy first fetches the id from
    # the sequence (its own round trip) and then inserts it; several rows go in one
    # executemany without the id.
    LOCK_WITH_REF = (f"SELECT accounts.available, accounts.held, accounts.debt, {HOLD_COLUMNS}"
                     " FROM accounts LEFT OUTER JOIN holds ON holds.ref = $1::VARCHAR"
                     " WHERE accounts.user_id = $2::BIGINT FOR UPDATE OF accounts")
    OPEN_LOTS = ("SELECT grants.id, grants.remaining, grants.expires_at FROM grants"
                 " WHERE grants.user_id = $1::BIGINT AND grants.remaining > 0"
                 " ORDER BY grants.expires_at ASC NULLS LAST, grants.id")
    INSERT_HOLD = ("INSERT INTO holds (user_id, ref, credits, status, spent, created_at,"
                   " expires_at) VALUES ($1::BIGINT, $2::VARCHAR, $3::BIGINT, $4::VARCHAR,"
                   " $5::BIGINT, $6::TIMESTAMP WITHOUT TIME ZONE,"
                   " $7::TIMESTAMP WITHOUT TIME ZONE) RETURNING holds.id")
    SET_REMAINING = "UPDATE grants SET remaining=$1::BIGINT WHERE grants.id = $2::BIGINT"
    INSERT_PARTS = ("INSERT INTO hold_parts (hold_id, grant_id, credits)"
                    " VALUES ($1::BIGINT, $2::BIGINT, $3::BIGINT)")
    _LEDGER_TYPES = ("BIGINT", "VARCHAR", *("BIGINT",) * 6, "VARCHAR", "BIGINT", "BIGINT",
                     "VARCHAR", "VARCHAR", "TIMESTAMP WITHOUT TIME ZONE")
    INSERT_LEDGER_MANY = (
        f"INSERT INTO ledger ({LEDGER_COLUMNS}) VALUES ("
        + ", ".join(f"${i}::{t}" for i, t in enumerate(_LEDGER_TYPES, 1)) + ")")
    SAVE = ("UPDATE accounts SET available=(accounts.available + $1::BIGINT),"
            " held=(accounts.held + $2::BIGINT), debt=(accounts.debt + $3::BIGINT)"
            " WHERE accounts.user_id = $4::BIGINT AND accounts.available = $5::BIGINT"
            " AND accounts.held = $6::BIGINT AND accounts.debt = $7::BIGINT")
    LOCK_HOLD = (f"SELECT {HOLD_COLUMNS}, accounts.available, accounts.held, accounts.debt"
                 " FROM holds JOIN accounts ON accounts.user_id = holds.user_id"
                 " WHERE holds.id = $1::BIGINT FOR UPDATE")
    FINISH = ("UPDATE holds SET status=$1::VARCHAR, spent=$2::BIGINT,"
              " finished_at=$3::TIMESTAMP WITHOUT TIME ZONE WHERE holds.id = $4::BIGINT")

    def __init__(self, url: str, size: int) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(
            hide_password=False)
        self._size = size
        self._pool: Any = None
        self.trace: list[str] | None = None

    async def open(self) -> None:
        async def no_reset(_conn: Any) -> None:
            # SQLAlchemy's pool sends nothing on return after a commit (its asyncpg adapter's
            # rollback is a no-op outside a transaction); asyncpg's default reset would add a
            # round trip.
            return None

        self._pool = await asyncpg.create_pool(self._dsn, min_size=self._size,
                                               max_size=self._size, reset=no_reset)

    async def close(self) -> None:
        await self._pool.close()

    def _t(self, sql: str) -> str:
        if self.trace is not None:
            self.trace.append(sql)
        return sql

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Any]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield conn

    async def _many(self, conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if len(rows) == 1:
            await conn.execute(self._t(sql), *rows[0])
        elif rows:
            await conn.executemany(self._t(sql), rows)

    async def _ledger(self, conn: Any, rows: Sequence[Sequence[Any]]) -> None:
        await self._many(conn, self.INSERT_LEDGER_MANY, rows)

    async def hold(self, user_id: int, ref: str) -> int:
        now = datetime.now(UTC).replace(tzinfo=None)
        async with self._tx() as conn:
            locked = await conn.fetchrow(self._t(self.LOCK_WITH_REF), ref, user_id)
            if locked is None:
                raise FloorError(f"no account {user_id}")
            lots = await conn.fetch(self._t(self.OPEN_LOTS), user_id)
            p = plan_hold(user_id, locked, lots, now, ref)
            hold_id: int = await conn.fetchval(self._t(self.INSERT_HOLD), user_id, ref, CREDITS,
                                               "active", None, now, now + TTL)
            await self._many(conn, self.SET_REMAINING, p.changes)
            await self._many(conn, self.INSERT_PARTS, [(hold_id, g, c) for g, c in p.parts])
            p.entries[-1][10] = hold_id
            await self._ledger(conn, p.entries)
            saved(int((await conn.execute(self._t(self.SAVE), *save_args(p, user_id)))
                      .split()[-1]))
        return hold_id

    async def settle(self, hold_id: int) -> None:
        now = datetime.now(UTC).replace(tzinfo=None)
        async with self._tx() as conn:
            row = await conn.fetchrow(self._t(self.LOCK_HOLD), hold_id)
            if row is None:
                raise FloorError(f"no hold {hold_id}")
            if row["status"] != "active":
                raise FloorError(f"hold {hold_id} is {row['status']}")
            user_id, credits, held = row["user_id"], row["credits"], row["held"] - row["credits"]
            await conn.execute(self._t(self.FINISH), "settled", credits, now, hold_id)
            await self._ledger(conn, [(user_id, "settle", 0, -credits, 0, row["available"], held,
                                       row["debt"], row["ref"], None, hold_id, None, None, now)])
            saved(int((await conn.execute(self._t(self.SAVE), *settle_save_args(
                user_id, credits, row["available"], row["held"], row["debt"]))).split()[-1]))


# --------------------------------------------------------------------------------------------
# Running, checking, reporting.


class AuditFailed(RuntimeError):
    pass


class NoServer(RuntimeError):
    pass


@dataclass
class Row:
    database: str
    mode: str
    floor: str  # which floor this row compares the wallet with
    wallet: list[float]  # pairs/s per round (shared by the rows of one mode)
    floors: list[float]
    pairs: int = 0
    targets: list[tuple[str, float, float]] = field(default_factory=list)  # (label, value, min)
    note: str = ""


async def run_pairs(maker: PairMaker, users: Sequence[int], pairs: int, tag: str,
                    concurrent: bool) -> float:
    """Runs `pairs` hold→settle pairs; returns pairs per second."""

    async def one(user_id: int, ref: str) -> None:
        await maker.settle(await maker.hold(user_id, ref))

    async def per_user(k: int, user_id: int, n: int) -> None:
        for i in range(n):
            await one(user_id, f"{tag}:{k}:{i}")

    start = time.perf_counter()
    if concurrent:
        share, extra = divmod(pairs, len(users))
        await asyncio.gather(*(per_user(k, u, share + (k < extra)) for k, u in enumerate(users)))
    else:
        for i in range(pairs):
            await one(users[i % len(users)], f"{tag}:{i}")
    return pairs / (time.perf_counter() - start)


async def counts(engine: AsyncEngine) -> tuple[int, int, int]:
    async with engine.connect() as conn:
        row = (await conn.execute(text(
            "SELECT (SELECT COUNT(*) FROM holds WHERE status = 'settled'),"
            " (SELECT COUNT(*) FROM hold_parts), (SELECT COUNT(*) FROM ledger)"))).one()
    return int(row[0]), int(row[1]), int(row[2])


async def checked(engine: AsyncEngine, label: str, pairs: int, work: Awaitable[float]) -> float:
    """Awaits `work`, then proves it wrote what `pairs` full pairs write and broke no invariant."""
    before = await counts(engine)
    rate = await work
    after = await counts(engine)
    grown = tuple(a - b for a, b in zip(after, before, strict=True))
    # Every hold draws from one lot (the big expiring grant), so one part per hold.
    if grown != (pairs, pairs, 2 * pairs):
        raise AuditFailed(f"{label}: expected +{pairs} settled holds, +{pairs} hold parts, "
                          f"+{2 * pairs} ledger rows; got {grown}")
    violations = await Wallet(engine).audit()
    if violations:
        shown = "\n  ".join(str(v) for v in violations[:10])
        raise AuditFailed(f"{label}: audit found {len(violations)} violations:\n  {shown}")
    return rate


async def statement_check(engine: AsyncEngine, makers: dict[str, PairMaker],
                          users: Sequence[int], key: str) -> int:
    """Runs one audited pair per side with its SQL recorded; all lists must be identical.

    The wallet's statements are caught with a before_cursor_execute listener on the async
    engine and on its SQLite twin (where `write` executes on SQLite). Returns the number of
    statements in a pair.
    """
    engines = [engine.sync_engine]
    twin = sqlite_twin(engine)
    if twin is not None:
        engines.append(twin)
    seen: dict[str, list[str]] = {}
    for name, maker in makers.items():
        trace: list[str] = []

        async def one_pair(maker: PairMaker = maker, name: str = name,
                           trace: list[str] = trace) -> float:
            # Recording only around the pair: `checked` reads counts and audits afterwards.
            def listen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                # A checkpoint (a worker thread's, every so many commits) is housekeeping
                # that may land inside the recorded pair, not one of its statements.
                if not statement.startswith("PRAGMA wal_checkpoint"):
                    trace.append(statement)

            wallet = isinstance(maker, WalletPairs)
            for e in engines if wallet else ():
                event.listen(e, "before_cursor_execute", listen)
            maker.trace = None if wallet else trace
            try:
                return await run_pairs(maker, users[:1], 1, f"{key}:{name}:check", False)
            finally:
                maker.trace = None
                for e in engines if wallet else ():
                    event.remove(e, "before_cursor_execute", listen)

        await checked(engine, f"{key} {name} statement check", 1, one_pair())
        seen[name] = [same_sql(s) for s in trace]
    want = seen["wallet"]
    for name, got in seen.items():
        if got != want:
            pairs = itertools.zip_longest(want, got, fillvalue="(none)")
            diff = "\n".join(f"  {i:2}: wallet {w!r}\n      {name:<6} {g!r}"
                             for i, (w, g) in enumerate(pairs) if w != g)
            raise AuditFailed(f"{key}: the {name} floor does not issue the wallet's statements "
                              f"(update bench/wallet.py):\n{diff}")
    return len(want)


async def fund_users(wallet: Wallet, n: int, name: str) -> list[int]:
    users = []
    soon = datetime.now(UTC) + timedelta(days=30)
    for i in range(n):
        uid = await wallet.open_account("bench", f"{name}-{i}")
        await wallet.grant(uid, FUND, source="bench", key=f"bench:{uid}:forever")
        await wallet.grant(uid, FUND, source="bench", key=f"bench:{uid}:expiring",
                           expires_at=soon)
        users.append(uid)
    return users


async def compare(engine: AsyncEngine, floors: dict[str, PairMaker], database: str, mode: str,
                  users: Sequence[int], args: argparse.Namespace,
                  concurrent: bool) -> list[Row]:
    """Checks statements, warms every side up, then times `args.rounds` rotating rounds."""
    makers: dict[str, PairMaker] = {"wallet": WalletPairs(Wallet(engine)), **floors}
    key = f"{database}/{mode}".replace(" ", "_")
    n = await statement_check(engine, makers, users, key)
    print(f"  {database:<10} {mode:<10} statement check: wallet and {', '.join(floors)} floor "
          f"issue the same {n} statements per pair", flush=True)
    for name, maker in makers.items():
        await checked(engine, f"{key} {name} warm-up", args.warmup,
                      run_pairs(maker, users, args.warmup, f"{key}:{name}:warm", concurrent))
    rates: dict[str, list[float]] = {name: [] for name in makers}
    names = list(makers)
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            rate = await checked(engine, f"{key} {name} round {r + 1}", args.pairs, run_pairs(
                makers[name], users, args.pairs, f"{key}:{name}:{r}", concurrent))
            rates[name].append(rate)
            print(f"  {database:<10} {mode:<10} round {r + 1} {name:<9} "
                  f"{rate:8.0f} pairs/s", flush=True)
    return [Row(database, mode, name, rates["wallet"], rates[name], args.pairs)
            for name in floors]


def ratio(row: Row) -> float:
    return statistics.median(row.wallet) / statistics.median(row.floors)


async def bench_sqlite(args: argparse.Namespace, rows: list[Row]) -> None:
    with tempfile.TemporaryDirectory(prefix="videofly-bench-") as tmp:
        path = Path(tmp) / "wallet.db"
        engine = create_engine(f"sqlite+aiosqlite:///{path}", pool_size=args.users,
                               max_overflow=0)
        strict, loose = Sqlite3Floor(path), AiosqliteFloor(path)
        floors: dict[str, PairMaker] = {"sqlite3": strict, "aiosqlite": loose}
        try:
            await migrate.upgrade(engine)
            users = await fund_users(Wallet(engine), args.users, "sqlite")
            await strict.open()
            await loose.open()
            seq = await compare(engine, floors, "sqlite", "sequential", users, args, False)
            for row in seq:
                if row.floor == "sqlite3":
                    row.targets = [("ratio", ratio(row), TARGET_RATIO),
                                   ("wallet pairs/s", statistics.median(row.wallet),
                                    TARGET_SQLITE_PAIRS)]
                    row.note = "judged: same architecture as the wallet"
                else:
                    row.note = "informative: lenient floor (a hop per statement)"
            rows.extend(seq)
            if args.sqlite_concurrent:
                conc = await compare(engine, floors, "sqlite", f"{args.users} tasks", users, args,
                                     True)
                for row in conc:
                    row.note = "informative"
                rows.extend(conc)
        finally:
            await strict.close()
            await loose.close()
            await engine.dispose()


async def bench_pg(args: argparse.Namespace, rows: list[Row]) -> None:
    try:
        url = await create_pg_database(args.pg_url, "bench")
    except Exception as exc:
        raise NoServer(f"cannot create a database next to {args.pg_url}: "
                       f"{type(exc).__name__}: {exc} (use --skip-pg to bench SQLite only)"
                       ) from exc
    try:
        engine = create_engine(url, pool_size=args.users, max_overflow=0)
        floor = PgFloor(url, args.users)
        try:
            await migrate.upgrade(engine)
            users = await fund_users(Wallet(engine), args.users, "pg")
            await floor.open()
            (row,) = await compare(engine, {"asyncpg": floor}, "postgresql",
                                   f"{args.users} users", users, args, True)
            row.targets = [("ratio", ratio(row), TARGET_RATIO)]
            row.note = "judged"
            rows.append(row)
        finally:
            await floor.close()
            await engine.dispose()
    finally:
        await drop_pg_database(url)


def report(rows: list[Row], rounds: int) -> None:
    print()
    print(f"hold→settle pairs/s, median of {rounds} rounds (min–max in brackets); "
          f"ratio = wallet median / floor median")
    head = (f"{'database':<10} {'mode':<10} {'floor':<9} {'pairs':>5} {'wallet':>19} "
            f"{'floor':>19} {'ratio':>5}  targets")
    print(head)
    print("-" * (len(head) + 40))

    def cell(xs: list[float]) -> str:
        return f"{statistics.median(xs):5.0f} [{min(xs):5.0f}–{max(xs):5.0f}]"

    for r in rows:
        marks = ", ".join(f"{label} {'PASS' if value >= goal else 'FAIL'}"
                          for label, value, goal in r.targets)
        marks = f"{marks} ({r.note})" if marks else f"({r.note})"
        print(f"{r.database:<10} {r.mode:<10} {r.floor:<9} {r.pairs:>5} {cell(r.wallet):>19} "
              f"{cell(r.floors):>19} {ratio(r):5.2f}  {marks}")
    print()
    for r in rows:
        for label, value, goal in r.targets:
            shown = f"{value:.2f}" if label == "ratio" else f"{value:,.0f}"
            need = f"{goal:.2f}" if label == "ratio" else f"{goal:,.0f}"
            against = f" vs the {r.floor} floor" if label == "ratio" else ""
            print(f"{'PASS' if value >= goal else 'FAIL'}  {r.database} {r.mode}: {label}"
                  f"{against} {shown} (target >= {need})")
    for r in rows:
        if r.database == "sqlite" and r.mode == "sequential" and r.floor == "aiosqlite":
            print(f"      (sqlite sequential: ratio vs the aiosqlite floor {ratio(r):.2f}, "
                  f"for information; the target is judged against the sqlite3 floor)")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--pairs", type=int, default=1000,
                    help="pairs per timed run (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="timed runs of each side, order rotating (default %(default)s)")
    ap.add_argument("--warmup", type=int, default=200,
                    help="untimed pairs before timing, for each side (default %(default)s)")
    ap.add_argument("--users", type=int, default=16,
                    help="users; also the pool size and PostgreSQL concurrency (default 16)")
    ap.add_argument("--pg-url", default=DEFAULT_PG_URL,
                    help="a PostgreSQL server URL; a fresh database is created next to it and "
                         "dropped afterwards (default %(default)s)")
    ap.add_argument("--skip-pg", action="store_true", help="bench SQLite only")
    ap.add_argument("--skip-sqlite", action="store_true", help="bench PostgreSQL only")
    ap.add_argument("--no-sqlite-concurrent", dest="sqlite_concurrent", action="store_false",
                    help="skip the informative SQLite run with one task per user")
    args = ap.parse_args(argv)
    if args.pairs < 1 or args.rounds < 1 or args.users < 1 or args.warmup < 0:
        ap.error("--pairs, --rounds and --users must be positive, --warmup not negative")
    return args


async def amain(args: argparse.Namespace) -> int:
    rows: list[Row] = []
    t0 = time.perf_counter()
    try:
        if not args.skip_sqlite:
            await bench_sqlite(args, rows)
        if not args.skip_pg:
            await bench_pg(args, rows)
    except (AuditFailed, FloorError) as exc:
        print(f"\nAUDIT FAILED — the figures below are not trustworthy:\n{exc}",
              file=sys.stderr)
        if rows:
            report(rows, args.rounds)
        return 1
    except NoServer as exc:
        print(f"\nPostgreSQL skipped: {exc}", file=sys.stderr)
        report(rows, args.rounds)
        return 2
    report(rows, args.rounds)
    print(f"\n(total {time.perf_counter() - t0:.1f} s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(amain(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
