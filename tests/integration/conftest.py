"""Fixtures shared by several integration test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from tests.factories import FakeClock, create_pg_database, drop_pg_database
from tests.integration.test_payments_stack import PayStack, pay_stack
from wallet import Wallet


@pytest.fixture
async def pay(engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient,
              clock: FakeClock, tmp_path: Path) -> AsyncIterator[PayStack]:
    """Payments over the test database, served by the real web app, with fake Stripe/Creem."""
    async with pay_stack(engine, wallet, http, clock, tmp_path) as built:
        yield built


@pytest.fixture
async def empty_engine(pg_url: str | None, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on a database with no tables at all: a new SQLite file, or a new PostgreSQL
    database dropped afterwards."""
    if pg_url is None:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
        yield engine
        await engine.dispose()
        return
    url = await create_pg_database(pg_url, "empty")
    engine = create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()
        await drop_pg_database(url)
