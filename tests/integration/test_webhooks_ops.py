"""`GET /healthz` and `GET /metrics` through the real server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.db import write
from tests.factories import FakeClock
from tests.integration.test_webhooks_stack import Stack, web_stack
from wallet import Wallet


@pytest.fixture
async def stack(engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient,
                clock: FakeClock, tmp_path: Path) -> AsyncIterator[Stack]:
    async with web_stack(engine, wallet, http, clock, tmp_path / "media") as built:
        yield built


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def dead_engine() -> AsyncIterator[AsyncEngine]:
    """An engine whose server refuses every connection."""
    engine = create_async_engine(f"postgresql+asyncpg://nobody@127.0.0.1:{closed_port()}/none")
    yield engine
    await engine.dispose()


@pytest.fixture
async def silent_engine() -> AsyncIterator[AsyncEngine]:
    """An engine whose server accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    engine = create_async_engine(f"postgresql+asyncpg://nobody@127.0.0.1:{port}/none")
    yield engine
    await engine.dispose()
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def scrape(stack: Stack) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics by (name, labels)."""
    status, body, resp = await stack.get("/metrics")
    assert status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples}


def labels(**kw: str) -> frozenset[tuple[str, str]]:
    return frozenset(kw.items())


# --- /healthz ----------------------------------------------------------------------------------


async def test_healthz_is_ok_while_the_database_answers(stack: Stack) -> None:
    status, body, _ = await stack.get("/healthz")
    assert (status, body) == (200, b'{"status": "ok"}')


async def test_healthz_is_503_when_the_database_refuses(
    engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient, clock: FakeClock,
    tmp_path: Path, dead_engine: AsyncEngine,
) -> None:
    async with web_stack(engine, wallet, http, clock, tmp_path,
                         health_engine=dead_engine) as stack:
        status, body, _ = await stack.get("/healthz")
    assert (status, body) == (503, b'{"status": "unavailable"}')


async def test_healthz_is_503_in_time_when_the_database_hangs(
    engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient, clock: FakeClock,
    tmp_path: Path, silent_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("webhooks.ops.HEALTH_TIMEOUT_SECONDS", 0.3)
    async with web_stack(engine, wallet, http, clock, tmp_path,
                         health_engine=silent_engine) as stack:
        started = asyncio.get_running_loop().time()
        status, _, _ = await stack.get("/healthz")
        assert status == 503
        assert asyncio.get_running_loop().time() - started < 3.0


async def test_healthz_does_not_wait_for_a_writer(stack: Stack,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("webhooks.ops.HEALTH_TIMEOUT_SECONDS", 1.0)
    async with write(stack.jobs.engine) as conn:  # a long write transaction is open
        await conn.execute(text("UPDATE jobs SET progress = 1 WHERE id = -1"))
        assert (await stack.get("/healthz"))[0] == 200


async def test_healthz_recovers_once_the_engine_reconnects(stack: Stack) -> None:
    await stack.jobs.engine.dispose()  # every pooled connection closed: the next one is new
    assert (await stack.get("/healthz"))[0] == 200


# --- /metrics ----------------------------------------------------------------------------------


async def test_metrics_count_callbacks_calls_requests_jobs_and_ledger(stack: Stack) -> None:
    _, job = await stack.start("kie-t2v")
    await stack.start("evo-t2v")  # a second job, still generating
    assert job.task_id
    assert await stack.kie.send_callback(job.task_id) == 200
    await stack.idle()
    url = stack.callback_url("kie", job.id)
    await stack.post(url.replace("token=", "token=0"), b"{}")
    await stack.post(url, b"not json")
    await stack.post(url.replace("/kie?", "/nope?"), b"{}")
    await stack.post(url, b"x" * (70 * 1024))
    m = await scrape(stack)

    def callbacks(provider: str, outcome: str) -> float:
        return m[("videofly_callbacks_total", labels(provider=provider, outcome=outcome))]

    assert callbacks("kie", "accepted") == 1
    assert callbacks("kie", "unauthorized") == 1
    assert callbacks("kie", "malformed") == 1
    assert callbacks("kie", "too_large") == 1
    assert callbacks("unknown", "unknown_provider") == 1  # never the name in the URL
    assert not any(dict(k[1]).get("provider") == "nope" for k in m)
    for state, count in {"pending": 0, "generating": 1, "uploading": 0, "completed": 1,
                         "failed": 0}.items():
        assert m[("videofly_jobs", labels(state=state))] == count
    assert m[("videofly_ledger_entries", labels(kind="grant"))] == 2
    assert m[("videofly_ledger_entries", labels(kind="hold"))] == 2
    assert m[("videofly_ledger_entries", labels(kind="settle"))] == 1
    calls = "videofly_provider_call_duration_seconds_count"
    assert m[(calls, labels(provider="kie", operation="create_task", outcome="ok"))] == 1
    assert m[(calls, labels(provider="kie", operation="query_task", outcome="ok"))] == 1
    assert m[(calls, labels(provider="evolink", operation="create_task", outcome="ok"))] == 1
    requests = "videofly_http_request_duration_seconds_count"
    route = "/callbacks/{provider}"
    assert m[(requests, labels(method="POST", route=route, status="200"))] == 1
    assert m[(requests, labels(method="POST", route=route, status="401"))] == 1
    assert m[(requests, labels(method="POST", route=route, status="413"))] == 1


async def test_each_app_has_its_own_registry(
    stack: Stack, engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient,
    clock: FakeClock, tmp_path: Path,
) -> None:
    await stack.post("/callbacks/nope?job=1&token=x", b"{}")
    async with web_stack(engine, wallet, http, clock, tmp_path / "other") as other:
        samples = await scrape(other)
    assert not any(name == "videofly_callbacks_total" for name, _ in samples)


async def test_metrics_still_answer_when_the_database_is_down(
    engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient, clock: FakeClock,
    tmp_path: Path, dead_engine: AsyncEngine,
) -> None:
    async with web_stack(engine, wallet, http, clock, tmp_path,
                         health_engine=dead_engine) as stack:
        await stack.post("/callbacks/nope?job=1&token=x", b"{}")
        m = await scrape(stack)
    assert m[("videofly_metrics_refresh_errors_total", labels())] == 1
    assert m[("videofly_callbacks_total",
              labels(provider="unknown", outcome="unknown_provider"))] == 1
