"""`/healthz` answers from the background probe and never queues behind work; `/readyz` makes
its own round trip. Shown with every pooled connection busy: work queues, /healthz does not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import FakeClock, TestDatabase
from tests.integration.test_webhooks_stack import web_stack
from wallet import Wallet
from webhooks.health import HealthProbe


@pytest.fixture
async def one_connection(database: TestDatabase) -> AsyncIterator[AsyncEngine]:
    """An engine whose pool holds a single connection."""
    engine = database.engine(pool_size=1, max_overflow=0)
    yield engine
    await engine.dispose()


async def test_healthz_answers_while_every_connection_is_busy(
    engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient, clock: FakeClock,
    tmp_path: Path, one_connection: AsyncEngine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("webhooks.ops.HEALTH_TIMEOUT_SECONDS", 0.5)
    async with web_stack(engine, wallet, http, clock, tmp_path,
                         health_engine=one_connection) as stack:
        assert (await stack.get("/readyz"))[0] == 200
        async with one_connection.connect():  # the only connection, held by "work"
            assert (await stack.get("/healthz"))[:2] == (200, b'{"status": "ok"}')
            assert (await stack.get("/readyz"))[:2] == (503, b'{"status": "unavailable"}')
        assert (await stack.get("/readyz"))[0] == 200


async def test_healthz_goes_503_once_the_probe_has_failed_too_long(
        one_connection: AsyncEngine) -> None:
    probe = HealthProbe(one_connection, interval=0.05, timeout=0.2, max_age=0.1)
    assert not probe.healthy  # never reached the database yet
    assert await probe.probe()
    assert probe.healthy
    async with one_connection.connect():  # the probe cannot get a connection now
        assert not await probe.probe()
        probe.last_ok = (probe.last_ok or 0) - 1.0  # its last success, a second ago
        assert not probe.healthy
    assert await probe.probe()
    assert probe.healthy
