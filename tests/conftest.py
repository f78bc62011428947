"""Fixtures: every database test runs on SQLite, or on PostgreSQL when
VIDEOFLY_TEST_DATABASE_URL names one (CI runs the suite both ways). A named PostgreSQL that
cannot be reached stops the run with an error; it is never skipped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core import migrate
from core.db import create_engine
from tests.factories import (
    FakeClock,
    TestDatabase,
    migrated_sqlite_template,
    sqlite_copy,
    test_database_url,
    truncate_all,
)
from tests.fakes import http_client
from wallet import Wallet


@pytest.fixture(scope="session")
def pg_url() -> str | None:
    return test_database_url()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def prepared_database(
    pg_url: str | None, tmp_path_factory: pytest.TempPathFactory,
) -> str | Path:
    """Migrates the session's database once: the PostgreSQL one, or a SQLite template file."""
    if pg_url is None:
        return await migrated_sqlite_template(tmp_path_factory.mktemp("sqlite"))
    engine = create_engine(pg_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        await migrate.upgrade(engine)
    except Exception as exc:
        pytest.exit(f"PostgreSQL named by VIDEOFLY_TEST_DATABASE_URL is unusable: "
                    f"{type(exc).__name__}: {exc}", returncode=3)
    finally:
        await engine.dispose()
    return pg_url


@pytest.fixture
async def database(prepared_database: str | Path, tmp_path: Path) -> AsyncIterator[TestDatabase]:
    """A migrated, empty database for this test alone."""
    if isinstance(prepared_database, Path):
        yield sqlite_copy(prepared_database, tmp_path)
        return
    db = TestDatabase(prepared_database)
    engine = db.engine()
    await truncate_all(engine)
    await engine.dispose()
    yield db


@pytest.fixture
async def engine(database: TestDatabase) -> AsyncIterator[AsyncEngine]:
    eng = database.engine(pool_size=10, max_overflow=10)
    yield eng
    await eng.dispose()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The shared outbound HTTP client, as the application builds it, for tests of clients."""
    async with http_client() as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def wallet(engine: AsyncEngine, clock: FakeClock) -> AsyncIterator[Wallet]:
    w = Wallet(engine, clock=clock)
    yield w
    violations = await w.audit()
    assert not violations, "\n".join(map(str, violations))
