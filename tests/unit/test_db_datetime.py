"""`UTCDateTime` on SQLite converts with `isoformat`/`fromisoformat` (core/db.py): the text it
writes must be SQLAlchemy's own storage format byte for byte (SQL compares these texts, and rows
written before the change are read back), and it must read back whatever SQLAlchemy reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime, create_engine, select, text
from sqlalchemy.dialects import postgresql, sqlite

from core.db import UTCDateTime

DIALECT = sqlite.dialect()


def _present(processor: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    assert processor is not None
    return processor


OURS_BIND = _present(UTCDateTime().dialect_impl(DIALECT).bind_processor(DIALECT))
OURS_RESULT = _present(UTCDateTime().dialect_impl(DIALECT).result_processor(DIALECT, None))
SA_BIND = _present(DateTime().dialect_impl(DIALECT).bind_processor(DIALECT))
SA_RESULT = _present(DateTime().dialect_impl(DIALECT).result_processor(DIALECT, None))

aware = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                     timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)),
                                                timezone(timedelta(hours=-5, minutes=-30))]))


@given(aware)
def test_the_text_written_is_sqlalchemys(value: datetime) -> None:
    assert OURS_BIND(value) == SA_BIND(value.astimezone(UTC).replace(tzinfo=None))


@given(aware)
def test_what_is_read_is_what_sqlalchemy_reads(value: datetime) -> None:
    stored = SA_BIND(value.astimezone(UTC).replace(tzinfo=None))
    assert OURS_RESULT(stored) == SA_RESULT(stored).replace(tzinfo=UTC) == value
    assert OURS_RESULT(stored).tzinfo is UTC


@pytest.mark.parametrize("stored", ["2026-12-01 12:08:08", "2026-12-01 00:00:00.000000",
                                    "2026-12-01"])
def test_other_forms_sqlite_itself_writes_read_alike(stored: str) -> None:
    """CURRENT_TIMESTAMP's form (no fraction) and a bare date, as SQLAlchemy reads them."""
    assert OURS_RESULT(stored) == SA_RESULT(stored).replace(tzinfo=UTC)


def test_an_offset_in_the_text_is_honoured_and_none_is_none() -> None:
    assert OURS_RESULT("2026-12-01 20:00:00+08:00") == datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert OURS_RESULT(None) is None
    assert OURS_BIND(None) is None


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        OURS_BIND(datetime(2026, 12, 1))


def test_other_dialects_keep_sqlalchemys_conversion() -> None:
    dialect = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
    bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    value = datetime(2026, 12, 1, 20, tzinfo=timezone(timedelta(hours=8)))
    converted = bind(value) if bind else value
    assert converted == datetime(2026, 12, 1, 12)


def test_a_round_trip_through_sqlite_compares_as_text() -> None:
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (at DATETIME)"))
        early = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)  # microsecond 0: still ".000000"
        late = early + timedelta(microseconds=1)
        for value in (late, early):
            conn.execute(text("INSERT INTO t VALUES (:at)").bindparams(
                at=OURS_BIND(value)))
        stored = conn.execute(text("SELECT at FROM t ORDER BY at")).scalars().all()
        assert stored == ["2026-12-01 12:00:00.000000", "2026-12-01 12:00:00.000001"]
        typed = conn.execute(select(text("at")).select_from(text("t")).where(
            text("at > :x").bindparams(x=OURS_BIND(early)))).scalars().all()
        assert [OURS_RESULT(v) for v in typed] == [late]
