"""Recovery without waiting for deadlines: a provider that answers "no such task" a few polls
in a row fails the job (credits back); at start-up `sweeps.recover` stores interrupted uploads
again and fails jobs a process-bound provider (the demo) never accepted."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from bot.app import App, build_app, serve
from core.config import Secrets
from core.db import write
from generation import sweeps
from generation.jobs import MISSING_POLLS
from generation.tables import jobs
from providers import TaskNotFound, TaskRequest, TaskState, TaskStatus
from providers._render import render_clip
from tests.factories import FakeClock, TestDatabase
from tests.integration.test_app_run import demo_config, outbox_kinds

SECRETS = Secrets({"PROVIDER_CALLBACK_SECRET": "p" * 40, "MEDIA_LINK_SECRET": "m" * 40})


class ScriptedDemo:
    """Stands in for the demo provider: accepts every task, answers queries from a script
    ("lost" raises TaskNotFound), never calls back. Its tasks die with the process."""

    name = "demo"
    tasks_die_with_process = True

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers

    async def create_task(self, req: TaskRequest) -> TaskStatus:
        return TaskStatus(task_id="task-1", state=TaskState.PENDING)

    async def query_task(self, task_id: str) -> TaskStatus:
        if (self.answers.pop(0) if self.answers else "lost") == "lost":
            raise TaskNotFound(self.name, code="404", reason="no such task", status=404)
        return TaskStatus(task_id=task_id, state=TaskState.RUNNING, progress=10)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> Any:
        raise NotImplementedError


@asynccontextmanager
async def app_with(database: TestDatabase, tmp_path: Path, clock: FakeClock,
                   demo: ScriptedDemo) -> AsyncIterator[App]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = demo_config(database, tmp_path / "data", url,
                             VIDEOFLY__GENERATION__POLL_AFTER_SECONDS="1",
                             VIDEOFLY__GENERATION__POLL_MAX_SECONDS="1")
        async with build_app(config, SECRETS, clock=clock, providers={"demo": demo}) as app, \
                serve(app.web_app, sock=sock):
            yield app


async def _funded_job(app: App, clock: FakeClock) -> tuple[int, int]:
    uid = await app.wallet.open_account("console", "recovery")
    await app.wallet.grant(uid, 5, source="admin", key="recovery-grant")
    job = await app.jobs.start(uid, "demo-t2v", prompt="x")
    assert (job.state, job.task_id) == ("generating", "task-1")
    return uid, job.id


async def test_a_task_the_provider_lost_fails_after_a_few_polls(
        database: TestDatabase, tmp_path: Path) -> None:
    clock = FakeClock()
    # lost, found (the count starts again), then lost MISSING_POLLS times in a row.
    demo = ScriptedDemo(["lost", "running", *["lost"] * MISSING_POLLS])
    async with app_with(database, tmp_path, clock, demo) as app:
        uid, job_id = await _funded_job(app, clock)
        states = []
        for _ in range(MISSING_POLLS + 2):
            clock.advance(seconds=2)
            assert await sweeps.poll_due(app.jobs) == 1
            states.append((await app.jobs.get(job_id)).state)
        assert states == ["generating"] * (MISSING_POLLS + 1) + ["failed"]
        failed = await app.jobs.get(job_id)
        assert failed.failure == "provider"
        assert failed.finished_at is not None
        assert failed.finished_at < failed.created_at + timedelta(minutes=1)  # not a deadline
        balance = await app.wallet.balance(uid)
        assert (balance.available, balance.held) == (5, 0)
        assert await outbox_kinds(app, uid) == ["job.failed"]
        assert await app.wallet.audit() == []


async def test_recover_stores_an_interrupted_upload_again(database: TestDatabase,
                                                          tmp_path: Path) -> None:
    clock = FakeClock()
    async with app_with(database, tmp_path, clock, ScriptedDemo(["running"] * 5)) as app:
        uid, job_id = await _funded_job(app, clock)
        clip = app.demo_dir / "0123456789abcdef0123456789abcdef.mp4"
        clip.parent.mkdir(parents=True, exist_ok=True)
        render_clip(clip, prompt="interrupted", seconds=1, fps=6, width=160)
        result = f"{app.config.http.public_url}/demo/{clip.name}"
        async with write(app.engine) as conn:  # as a crash mid-upload leaves it
            await conn.execute(update(jobs).where(jobs.c.id == job_id).values(
                state="uploading", result_urls=[result], updated_at=clock()))
        clock.advance(seconds=1)
        assert await sweeps.recover(app.jobs, before=clock()) == 1
        done = await app.jobs.get(job_id)
        assert (done.state, done.failure) == ("completed", None), done.failure_detail
        assert done.result_keys
        assert done.thumbnail_key
        balance = await app.wallet.balance(uid)
        assert (balance.available, balance.held) == (4, 0)
        assert await outbox_kinds(app, uid) == ["job.completed"]
        assert await sweeps.recover(app.jobs, before=clock()) == 0  # taken over once
        assert await app.wallet.audit() == []


async def test_recover_fails_what_the_demo_never_accepted(database: TestDatabase,
                                                          tmp_path: Path) -> None:
    clock = FakeClock()
    async with app_with(database, tmp_path, clock, ScriptedDemo([])) as app:
        uid, job_id = await _funded_job(app, clock)
        async with write(app.engine) as conn:  # as a crash before the accept leaves it
            await conn.execute(update(jobs).where(jobs.c.id == job_id).values(
                state="pending", task_id=None, updated_at=clock()))
        assert await sweeps.recover(app.jobs, before=clock()) == 0  # not from before start
        clock.advance(seconds=1)
        assert await sweeps.recover(app.jobs, before=clock()) == 1
        failed = await app.jobs.get(job_id)
        assert (failed.state, failed.failure) == ("failed", "provider")
        assert (await app.wallet.balance(uid)).available == 5
        assert await outbox_kinds(app, uid) == ["job.failed"]
        assert await app.wallet.audit() == []
