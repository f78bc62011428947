"""SQLite specifics: connection pragmas, the BEGIN hook, and the process's one writer.

SQLite admits one writer at a time. Inside a process the writers queue on an asyncio lock (they
wake the moment it is free, where SQLite's busy handler sleeps in steps of up to 100 ms); other
processes queue on the busy timeout. `SqliteWriter` runs a whole write operation on a
synchronous "twin" engine of the same file, through one dedicated connection: under the lock
there is never a second writer to need another, so no pool checkout per operation.
`write_here` runs it on the calling thread (the event loop's) on a connection whose busy
timeout is 0 and that never checkpoints: when another process holds the write lock it raises
`Busy` before the operation starts, and the caller runs it with `transaction` in a worker
thread, which waits; `checkpoint` (PASSIVE: it waits for nobody) runs in a worker thread every
so many inline commits (`checkpoint_soon`), since a checkpoint writes and syncs the database
file. A commit itself appends to the WAL and, at `synchronous=NORMAL`, does not sync.

`read_here` runs a small read on the calling thread (the event loop's) with a busy timeout of 0:
a WAL reader takes no lock a writer holds, so it never waits, except in rare cases (recovery, a
connection in exclusive locking mode); then it raises `Busy` at once and the caller reads in a
worker thread instead. `read_here` and `write_here` share one connection (`_here`): both are
synchronous on the same thread, so they never overlap, and a connection's page cache survives
its own commits but is dropped whole at the next BEGIN after any other connection's commit:
with a reader of its own, every inline read after an inline write re-read each page it touched
from the OS (a WeChat message's user read after its claim: 60 µs, 38 on the shared connection,
30 with nothing written before it). Measured under Telegram traffic (bench/telegram.py):
a thread hop for a ~100 µs read cost about 1 ms of CPU and several ms of wall time, because the
worker thread and the busy event loop hand the GIL back and forth at every sqlite3 call.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError, OperationalError

T = TypeVar("T")
READ_ONLY = "videofly_read_only"
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class Busy(Exception):
    """`read_here` would have had to wait for a lock."""


def is_busy(exc: BaseException) -> bool:
    orig = exc.orig if isinstance(exc, OperationalError) else exc
    return isinstance(orig, sqlite3.OperationalError) and \
        getattr(orig, "sqlite_errorcode", None) in _BUSY


def fire_before_execute(conn: Connection, cursor: Any, sql: str, params: Any,
                        many: bool) -> None:
    """Tells the engine's `before_cursor_execute` listeners about a statement we run on the
    DBAPI cursor ourselves, so instrumentation sees every statement."""
    if has_events(conn):
        for listener in conn.dispatch.before_cursor_execute:
            listener(conn, cursor, sql, params, None, many)


def has_events(conn: Connection) -> bool:
    """Whether any connection event listener is set on `conn` or its engine: SQLAlchemy's own
    test before it fires one (its `_has_events` flags, set when a listener is added), a
    fraction of what asking the listener collections costs."""
    return bool(conn._has_events or conn.engine._has_events)


def raw_execute(conn: Connection, sql: str) -> None:
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        fire_before_execute(conn, cursor, sql, (), False)
        cursor.execute(sql)
    finally:
        cursor.close()


_PREPARED = "videofly_prepared"


def _pragmas(dbapi_conn: Any, busy_timeout_ms: int) -> None:
    # None: the driver issues no BEGIN of its own; we do (the hook below, or the writer).
    # Without it, Python's sqlite3 opens a transaction only before the first INSERT/UPDATE, so a
    # write's reads would run outside it and see a state that is stale by the time it writes.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # The busy timeout first: switching to WAL waits on a lock another process may hold.
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def add_pragmas(engine: Engine, busy_timeout_ms: int) -> None:
    """Every connection of `engine` gets our settings before its first use: new ones when they
    connect, and ones already in the pool (an engine prepared after it was first used) at their
    next checkout."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        _pragmas(dbapi_conn, busy_timeout_ms)
        record.info[_PREPARED] = True

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if not record.info.get(_PREPARED):
            _pragmas(dbapi_conn, busy_timeout_ms)
            record.info[_PREPARED] = True


def add_begin_hook(engine: Engine) -> None:
    """Write transactions take the write lock at BEGIN (IMMEDIATE); read-only ones do not."""

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class SqliteWriter:
    """The lock in-process writers queue on, the twin engine, and its writer connection."""

    def __init__(self, twin: Engine | None) -> None:
        self.lock = asyncio.Lock()
        self.twin = twin
        self._conn: Connection | None = None
        # read_here's and write_here's connection: busy timeout 0, no auto-checkpoint.
        self._here: Connection | None = None
        self._here_lock = threading.Lock()  # one thread at a time on it
        self.unchecked = 0  # write_here's commits since the last checkpoint
        self._checkpoint: asyncio.Future[None] | None = None
        self.queued: list[Queued] = []  # writes for the next group commit (`core.db`)
        self.flushing: set[asyncio.Task[None]] = set()  # group commits waiting for the lock

    def _twin(self) -> Engine:
        assert self.twin is not None, "no twin engine for an in-memory database"
        return self.twin

    def transaction(self, op: Callable[[Connection], T]) -> T:
        """Runs `op` in one write transaction; call it in a worker thread holding `lock`."""
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._conn = self._twin().connect()
        conn.begin()  # SQLAlchemy's side; the DBAPI's BEGIN comes next
        try:
            raw_execute(conn, "BEGIN IMMEDIATE")
            result = op(conn)
            conn.commit()
        except BaseException:
            try:
                conn.rollback()
            except Exception:  # the connection is unusable: start afresh next time
                self.close()
            raise
        return result

    def _here_connection(self) -> Connection:
        """The connection `read_here` and `write_here` share; call it holding `_here_lock`."""
        conn = self._here
        if conn is None or conn.closed or conn.invalidated:
            conn = self._here = self._twin().connect()
            raw_execute(conn, "PRAGMA busy_timeout=0")
            # Its commits never checkpoint (a checkpoint writes the database file and syncs
            # it: disk waits, off the event loop); `checkpoint` does, in a worker thread.
            raw_execute(conn, "PRAGMA wal_autocheckpoint=0")
        return conn

    def _drop_here(self, conn: Connection) -> None:
        """Ends what is left of a transaction; an unusable connection is dropped (never back
        to the pool: its busy timeout is 0), and the next call makes a new one."""
        try:
            _end(conn, commit=False)
        except Exception:
            self._here = None
            conn.invalidate()

    def write_here(self, op: Callable[[Connection], T]) -> T:
        """Runs `op` in one write transaction on this thread (the event loop's); call it
        holding `lock`. Raises `Busy`, before `op` runs, when another process holds SQLite's
        write lock (or another thread is on the connection): the caller then writes in a
        worker thread, which waits for it."""
        if not self._here_lock.acquire(blocking=False):
            raise Busy
        try:
            conn = self._here_connection()
            try:
                raw_execute(conn, "BEGIN IMMEDIATE")
            except BaseException as exc:
                self._drop_here(conn)
                if is_busy(exc):
                    raise Busy from None
                raise
            try:
                result = op(conn)
                _end(conn, commit=True)
            except BaseException:
                self._drop_here(conn)
                raise
        finally:
            self._here_lock.release()
        self.unchecked += 1
        return result

    def checkpoint(self) -> None:
        """Copies the WAL's committed pages into the database file without waiting for
        readers or writers (PASSIVE); for a worker thread."""
        with self._twin().connect() as conn:
            raw_execute(conn, "PRAGMA wal_checkpoint(PASSIVE)")

    def checkpoint_soon(self, every: int) -> None:
        """Starts `checkpoint` in a worker thread once `every` commits of `write_here` have
        not been checkpointed, unless one is under way."""
        if self.unchecked < every or (self._checkpoint is not None
                                      and not self._checkpoint.done()):
            return
        self.unchecked = 0
        self._checkpoint = asyncio.get_running_loop().run_in_executor(None, self.checkpoint)
        self._checkpoint.add_done_callback(_quiet)

    def read(self, op: Callable[[Connection], T]) -> T:
        """Runs `op` in a read transaction on a pooled connection (no lock: WAL readers never
        wait for the writer)."""
        with self._twin().connect() as conn:
            conn.begin()
            raw_execute(conn, "BEGIN")
            return op(conn)  # closing rolls the read transaction back

    def read_here(self, op: Callable[[Connection], T]) -> T:
        """Runs `op` in a read transaction on this thread; raises `Busy` instead of waiting
        (also when another thread is using the connection)."""
        if not self._here_lock.acquire(blocking=False):
            raise Busy
        try:
            conn = self._here_connection()
            try:
                raw_execute(conn, "BEGIN")
                return op(conn)
            except BaseException as exc:
                if is_busy(exc):
                    raise Busy from None
                raise
            finally:
                self._drop_here(conn)
        finally:
            self._here_lock.release()

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
        if self._here is not None:
            here, self._here = self._here, None
            here.invalidate()  # not back to the pool with its busy timeout of 0


class Queued(NamedTuple):
    """A write waiting for the next group commit, and the future its caller awaits."""

    op: Callable[[Connection], Any]
    future: asyncio.Future[Any]


def run_batch(conn: Connection, batch: list[Queued]) -> list[tuple[bool, Any]]:
    """A group commit's transaction body: each write, in order, in a savepoint of its own when
    there are several, so one that raises leaves no change behind and the others' changes
    stand; (True, result) or (False, the exception) for each. A lone write is its own
    transaction: its exception ends it, as in `write_here`. An error that ends the whole
    transaction (SQLite rolls it back on a full disk, for one) fails the savepoint's release or
    rollback, and then the whole batch."""
    if len(batch) == 1:
        return [(True, batch[0].op(conn))]
    out: list[tuple[bool, Any]] = []
    for queued in batch:
        raw_execute(conn, "SAVEPOINT batched")
        try:
            result = queued.op(conn)
        except Exception as exc:
            raw_execute(conn, "ROLLBACK TO batched")
            raw_execute(conn, "RELEASE batched")
            out.append((False, exc))
        else:
            raw_execute(conn, "RELEASE batched")
            out.append((True, result))
    return out


def _end(conn: Connection, *, commit: bool) -> None:
    """Commits or rolls back the transaction `write_here`/`read_here` began with a BEGIN of
    their own, on the DBAPI connection: SQLAlchemy's `Connection.begin()`/`commit()` cost
    more Python than SQLite's BEGIN and COMMIT together (three transactions a WeChat message).
    An `op` that ran a statement through `Connection.execute` began SQLAlchemy's own
    transaction (autobegin, which emits nothing on the twin): that one is ended the usual way.
    Otherwise the engine's `commit`/`rollback` listeners are told, as SQLAlchemy would, and a
    driver error comes out as SQLAlchemy's (`DBAPIError`)."""
    if conn.in_transaction():
        (conn.commit if commit else conn.rollback)()
        return
    if has_events(conn):
        (conn.dispatch.commit if commit else conn.dispatch.rollback)(conn)
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    try:
        (dbapi.commit if commit else dbapi.rollback)()
    except sqlite3.Error as exc:
        raise DBAPIError.instance("COMMIT" if commit else "ROLLBACK", (), exc, sqlite3.Error,
                                  dialect=conn.dialect) from exc


def _quiet(future: asyncio.Future[None]) -> None:
    """A checkpoint that failed is tried again after the next commits."""
    if not future.cancelled():
        future.exception()
