"""The job record handed out by `JobService`, and the queries that read it."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ._exceptions import JobNotFound
from .tables import jobs


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    user_id: int
    model_id: str
    provider: str
    kind: str
    prompt: str
    inputs: list[str]
    duration: int | None
    aspect_ratio: str | None
    credits: int
    hold_id: int | None
    state: str
    task_id: str | None
    progress: int | None
    failure: str | None
    failure_detail: str | None
    result_urls: list[str] | None
    result_keys: list[str] | None
    thumbnail_key: str | None
    polls: int
    created_at: datetime
    finished_at: datetime | None

    @property
    def retryable(self) -> bool:
        """Failed while storing, with the provider's result still known: retry storage only."""
        return self.state == "failed" and self.failure == "storage" and bool(self.result_urls)


def record(row: Any) -> Job:
    return Job(row.id, row.user_id, row.model_id, row.provider, row.kind, row.prompt,
               list(row.inputs or []), row.duration, row.aspect_ratio, row.credits, row.hold_id,
               row.state, row.task_id, row.progress, row.failure, row.failure_detail,
               row.result_urls, row.result_keys, row.thumbnail_key, row.polls, row.created_at,
               row.finished_at)


_BY_ID = select(jobs).where(jobs.c.id == bindparam("job_id"))


async def load(conn: AsyncConnection, job_id: int) -> Job:
    row = (await conn.execute(_BY_ID, {"job_id": job_id})).first()
    if row is None:
        raise JobNotFound(job_id)
    return record(row)


def load_sync(conn: Connection, job_id: int) -> Job:
    row = conn.execute(_BY_ID, {"job_id": job_id}).first()
    if row is None:
        raise JobNotFound(job_id)
    return record(row)


async def recent(conn: AsyncConnection, user_id: int, limit: int) -> list[Job]:
    rows = (await conn.execute(select(jobs).where(jobs.c.user_id == user_id)
                               .order_by(jobs.c.id.desc()).limit(limit))).all()
    return [record(r) for r in rows]


# The run-time estimate looks at the model's last RUN_TIME_SAMPLE completed jobs among the last
# RUN_TIME_WINDOW jobs of all models: a bounded walk down the primary key, whatever the table's
# size, with no index of its own (a model nobody used lately has no estimate, which is right).
RUN_TIME_SAMPLE = 20
RUN_TIME_WINDOW = 1000


async def median_run_seconds(conn: AsyncConnection, model_id: str, *,
                             sample: int = RUN_TIME_SAMPLE,
                             window: int = RUN_TIME_WINDOW) -> float | None:
    """The median time from creation to delivery of the model's recent completed jobs."""
    last = (select(jobs.c.id, jobs.c.model_id, jobs.c.state, jobs.c.created_at,
                   jobs.c.finished_at).order_by(jobs.c.id.desc()).limit(window).subquery())
    rows = (await conn.execute(
        select(last.c.created_at, last.c.finished_at)
        .where(last.c.model_id == model_id, last.c.state == "completed",
               last.c.finished_at.is_not(None))
        .order_by(last.c.id.desc()).limit(sample))).all()
    runs = [(r.finished_at - r.created_at).total_seconds() for r in rows]
    return statistics.median(runs) if runs else None
