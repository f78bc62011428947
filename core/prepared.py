"""Hot statements, compiled once per dialect and run on the DBAPI cursor.

Why: `Connection.execute(<Core statement>)` costs 9–16 µs of SQLAlchemy per statement (cache
key, execution context, parameter and result set-up) where the driver needs 1–3 µs, and a
hold→settle pair is a dozen statements, so the wallet ran at half the speed of the same SQL
written by hand (bench/wallet.py); a WeChat message's seven statements were a third of its CPU
(bench/wechat.py profile). A `Prepared` statement is still defined in SQLAlchemy Core (its SQL
is Core's own compilation, so it cannot drift from the tables), converts values with each
column type's own bind and result processors (SQLite's datetime text format included), and
runs inside the caller's SQLAlchemy transaction on that transaction's DBAPI connection. It fires
the engine's `before_cursor_execute` listeners, so statement instrumentation still sees it, and
a driver error comes out as SQLAlchemy's own (`sqlalchemy.exc.IntegrityError` for a unique key),
as from `Connection.execute`.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler

from .db import fire_before_execute

__all__ = ["Prepared"]

_Processor = Callable[[Any], Any] | None


def _row_type(names: list[str]) -> Any:
    return namedtuple("Row", names)


class _Compiled:
    __slots__ = ("constants", "convert", "order", "plain", "results", "row", "sql", "steps")

    def __init__(self, stmt: ClauseElement, columns: Sequence[ColumnElement[Any]],
                 dialect: Dialect) -> None:
        # A statement without result columns runs as DML: no implicit RETURNING of the key.
        compiled = cast(SQLCompiler, stmt.compile(dialect=dialect, for_executemany=not columns))
        self.sql = compiled.string
        names = compiled.positiontup
        if names is None:
            raise TypeError(f"{type(dialect).__name__} is not a positional dialect")
        self.order = tuple(names)
        # The dialect's form of each type: a TypeDecorator's wraps its implementation's own
        # conversion (SQLite keeps datetimes as text, for one).
        processors = {n: compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect)
                      for n in self.order}
        # Literals in the statement (`coalesce(…, 0)`) are parameters that carry their value:
        # converted here, once.
        self.constants = {n: _apply(processors[n], compiled.binds[n].effective_value)
                          for n in self.order if _literal(compiled.binds[n])}
        # Each other name converted once, even where the SQL repeats it (a `now` in three
        # places).
        self.steps = tuple((n, p) for n, p in processors.items() if n not in self.constants)
        # The usual case: each parameter once, none a literal; its values are the steps'.
        self.plain = len(self.steps) == len(self.order)
        self.results: tuple[_Processor, ...] = tuple(
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
        self.convert = any(self.results)
        self.row = _row_type([str(c.key) for c in columns]) if columns else None

    def bind(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        if self.plain:
            return tuple([p(params[n]) if p else params[n] for n, p in self.steps])
        by_name = dict(self.constants)
        for n, p in self.steps:
            by_name[n] = p(params[n]) if p else params[n]
        return tuple([by_name[n] for n in self.order])

    def make_row(self, raw: Sequence[Any]) -> Any:
        assert self.row is not None
        if not self.convert:
            return self.row._make(raw)
        return self.row._make([p(v) if p else v
                               for p, v in zip(self.results, raw, strict=True)])


def _literal(bind: Any) -> bool:
    return not bind.required and bind.callable is None and bind.value is not None


def _apply(processor: _Processor, value: Any) -> Any:
    return processor(value) if processor else value


class Prepared:
    """A fixed Core statement, run on the DBAPI cursor of the connection it is given."""

    __slots__ = ("_by_dialect", "_columns", "_stmt")

    def __init__(self, stmt: ClauseElement,
                 columns: Iterable[ColumnElement[Any]] | None = None) -> None:
        self._stmt = stmt
        selected = getattr(stmt, "selected_columns", None)
        self._columns: tuple[ColumnElement[Any], ...] = tuple(
            columns if columns is not None else (selected if selected is not None else ()))
        self._by_dialect: dict[type[Dialect], _Compiled] = {}

    def _compiled(self, conn: Connection) -> _Compiled:
        dialect = conn.dialect
        found = self._by_dialect.get(type(dialect))
        if found is None:
            found = self._by_dialect[type(dialect)] = _Compiled(self._stmt, self._columns,
                                                                 dialect)
        return found

    def _cursor(self, conn: Connection, sql: str, params: Any, many: bool) -> Any:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        fire_before_execute(conn, cursor, sql, params, many)
        return cursor

    @staticmethod
    def _execute(conn: Connection, cursor: Any, sql: str, args: Any, many: bool) -> None:
        try:
            (cursor.executemany if many else cursor.execute)(sql, args)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(sql, args, exc, conn.dialect.loaded_dbapi.Error,
                                      dialect=conn.dialect) from exc

    def all(self, conn: Connection, **params: Any) -> list[Any]:
        c = self._compiled(conn)
        args = c.bind(params)
        cursor = self._cursor(conn, c.sql, args, False)
        try:
            self._execute(conn, cursor, c.sql, args, False)
            return [c.make_row(r) for r in cursor.fetchall()] if c.row else []
        finally:
            cursor.close()

    def first(self, conn: Connection, **params: Any) -> Any:
        rows = self.all(conn, **params)
        return rows[0] if rows else None

    def scalar(self, conn: Connection, **params: Any) -> Any:
        row = self.first(conn, **params)
        return None if row is None else row[0]

    def run(self, conn: Connection, **params: Any) -> None:
        """Runs a statement without result rows."""
        self.all(conn, **params)

    def count(self, conn: Connection, **params: Any) -> int:
        """Runs a statement without result rows; returns how many rows it changed."""
        c = self._compiled(conn)
        args = c.bind(params)
        cursor = self._cursor(conn, c.sql, args, False)
        try:
            self._execute(conn, cursor, c.sql, args, False)
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        c = self._compiled(conn)
        args = [c.bind(r) for r in rows]
        cursor = self._cursor(conn, c.sql, args, True)
        try:
            self._execute(conn, cursor, c.sql, args, True)
        finally:
            cursor.close()
