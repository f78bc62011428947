"""`POST /callbacks/{provider}` through the real server, JobService, database and fake providers:
refusals change nothing, a good callback moves the job on once, replays change nothing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.outbox import outbox
from generation import Job
from providers import CallbackHint
from tests.factories import FakeClock
from tests.fakes.kie import signed_headers
from tests.integration.test_webhooks_stack import (
    KIE_WEBHOOK_KEY,
    MAX_BODY,
    Stack,
    web_stack,
)
from wallet import Balance, LedgerEntry, Wallet


@pytest.fixture
async def stack(engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient,
                clock: FakeClock, tmp_path: Path) -> AsyncIterator[Stack]:
    async with web_stack(engine, wallet, http, clock, tmp_path / "media") as built:
        yield built


@dataclass(frozen=True)
class Snapshot:
    job: Job
    history: list[LedgerEntry]
    balance: Balance
    messages: int
    queries: int


async def snapshot(stack: Stack, user: int, job_id: int) -> Snapshot:
    async with stack.jobs.engine.connect() as conn:
        messages = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
    return Snapshot(await stack.jobs.get(job_id), await stack.wallet.history(user, limit=100),
                    await stack.wallet.balance(user), messages,
                    len(stack.kie.query_calls) + len(stack.evolink.query_calls))


def with_query(url: str, query: str) -> str:
    return url.split("?", 1)[0] + "?" + query


# --- accepted and handed over ----------------------------------------------------------------


async def test_a_kie_callback_is_answered_and_the_job_completes_after_a_requery(
    stack: Stack,
) -> None:
    user, job = await stack.start("kie-t2v", credits=20)
    assert job.state == "generating"
    assert job.task_id
    assert await stack.kie.send_callback(job.task_id) == 200
    await stack.idle()
    done = await stack.jobs.get(job.id)
    assert done.state == "completed"
    assert done.result_keys
    assert done.thumbnail_key
    assert stack.kie.query_calls == [job.task_id]  # an unsigned callback is only a hint
    assert await stack.storage.exists(done.result_keys[0])
    balance = await stack.wallet.balance(user)
    assert (balance.available, balance.held) == (15, 0)
    assert [e.kind for e in await stack.wallet.history(user)].count("settle") == 1


async def test_a_signed_kie_callback_is_accepted(stack: Stack) -> None:
    _, job = await stack.start("kie-t2v")
    assert job.task_id
    assert await stack.kie.send_callback(job.task_id, webhook_key=KIE_WEBHOOK_KEY) == 200
    await stack.idle()
    assert (await stack.jobs.get(job.id)).state == "completed"


async def test_an_evolink_failure_callback_fails_the_job_and_gives_the_credits_back(
    stack: Stack,
) -> None:
    user, job = await stack.start("evo-t2v", credits=10)
    assert job.task_id
    assert (await stack.wallet.balance(user)).held == 4
    stack.evolink.tasks[job.task_id].states = [("failed", 0)]
    assert await stack.evolink.send_callback(job.task_id) == 200
    await stack.idle()
    failed = await stack.jobs.get(job.id)
    assert (failed.state, failed.failure) == ("failed", "provider")
    balance = await stack.wallet.balance(user)
    assert (balance.available, balance.held) == (10, 0)


async def test_a_replayed_callback_is_accepted_and_changes_nothing(stack: Stack) -> None:
    user, job = await stack.start("kie-t2v")
    assert job.task_id
    assert await stack.kie.send_callback(job.task_id) == 200
    await stack.idle()
    before = await snapshot(stack, user, job.id)
    assert before.job.state == "completed"
    for _ in range(3):
        assert await stack.kie.send_callback(job.task_id) == 200
        assert await stack.kie.send_callback(job.task_id, webhook_key=KIE_WEBHOOK_KEY) == 200
    await stack.idle()
    assert await snapshot(stack, user, job.id) == before
    assert await stack.wallet.audit() == []


async def test_a_burst_of_redeliveries_settles_once(stack: Stack) -> None:
    user, job = await stack.start("kie-t2v", credits=20)
    assert job.task_id
    task_id = job.task_id
    statuses = await asyncio.gather(*(stack.kie.send_callback(task_id) for _ in range(8)))
    assert statuses == [200] * 8
    await stack.idle()
    assert (await stack.jobs.get(job.id)).state == "completed"
    kinds = [e.kind for e in await stack.wallet.history(user, limit=100)]
    assert kinds.count("settle") == 1
    assert kinds.count("hold") == 1
    assert (await stack.wallet.balance(user)).available == 15
    assert len(list(stack.storage.root.rglob("*.mp4"))) == 1
    assert await stack.wallet.audit() == []


async def test_a_callback_for_a_job_that_is_gone_is_accepted_and_logged(
    stack: Stack, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="webhooks.handover"):
        status, data = await stack.post(stack.callback_url("kie", 987654),
                                        b'{"data": {"taskId": "t"}}')
        await stack.idle()
    assert (status, data) == (200, {"ok": True})
    assert any("job 987654" in r.getMessage() for r in caplog.records)


# --- refused: nothing changes ----------------------------------------------------------------


async def assert_refused(stack: Stack, url: str, body: bytes, status: int,
                         headers: dict[str, str] | None = None) -> None:
    user = (await stack.jobs.get(job_id_of(url))).user_id if "job=" in url else None
    before = await snapshot(stack, user, job_id_of(url)) if user else None
    got, data = await stack.post(url, body, headers)
    assert got == status, data
    assert data is not None
    assert data["ok"] is False
    assert stack.handover.in_flight == 0
    if before is not None and user is not None:
        assert await snapshot(stack, user, before.job.id) == before


def job_id_of(url: str) -> int:
    return int(url.split("job=", 1)[1].split("&", 1)[0])


@pytest.mark.parametrize("query", [
    "", "job={job}", "token={token}", "job={job}&token=", "job={job}&token=0{token}",
    "job={job}&token={other}", "job={job}x&token={token}", "job=-{job}&token={token}",
    "job={job}&token=%C3%A9%C3%A9", "job=%EF%BC%91&token={token}",
], ids=["nothing", "no-token", "no-job", "empty-token", "bad-token", "other-job-token",
        "job-not-a-number", "negative-job", "non-ascii-token", "fullwidth-digit-job"])
async def test_a_callback_without_a_valid_job_token_is_401(stack: Stack, query: str) -> None:
    _, job = await stack.start()
    _, other = await stack.start()
    assert job.task_id
    url = stack.callback_url("kie", job.id)
    token = url.rsplit("token=", 1)[1]
    other_token = stack.callback_url("kie", other.id).rsplit("token=", 1)[1]
    bad = with_query(url, query.format(job=job.id, token=token, other=other_token))
    before = await snapshot(stack, job.user_id, job.id)
    status, data = await stack.post(bad, stack.kie.callback_body(job.task_id))
    assert (status, data["ok"]) == (401, False)
    await stack.idle()
    assert await snapshot(stack, job.user_id, job.id) == before


async def test_a_token_for_another_provider_is_401(stack: Stack) -> None:
    _, job = await stack.start("kie-t2v")
    assert job.task_id
    url = stack.callback_url("kie", job.id).replace("/callbacks/kie", "/callbacks/evolink")
    await assert_refused(stack, url, stack.kie.callback_body(job.task_id), 401)


@pytest.mark.parametrize("headers", [
    lambda task: signed_headers(task, "not-our-key"),
    lambda task: signed_headers("another-task", KIE_WEBHOOK_KEY),
    lambda task: signed_headers(task, KIE_WEBHOOK_KEY, timestamp=int(time.time()) - 600),
    lambda task: {**signed_headers(task, KIE_WEBHOOK_KEY), "X-Webhook-Timestamp": "soon"},
], ids=["wrong-key", "other-task", "stale", "garbage-timestamp"])
async def test_a_kie_callback_with_a_bad_signature_is_401(stack: Stack, headers: Any) -> None:
    _, job = await stack.start("kie-t2v")
    assert job.task_id
    await assert_refused(stack, stack.callback_url("kie", job.id),
                         stack.kie.callback_body(job.task_id), 401, headers(job.task_id))


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'{"data": {}}', b"\xff\xfe"])
async def test_a_malformed_callback_is_400(stack: Stack, body: bytes) -> None:
    _, job = await stack.start("kie-t2v")
    await assert_refused(stack, stack.callback_url("kie", job.id), body, 400)


async def test_a_body_over_the_limit_is_413(stack: Stack) -> None:
    _, job = await stack.start("kie-t2v")
    assert job.task_id
    body = stack.kie.callback_body(job.task_id)
    padded = body[:-1] + b"," + b'"pad": "' + b"x" * MAX_BODY + b'"}'
    await assert_refused(stack, stack.callback_url("kie", job.id), padded, 413)


async def test_a_chunked_body_over_the_limit_is_413(stack: Stack) -> None:
    _, job = await stack.start("kie-t2v")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"x" * (MAX_BODY // 4)

    before = await snapshot(stack, job.user_id, job.id)
    async with stack.session.post(stack.callback_url("kie", job.id), data=chunks()) as resp:
        assert resp.status == 413
    assert await snapshot(stack, job.user_id, job.id) == before


async def test_an_unknown_provider_is_404(stack: Stack) -> None:
    _, job = await stack.start("kie-t2v")
    url = stack.callback_url("kie", job.id).replace("/callbacks/kie", "/callbacks/nope")
    await assert_refused(stack, url, b"{}", 404)


async def test_a_full_backlog_answers_503_and_schedules_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, first = await stack.start("kie-t2v")
    _, second = await stack.start("kie-t2v")
    assert first.task_id
    assert second.task_id
    release = asyncio.Event()
    seen: list[int] = []

    async def blocked(provider: str, job_id: int, hint: CallbackHint) -> None:
        seen.append(job_id)
        await release.wait()

    monkeypatch.setattr(stack.jobs, "on_callback", blocked)
    monkeypatch.setattr(stack.handover, "_max_backlog", 1)
    assert await stack.kie.send_callback(first.task_id) == 200
    async with stack.session.post(stack.callback_url("kie", second.id),
                                  data=stack.kie.callback_body(second.task_id)) as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "30"
    assert stack.handover.in_flight == 1
    release.set()
    await stack.idle()
    assert seen == [first.id]
    status = await stack.kie.send_callback(second.task_id)  # the provider's retry
    await stack.idle()
    assert status == 200
    assert seen == [first.id, second.id]
    busy = stack.metrics.registry.get_sample_value(
        "videofly_callbacks_total", {"provider": "kie", "outcome": "busy"})
    assert busy == 1


# --- kie's signature covers the task id and time, never the body ------------------------------


async def test_a_signed_kie_callback_body_is_not_trusted_for_money(stack: Stack) -> None:
    stack.kie.progression = ("generating",)  # what the provider really says, query after query
    user, job = await stack.start("kie-t2v", credits=20)
    assert job.task_id
    # A correctly signed callback (e.g. replayed within kie's 5 minutes) whose body claims
    # success: the signature is over "taskId.timestamp" only, so the body may be anything.
    assert await stack.kie.send_callback(job.task_id, webhook_key=KIE_WEBHOOK_KEY,
                                         state="success") == 200
    await stack.idle()
    assert stack.kie.query_calls == [job.task_id]  # re-queried before acting
    assert (await stack.jobs.get(job.id)).state == "generating"
    assert (await stack.wallet.balance(user)).held == 5
