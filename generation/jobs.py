"""Generation jobs: quote → hold → submit → callback or poll → store → settle, or fail → release.

States: pending → generating → uploading → completed | failed. Every transition is a
conditional `UPDATE … WHERE state = …`, so a callback and a poll (or two instances) racing for
one job find exactly one winner: the job completes once and the money moves once. Money moves
only together with the job row and the outbox message, in one transaction.

A provider answer is trusted for money only when a signature by a key we hold covers its whole
body (the demo provider); otherwise a callback is a hint and the task is re-queried first: evolink
signs nothing, and kie's optional signature covers the task id and time but not the body.
A create-task call that may have landed (`ProviderError.maybe_created`) is never resubmitted:
the job waits for the callback, whose URL carries our own signed job reference, or its deadline.
A provider that answers "no such task" `MISSING_POLLS` polls in a row has lost the task (the
demo's in-memory render after a restart): the job fails then, not at its deadline.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.config import GenerationConfig
from core.crash import crash_point
from core.db import new_id, read, utcnow, write
from core.outbox import enqueue
from providers import (
    CallbackHint,
    Provider,
    ProviderError,
    TaskNotFound,
    TaskRequest,
    TaskState,
    TaskStatus,
    data_url,
)
from storage import Storage, StorageError
from wallet import Wallet, queries

from . import _records as rec
from ._exceptions import InvalidChoice, NotRetryable, TooManyJobs
from ._store import store_results
from .catalogue import PHOTOS, Catalogue
from .tables import jobs

log = logging.getLogger("generation")

__all__ = ["ACTIVE", "JobService"]

ACTIVE = ("pending", "generating", "uploading")
# States in which news from the provider counts. "pending" too: a fast provider's callback can
# arrive before create_task has returned, when the job is not yet marked generating.
SUBMITTED = ("pending", "generating")
HOLD_GRACE = timedelta(hours=1)  # a hold outlives its job's deadline; the deadline sweep wins
MAX_INLINE_PHOTO = 10 * 1024 * 1024  # photos sent inline to the try-on model (10 MB each)
MISSING_POLLS = 3  # "no such task" this many polls in a row fails the job (not at deadline)


class JobService:
    """Starts jobs and moves them to the end, from callbacks, polls and sweeps."""

    def __init__(
        self, *, engine: AsyncEngine, wallet: Wallet, catalogue: Catalogue,
        providers: Mapping[str, Provider], storage: Storage, http: httpx.AsyncClient,
        config: GenerationConfig, public_url: str, callback_secret: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine, self.wallet, self.catalogue = engine, wallet, catalogue
        self.providers, self.storage, self.http = providers, storage, http
        self.config, self.clock = config, clock
        self._public_url = public_url.rstrip("/")
        self._secret = callback_secret.encode()
        self._allow = frozenset(config.allow_hosts)

    # --- references ------------------------------------------------------------------------

    def job_token(self, provider: str, job_id: int) -> str:
        msg = f"{provider}:{job_id}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def check_token(self, provider: str, job_id: int, token: str) -> bool:
        expected = self.job_token(provider, job_id).encode()
        return hmac.compare_digest(expected, token.encode("utf-8", "replace"))

    def callback_url(self, provider: str, job_id: int) -> str:
        token = self.job_token(provider, job_id)
        return f"{self._public_url}/callbacks/{provider}?job={job_id}&token={token}"

    # --- starting ----------------------------------------------------------------------------

    async def start(self, user_id: int, model_id: str, *, prompt: str,
                    image_keys: Sequence[str] = (), duration: int | None = None,
                    aspect_ratio: str | None = None) -> rec.Job:
        """Quotes, checks the user's limit, holds the credits and submits the job."""
        quote = self.catalogue.quote(model_id, duration=duration, aspect_ratio=aspect_ratio)
        low, high = PHOTOS[quote.model.kind]
        if not low <= len(image_keys) <= high:
            raise InvalidChoice(f"{quote.model.kind} takes {low}..{high} photos")
        now = self.clock()
        deadline = now + timedelta(minutes=self.config.deadline_minutes)
        async with write(self.engine) as conn:
            # The user row serialises this user's starts (FOR NO KEY UPDATE: see there).
            tier = await queries.lock_user_tier(conn, user_id)
            active = (await conn.execute(select(func.count()).select_from(jobs).where(
                jobs.c.user_id == user_id, jobs.c.state.in_(ACTIVE)))).scalar_one()
            limit = self.config.limit_for(tier or "default")
            if active >= limit:
                raise TooManyJobs(limit)
            job_id = new_id(await conn.execute(insert(jobs).values(
                user_id=user_id, model_id=quote.model.id, provider=quote.model.provider,
                kind=quote.model.kind, prompt=prompt, inputs=list(image_keys),
                duration=quote.duration, aspect_ratio=quote.aspect_ratio, credits=quote.credits,
                state="pending", deadline_at=deadline, created_at=now, updated_at=now,
                next_check_at=now + timedelta(seconds=self.config.poll_after_seconds),
            )))
            hold = await self.wallet.hold(user_id, quote.credits, ref=f"job:{job_id}",
                                          ttl=deadline - now + HOLD_GRACE, conn=conn)
            await conn.execute(update(jobs).where(jobs.c.id == job_id).values(hold_id=hold.id))
        crash_point("after_hold")
        await self._submit(job_id)
        return await self.get(job_id)

    async def _image_urls(self, job: rec.Job) -> tuple[str, ...]:
        """Links to the job's photos; inline data: URLs for the try-on image model, which a
        gateway is not expected to fetch from us."""
        if job.kind != "try-on":
            ttl = self.config.deadline_minutes * 60
            return tuple([await self.storage.url(k, ttl=ttl) for k in job.inputs])
        inline = []
        for key in job.inputs:
            data = bytearray()
            async for chunk in self.storage.get(key):
                data += chunk
                if len(data) > MAX_INLINE_PHOTO:
                    raise InvalidChoice("a photo is too large for the try-on model")
            inline.append(data_url(bytes(data)))
        return tuple(inline)

    async def _submit(self, job_id: int) -> None:
        job = await self.get(job_id)
        model = self.catalogue.get(job.model_id)
        try:
            image_urls = await self._image_urls(job)
        except (InvalidChoice, ValueError, StorageError) as exc:  # a missing or unusable photo
            await self.fail(job_id, "rejected", repr(exc))
            return
        request = TaskRequest(
            model=model.provider_model or model.id, prompt=job.prompt, image_urls=image_urls,
            duration=job.duration, aspect_ratio=job.aspect_ratio,
            callback_url=self.callback_url(job.provider, job_id))
        try:
            status = await self.providers[job.provider].create_task(request)
        except ProviderError as exc:
            if exc.maybe_created:  # never resubmit: wait for the callback or the deadline
                await self._transition(job_id, ("pending",), state="generating",
                                       failure_detail=f"submit unconfirmed: {exc}"[:500])
            else:
                await self.fail(job_id, "rejected", str(exc))
            return
        await self._transition(job_id, ("pending",), state="generating",
                               task_id=status.task_id, progress=status.progress)
        crash_point("after_accept")
        await self.apply(job_id, status)

    # --- news from the provider ----------------------------------------------------------------

    async def on_callback(self, provider: str, job_id: int, hint: CallbackHint) -> None:
        """Acts on a callback whose URL token was checked; replays change nothing."""
        job = await self.get(job_id)
        if job.provider != provider or job.state not in ACTIVE:
            return
        if job.task_id is None and hint.task_id:
            # The create call timed out after landing: the callback tells us the task id.
            await self._transition(job_id, ACTIVE, task_id=hint.task_id, where_no_task=True)
        elif hint.task_id != job.task_id:
            log.warning("job %s: callback for task %s, ours is %s", job_id, hint.task_id,
                        job.task_id)
            return
        if hint.body_signed and hint.status is not None:
            await self.apply(job_id, hint.status)
        else:  # an unsigned body, or a signature over the task id only: ask the provider
            await self.poll(job_id)

    async def poll(self, job_id: int) -> None:
        """Asks the provider how the job is doing and acts on the answer."""
        job = await self.get(job_id)
        if job.state not in SUBMITTED or job.task_id is None:
            return
        try:
            status = await self.providers[job.provider].query_task(job.task_id)
        except TaskNotFound:
            await self._missing(job_id)
            return
        except ProviderError as exc:
            log.info("job %s: query failed (%s); will poll again", job_id, exc)
            return
        if job.missing_polls:
            await self._transition(job_id, SUBMITTED, missing_polls=0)
        await self.apply(job_id, status)

    async def _missing(self, job_id: int) -> None:
        """The provider has no such task (a restart lost a task kept in memory, say): after
        MISSING_POLLS such answers in a row the job fails and its credits come back."""
        async with write(self.engine) as conn:
            await self._transition(job_id, SUBMITTED, conn=conn,
                                   missing_polls=jobs.c.missing_polls + 1)
            missing = (await rec.load(conn, job_id)).missing_polls
        log.info("job %s: the provider has no such task (%d of %d)", job_id, missing,
                 MISSING_POLLS)
        if missing >= MISSING_POLLS:
            await self.fail(job_id, "provider", "the provider no longer knows the task",
                            from_states=SUBMITTED)

    async def apply(self, job_id: int, status: TaskStatus) -> None:
        if status.state is TaskState.SUCCEEDED:
            await self._complete(job_id, list(status.result_urls))
        elif status.state is TaskState.FAILED:
            await self.fail(job_id, "provider", status.error or "the provider gave no reason")
        elif status.progress is not None:
            await self._transition(job_id, SUBMITTED, progress=status.progress)

    # --- the two ends --------------------------------------------------------------------------

    async def _complete(self, job_id: int, urls: list[str]) -> None:
        if not await self._transition(job_id, SUBMITTED, state="uploading",
                                      result_urls=urls, progress=100):
            return  # another callback, poll or instance has it
        await self._store(job_id, urls)

    async def resume_upload(self, job_id: int, urls: list[str]) -> None:
        """Stores the result of an `uploading` job whose upload a crash interrupted."""
        await self._store(job_id, urls)

    async def _store(self, job_id: int, urls: list[str]) -> None:
        job = await self.get(job_id)
        try:
            stored = await store_results(self.http, self.storage, urls, kind=job.kind,
                                         config=self.config, allow_hosts=self._allow)
        except Exception as exc:  # any failure to store is the job's failure, never a crash
            log.warning("job %s: storing the result failed: %r", job_id, exc)
            await self.fail(job_id, "storage", repr(exc), from_states=("uploading",))
            return
        now = self.clock()
        async with write(self.engine) as conn:
            done = await self._transition(
                job_id, ("uploading",), conn=conn, state="completed", result_keys=stored.keys,
                thumbnail_key=stored.thumbnail_key, result_bytes=stored.size, finished_at=now)
            if done:
                assert job.hold_id is not None
                await self.wallet.settle(job.hold_id, conn=conn)
                await enqueue(conn, user_id=job.user_id, kind="job.completed", now=now,
                              payload={"job_id": job_id, "credits": job.credits,
                                       "keys": stored.keys, "thumbnail": stored.thumbnail_key})
        crash_point("after_settle")
        if not done:  # the deadline sweep failed it meanwhile: keep nothing of it
            for key in [*stored.keys, stored.thumbnail_key]:
                if key:
                    await self.storage.delete(key)

    async def fail(self, job_id: int, reason: str, detail: str,
                   from_states: Sequence[str] = ACTIVE) -> bool:
        """Fails the job, gives the credits back and tells the user; False if already over."""
        now = self.clock()
        async with write(self.engine) as conn:
            if not await self._transition(job_id, from_states, conn=conn, state="failed",
                                          failure=reason, failure_detail=detail[:500],
                                          finished_at=now):
                return False
            job = await rec.load(conn, job_id)
            if job.hold_id is not None:
                await self.wallet.release(job.hold_id, conn=conn)
            await enqueue(conn, user_id=job.user_id, kind="job.failed", now=now,
                          payload={"job_id": job_id, "reason": reason, "credits": job.credits})
        return True

    async def retry_storage(self, job_id: int) -> None:
        """Stores a failed job's result again without a new provider task (or a new charge
        beyond the one for the job): holds the credits again, then stores and settles."""
        job = await self.get(job_id)
        if job.state != "failed" or job.failure != "storage" or not job.result_urls:
            raise NotRetryable(job_id)
        async with write(self.engine) as conn:
            hold = await self.wallet.hold(job.user_id, job.credits, conn=conn,
                                          ref=f"job:{job_id}:after:{job.hold_id}")
            if not await self._transition(job_id, ("failed",), conn=conn, state="uploading",
                                          hold_id=hold.id, failure=None, finished_at=None,
                                          where_failure="storage"):
                raise NotRetryable(job_id)
        await self._store(job_id, list(job.result_urls))

    # --- reading ----------------------------------------------------------------------------

    async def get(self, job_id: int) -> rec.Job:
        return await read(self.engine, partial(rec.load_sync, job_id=job_id))

    async def recent(self, user_id: int, limit: int = 10) -> list[rec.Job]:
        async with read(self.engine) as conn:
            return await rec.recent(conn, user_id, limit)

    # --- the one way a job row changes ------------------------------------------------------

    async def _transition(self, job_id: int, from_states: Sequence[str], *,
                          conn: AsyncConnection | None = None, where_no_task: bool = False,
                          where_failure: str | None = None, **values: Any) -> bool:
        """Updates the job if it is still in one of `from_states`; True if it was."""
        stmt = update(jobs).where(jobs.c.id == job_id, jobs.c.state.in_(from_states))
        if where_no_task:
            stmt = stmt.where(jobs.c.task_id.is_(None))
        if where_failure is not None:
            stmt = stmt.where(jobs.c.failure == where_failure)
        stmt = stmt.values(updated_at=self.clock(), **values)
        if conn is not None:
            return (await conn.execute(stmt)).rowcount == 1
        async with write(self.engine) as own:
            return (await own.execute(stmt)).rowcount == 1

