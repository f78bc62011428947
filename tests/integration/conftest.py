"""Fixtures shared by several integration test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import FakeClock
from tests.integration.test_payments_stack import PayStack, pay_stack
from wallet import Wallet


@pytest.fixture
async def pay(engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient,
              clock: FakeClock, tmp_path: Path) -> AsyncIterator[PayStack]:
    """Payments over the test database, served by the real web app, with fake Stripe/Creem."""
    async with pay_stack(engine, wallet, http, clock, tmp_path) as built:
        yield built
