"""/videos: the user's recent jobs, and what can be done with each from its button.

A finished job can be re-sent (while its files are stored). A failed job whose result is still at
the provider (`job.retryable`: only storing it failed) is retried with `retry_storage`, inline:
the outcome arrives as the usual outbox message. Any other failed job can be made again: its
photos, prompt and choices become a new draft that goes to the same confirmation as a new job
(a new charge, since the first one was returned). Buttons name job ids, so every press checks
that the job is the presser's; someone else's id is answered like a missing one.
"""

from __future__ import annotations

from generation import Job, JobNotFound

from . import generate
from .choices import Choice
from .deps import ChatDeps, Ctx, Reply
from .errors import error_text
from .messages import t
from .notify import model_name, result_media
from .state import Draft
from .types import Button, Text
from .ui import button, main_menu, menu_text

__all__ = ["JOB_STATES", "again", "listing", "resend", "retry"]

JOB_STATES = ("pending", "generating", "uploading", "completed", "failed")


async def listing(deps: ChatDeps, ctx: Ctx) -> Text:
    jobs = await deps.jobs.recent(ctx.user_id, deps.config.chat.videos_listed)
    if not jobs:
        return menu_text(ctx.lang, "videos.empty")
    lines = [t(ctx.lang, "videos.title")]
    rows: list[tuple[Button, ...]] = []
    for job in jobs:
        lines.append(t(ctx.lang, "videos.line", job_id=job.id,
                       model=model_name(deps, job.model_id),
                       state=t(ctx.lang, f"state.{job.state}"),
                       date=job.created_at.astimezone(deps.config.credits.zone)
                       .strftime("%m-%d %H:%M")))
        video = str(job.id)
        if job.state == "completed":
            rows.append((button(ctx.lang, "btn.resend", Choice("video", ("resend", video)),
                                job_id=job.id),))
        elif job.retryable:
            rows.append((button(ctx.lang, "btn.retry", Choice("video", ("retry", video)),
                                job_id=job.id),))
        elif job.state == "failed":
            rows.append((button(ctx.lang, "btn.again", Choice("video", ("again", video)),
                                job_id=job.id),))
    return Text(text="\n".join(lines), buttons=tuple(rows))


async def _own(deps: ChatDeps, ctx: Ctx, value: str) -> Job | None:
    if not value.isdigit() or len(value) > 18:
        return None
    try:
        job = await deps.jobs.get(int(value))
    except JobNotFound:
        return None
    return job if job.user_id == ctx.user_id else None


async def resend(deps: ChatDeps, ctx: Ctx, value: str) -> Reply:
    job = await _own(deps, ctx, value)
    if job is None or job.state != "completed":
        return Reply([Text(text=t(ctx.lang, "err.not_found"))])
    for key in [*(job.result_keys or []), *([job.thumbnail_key] if job.thumbnail_key else [])]:
        if not await deps.storage.exists(key):
            return Reply([Text(text=t(ctx.lang, "videos.gone", job_id=job.id))])
    available = (await deps.wallet.balance(ctx.user_id)).available
    caption = t(ctx.lang, "done.caption", job_id=job.id, model=model_name(deps, job.model_id),
                credits=job.credits, balance=available)
    return Reply(result_media(deps, ctx.lang, job, caption))


async def retry(deps: ChatDeps, ctx: Ctx, value: str) -> Reply:
    job = await _own(deps, ctx, value)
    if job is None:
        return Reply([Text(text=t(ctx.lang, "err.not_found"))])
    try:
        await deps.jobs.retry_storage(job.id)
    except Exception as exc:  # NotRetryable, InsufficientCredits, or worse: one mapping
        return Reply([Text(text=error_text(ctx.lang, exc), buttons=main_menu(ctx.lang))])
    return Reply([Text(text=t(ctx.lang, "videos.retrying", job_id=job.id))])


async def again(deps: ChatDeps, ctx: Ctx, value: str) -> Reply:
    job = await _own(deps, ctx, value)
    if job is None or job.state != "failed":
        return Reply([Text(text=t(ctx.lang, "err.not_found"))])
    if job.retryable:  # its result exists: storing it again costs nothing new
        return await retry(deps, ctx, value)
    for key in job.inputs:
        if not await deps.storage.exists(key):
            return Reply([Text(text=t(ctx.lang, "gen.photos_gone"))])
    draft = Draft(kind=job.kind, photos=tuple(job.inputs), clothes_done=True, prompt=job.prompt,
                  model=job.model_id, duration=job.duration, aspect=job.aspect_ratio)
    return await generate.start_again(deps, ctx, draft)
