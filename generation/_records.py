"""The job record handed out by `JobService`, and the queries that read it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, bindparam, func, select
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
    missing_polls: int = 0  # polls in a row the provider answered "no such task"

    @property
    def retryable(self) -> bool:
        """Failed while storing, with the provider's result still known: retry storage only."""
        return self.state == "failed" and self.failure == "storage" and bool(self.result_urls)


def record(row: Any) -> Job:
    return Job(row.id, row.user_id, row.model_id, row.provider, row.kind, row.prompt,
               list(row.inputs or []), row.duration, row.aspect_ratio, row.credits, row.hold_id,
               row.state, row.task_id, row.progress, row.failure, row.failure_detail,
               row.result_urls, row.result_keys, row.thumbnail_key, row.polls, row.created_at,
               row.finished_at, row.missing_polls)


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


# --- for other packages (the jobs table is generation's: tests/unit/test_ownership.py) -------

async def finished_since(conn: AsyncConnection, since: datetime) -> list[tuple[datetime, str]]:
    """(finished_at, state) of the jobs completed or failed since `since`."""
    rows = await conn.execute(select(jobs.c.finished_at, jobs.c.state).where(
        jobs.c.finished_at >= since, jobs.c.state.in_(("completed", "failed"))))
    return [(r.finished_at, r.state) for r in rows]


async def state_counts(conn: AsyncConnection) -> dict[str, int]:
    """How many jobs are in each state (states without jobs are absent)."""
    rows = await conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))
    return {state: int(n) for state, n in rows}


# The owner's id column of `with_active_job`; join your tables on it.
JOB_OWNER: ColumnElement[int] = jobs.c.user_id


def with_active_job(query: Select[Any], job_id: ColumnElement[Any],
                    active: Sequence[str]) -> Select[Any]:
    """`query` joined with the job `job_id`, kept only while the job's state is in `active`,
    with the job's owner as column `user_id` (`JOB_OWNER`)."""
    return (query.add_columns(jobs.c.user_id).join(jobs, jobs.c.id == job_id)
            .where(jobs.c.state.in_(list(active))))
