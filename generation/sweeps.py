"""The periodic work on jobs, safe with several instances on one database.

Each sweep claims its rows before working on them: on PostgreSQL with `FOR UPDATE SKIP LOCKED`
(instances skip each other's rows instead of queuing), and everywhere with a conditional
`UPDATE … WHERE <the value we read>`, so of two instances that read the same row only one
changes it and only that one goes on to process it.

Recovery after a crash: `recover` runs when an instance starts. It fetches again the result of
every job left `uploading` before that moment (the provider still has it); a job whose upload
some other live instance is doing meanwhile is then stored twice at worst, and only one copy
completes it (the other is deleted). A job still `pending` without a task id at a provider
whose tasks live in the process (`tasks_die_with_process`: the demo) can never be accepted
now: it fails at once, credits back; at any other provider the create call may have landed,
so such a job waits for its callback or its deadline. Uploads no instance resumes are failed
by `fail_overdue` once older than the download timeout plus a margin; a provider that lost a
task answers "no such task", and a few of those fail the job (`JobService.poll`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, select, update

from core.db import write

from .jobs import JobService
from .tables import jobs

UPLOAD_MARGIN = timedelta(minutes=5)


def next_poll(service: JobService, polls: int, now: datetime) -> datetime:
    """Backs off from poll_after_seconds, doubling up to poll_max_seconds."""
    cfg = service.config
    wait = min(cfg.poll_after_seconds * 2 ** min(polls, 16), cfg.poll_max_seconds)
    return now + timedelta(seconds=wait)


async def _claim_polls(service: JobService, now: datetime, limit: int) -> list[int]:
    due = and_(jobs.c.state == "generating", jobs.c.task_id.is_not(None),
               jobs.c.next_check_at <= now)
    query = (select(jobs.c.id, jobs.c.polls, jobs.c.next_check_at).where(due)
             .order_by(jobs.c.next_check_at).limit(limit)
             .with_for_update(skip_locked=True))  # instances skip each other's rows (PG)
    claimed: list[int] = []
    async with write(service.engine) as conn:
        for row in (await conn.execute(query)).all():
            moved = await conn.execute(
                update(jobs)
                .where(jobs.c.id == row.id, jobs.c.state == "generating",
                       jobs.c.next_check_at == row.next_check_at)
                .values(polls=row.polls + 1, next_check_at=next_poll(service, row.polls, now)))
            if moved.rowcount == 1:
                claimed.append(row.id)
    return claimed


async def poll_due(service: JobService, now: datetime | None = None, limit: int = 50) -> int:
    """Polls the jobs that have had no news for a while; returns how many it polled."""
    claimed = await _claim_polls(service, now or service.clock(), limit)
    for job_id in claimed:
        await service.poll(job_id)
    return len(claimed)


async def recover(service: JobService, before: datetime) -> int:
    """Resumes the work a crash interrupted before `before` (this instance's start): uploads
    are stored again, and jobs a provider whose tasks die with the process (the demo) never
    accepted are failed at once, credits back. Returns how many jobs it took over."""
    volatile = [name for name, p in service.providers.items()
                if getattr(p, "tasks_die_with_process", False)]
    async with write(service.engine) as conn:
        query = select(jobs.c.id, jobs.c.state, jobs.c.updated_at, jobs.c.result_urls).where(
            jobs.c.updated_at < before,
            (jobs.c.state == "uploading") | (
                (jobs.c.state == "pending") & jobs.c.task_id.is_(None)
                & jobs.c.provider.in_(volatile)))
        query = query.with_for_update(skip_locked=True)  # nothing on SQLite (write lock)
        claimed = []
        for row in (await conn.execute(query)).all():
            moved = await conn.execute(update(jobs).where(
                jobs.c.id == row.id, jobs.c.state == row.state,
                jobs.c.updated_at == row.updated_at).values(updated_at=service.clock()))
            if moved.rowcount == 1:
                claimed.append(row)
    for row in claimed:
        if row.state == "uploading":
            await service.resume_upload(row.id, list(row.result_urls or []))
        else:
            await service.fail(row.id, "provider", "interrupted by a restart before the "
                               "provider accepted it", from_states=("pending",))
    return len(claimed)


async def fail_overdue(service: JobService, now: datetime | None = None) -> int:
    """Fails jobs past their deadline (and uploads a crash interrupted); credits come back."""
    now = now or service.clock()
    stuck_since = now - timedelta(seconds=service.config.download_timeout_seconds) - UPLOAD_MARGIN
    async with write(service.engine) as conn:
        late = (await conn.execute(select(jobs.c.id).where(
            jobs.c.state.in_(("pending", "generating")), jobs.c.deadline_at <= now))).all()
        stuck = (await conn.execute(select(jobs.c.id).where(
            jobs.c.state == "uploading", jobs.c.updated_at <= stuck_since))).all()
    failed = 0
    for (job_id,) in late:
        failed += await service.fail(job_id, "deadline", "no result before the deadline",
                                     from_states=("pending", "generating"))
    for (job_id,) in stuck:
        failed += await service.fail(job_id, "storage", "storing the result was interrupted",
                                     from_states=("uploading",))
    return failed


async def cleanup(service: JobService, now: datetime | None = None) -> tuple[int, int]:
    """Deletes old failed jobs and archives old completed ones, removing their files."""
    now = now or service.clock()
    cfg = service.config
    async with write(service.engine) as conn:
        old_failed = (await conn.execute(select(jobs.c.id, jobs.c.inputs).where(
            jobs.c.state == "failed",
            jobs.c.finished_at <= now - timedelta(days=cfg.failed_retention_days)))).all()
        old_done = (await conn.execute(select(
            jobs.c.id, jobs.c.inputs, jobs.c.result_keys, jobs.c.thumbnail_key).where(
            jobs.c.state == "completed", jobs.c.archived.is_(False),
            jobs.c.finished_at <= now - timedelta(days=cfg.completed_retention_days)))).all()
    deleted = archived = 0
    for row in old_failed:
        async with write(service.engine) as conn:
            gone = await conn.execute(delete(jobs).where(
                jobs.c.id == row.id, jobs.c.state == "failed"))
        if gone.rowcount == 1:
            deleted += 1
            for key in row.inputs or []:
                await service.storage.delete(key)
    for done in old_done:
        async with write(service.engine) as conn:
            claimed = await conn.execute(update(jobs).where(
                jobs.c.id == done.id, jobs.c.archived.is_(False)).values(archived=True))
        if claimed.rowcount == 1:
            archived += 1
            for key in [*(done.inputs or []), *(done.result_keys or []), done.thumbnail_key]:
                if key:
                    await service.storage.delete(key)
    return deleted, archived
