"""Where a prompt enters a job it loses control characters; a model's recent median run time
gives the status message its estimate; a job the provider has not accepted can be cancelled,
with its credits back. On the real pipeline (fake kie server, real storage and database)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from generation import sweeps
from generation._records import median_run_seconds
from generation.tables import jobs
from providers import CallbackHint
from providers._render import render_clip
from storage import LocalStorage
from tests.factories import FakeClock, funded_user
from tests.fakes import Reply
from tests.fakes.evolink import EvolinkFake
from tests.fakes.kie import KieFake
from tests.integration.test_jobs import Pipeline, build_service, kie_callback
from wallet import Wallet


@pytest.fixture
async def pipe(engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient, clock: FakeClock,
               tmp_path: Path) -> AsyncIterator[Pipeline]:
    """The pipeline of test_jobs: fake kie and evolink servers, local storage."""
    render_clip(tmp_path / "c.mp4", prompt="result", seconds=1, fps=6, width=160)
    storage = LocalStorage(tmp_path / "media", public_base="http://127.0.0.1:9",
                           link_secret="x" * 32)
    async with KieFake(progression=("generating", "success")) as kie, EvolinkFake() as evo:
        kie.video_bytes = (tmp_path / "c.mp4").read_bytes()
        yield Pipeline(build_service(engine, wallet, http, kie, evo, storage, clock),
                       kie, evo, storage, wallet)


async def run(pipe: Pipeline, clock: FakeClock, uid: int, model: str, seconds: float) -> int:
    job = await pipe.service.start(uid, model, prompt="a cat", duration=10)
    clock.advance(seconds=seconds)
    assert job.task_id is not None
    await kie_callback(pipe, job.id, job.task_id)
    await kie_callback(pipe, job.id, job.task_id)  # the fake says "generating", then "success"
    assert (await pipe.service.get(job.id)).state == "completed"
    return job.id


async def test_control_characters_never_reach_the_job_or_the_provider(pipe: Pipeline) -> None:
    uid = await funded_user(pipe.wallet, 50)
    job = await pipe.service.start(uid, "sora-kie", duration=10,
                                   prompt="\x1b[31ma red cat\x1b[0m\x07\nsurfing\r\n")
    assert job.prompt == "a red cat\nsurfing"
    assert (await pipe.service.get(job.id)).prompt == "a red cat\nsurfing"
    assert pipe.kie.create_calls[0]["input"]["prompt"] == "a red cat\nsurfing"


async def test_the_estimate_is_the_median_of_recent_completed_runs(
        pipe: Pipeline, clock: FakeClock, engine: AsyncEngine) -> None:
    uid = await funded_user(pipe.wallet, 500)
    assert await pipe.service.typical_seconds("sora-kie") is None  # nothing to go by yet
    for seconds in (60, 200, 100):
        await run(pipe, clock, uid, "sora-kie", seconds)
    assert await pipe.service.typical_seconds("sora-kie") == 100
    await run(pipe, clock, uid, "sora-kie", 150)
    assert await pipe.service.typical_seconds("sora-kie") == 125  # even count: the mean of two

    # Another model's runs, failed runs and running jobs do not count.
    failed = await pipe.service.start(uid, "sora-kie", prompt="x", duration=10)
    clock.advance(seconds=9999)
    await pipe.service.fail(failed.id, "provider", "no")
    await pipe.service.start(uid, "sora-kie", prompt="still running", duration=10)
    assert await pipe.service.typical_seconds("sora-kie") == 125
    assert await pipe.service.typical_seconds("sora-evo") is None

    # Only the last `sample` completed runs of the model count, within the last `window` jobs.
    async with engine.connect() as conn:
        assert await median_run_seconds(conn, "sora-kie", sample=2) == 125  # 100 and 150
        assert await median_run_seconds(conn, "sora-kie", sample=1) == 150
        assert await median_run_seconds(conn, "sora-kie", window=3) == 150
        assert await median_run_seconds(conn, "sora-kie", window=2) is None


async def test_a_job_the_provider_never_confirmed_is_cancelled_with_its_credits_back(
        pipe: Pipeline, clock: FakeClock) -> None:
    uid = await funded_user(pipe.wallet, 30)
    pipe.kie.script_next("create", Reply(status=500, json={"code": 500, "msg": "oops"}))
    job = await pipe.service.start(uid, "sora-kie", prompt="x", duration=10)
    assert (job.state, job.task_id) == ("generating", None)  # it may exist: we were not told
    assert (await pipe.wallet.balance(uid)).held == 20
    assert await pipe.service.cancel(job.id)
    done = await pipe.service.get(job.id)
    assert (done.state, done.failure) == ("failed", "cancelled")
    bal = await pipe.wallet.balance(uid)
    assert (bal.available, bal.held) == (30, 0)
    assert not await pipe.service.cancel(job.id)  # once
    # A late callback for the task that did land changes nothing; nor does the deadline.
    await pipe.service.on_callback("kie", job.id, CallbackHint(task_id="kie-task-1",
                                                               verified=True, status=None))
    clock.advance(minutes=120)
    assert await sweeps.fail_overdue(pipe.service) == 0
    assert (await pipe.service.get(job.id)).failure == "cancelled"
    assert (await pipe.wallet.balance(uid)).available == 30


async def test_a_job_the_provider_accepted_cannot_be_cancelled(pipe: Pipeline) -> None:
    uid = await funded_user(pipe.wallet, 30)
    job = await pipe.service.start(uid, "sora-kie", prompt="x", duration=10)
    assert job.task_id is not None
    assert not await pipe.service.cancel(job.id)
    assert (await pipe.service.get(job.id)).state == "generating"
    await kie_callback(pipe, job.id, job.task_id)
    await kie_callback(pipe, job.id, job.task_id)
    assert (await pipe.service.get(job.id)).state == "completed"
    assert not await pipe.service.cancel(job.id)
    assert (await pipe.wallet.balance(uid)).available == 10


async def test_cancelling_while_the_submission_is_in_flight(pipe: Pipeline,
                                                            engine: AsyncEngine) -> None:
    uid = await funded_user(pipe.wallet, 30)
    pipe.kie.script_next("create", Reply(delay=0.5, json={"code": 200, "msg": "success",
                                                          "data": {"taskId": "late-task"}}))
    starting = asyncio.create_task(pipe.service.start(uid, "sora-kie", prompt="x", duration=10))
    async with asyncio.timeout(30):
        while True:  # bounded: the job row appears as soon as the hold is taken
            async with engine.connect() as conn:
                job_id = (await conn.execute(select(jobs.c.id))).scalar()
            if job_id is not None:
                break
            await asyncio.sleep(0.01)
    assert await pipe.service.cancel(job_id)
    job = await starting  # the provider accepted after all: the job stays cancelled
    assert (job.state, job.failure, job.task_id) == ("failed", "cancelled", None)
    bal = await pipe.wallet.balance(uid)
    assert (bal.available, bal.held) == (30, 0)


async def test_the_estimate_is_remembered_for_a_minute(pipe: Pipeline, clock: FakeClock) -> None:
    uid = await funded_user(pipe.wallet, 50)
    await run(pipe, clock, uid, "sora-kie", 100)
    assert await pipe.service.typical_seconds("sora-kie") == 100
    await run(pipe, clock, uid, "sora-kie", 30)  # the clock moved 30 s: still remembered
    assert await pipe.service.typical_seconds("sora-kie") == 100
    clock.advance(seconds=30)
    assert await pipe.service.typical_seconds("sora-kie") == 65
