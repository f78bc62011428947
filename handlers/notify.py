"""Rendering what arrives later: outbox messages, and the status line of a running job.

Outbox kinds rendered here (payload fields in brackets):

    job.completed   {job_id, credits, keys, thumbnail}  → a Media per result (a video, or a
                                                          photo for try-on), caption: model,
                                                          credits spent, balance
    job.failed      {job_id, reason, credits}           → Text: reason, credits back (and Retry
                                                          when only storing failed)
    payment.credited {credits, package_id, provider}    → Text with the balance
    payment.reversed {credits, debt, reason}            → Text (refund | dispute), debt if any
    admin.dispute   {provider, order_id, user_id, credits} → Text to the admin it was queued for
    admin.granted / admin.deducted {credits, reason}    → Text to the user (written by `admin`)
    membership.*                                        → Text (`plan.news`; the kinds and
                                                          payloads are in `memberships/`)

An unknown kind or a payload that does not parse is logged and rendered as nothing: it can never
become deliverable, and the dispatcher marks it done. A job deleted before its news went out
renders as nothing too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import read, upsert, write
from generation import ACTIVE, JOB_OWNER, Job, JobNotFound, UnknownModel, with_active_job
from wallet import queries

from .choices import Choice
from .deps import ChatDeps
from .messages import language_of, t, tn
from .state import unblocked
from .status import status_key, status_text
from .tables import job_messages
from .types import Media, Outbound, Text
from .ui import button, menu_text

__all__ = ["REASONS", "model_name", "remember_status", "render", "result_media", "status_rows",
           "swap_shown", "user_lang"]

log = logging.getLogger("handlers.notify")

# Failure reason codes of generation/ (jobs.fail and the sweeps) → catalogue keys.
REASONS = {"provider": "reason.provider", "rejected": "reason.rejected",
           "storage": "reason.storage", "deadline": "reason.deadline"}


async def user_lang(deps: ChatDeps, user_id: int) -> str:
    async with read(deps.engine) as conn:
        stored = await queries.language(conn, user_id)
    return language_of(stored, deps.config.app.default_language)


def model_name(deps: ChatDeps, model_id: str) -> str:
    try:
        return deps.catalogue.get(model_id).name
    except UnknownModel:  # disabled since: its id still says what it was
        return model_id


def result_media(deps: ChatDeps, lang: str, job: Job, caption: str) -> list[Outbound]:
    """The finished job's results; the caption goes with the first."""
    kind = "photo" if job.kind == "try-on" else "video"
    thumb = job.thumbnail_key if kind == "video" else None
    return [Media(kind=kind, key=key, caption=caption if i == 0 else "", thumbnail_key=thumb,
                  link_text=t(lang, "done.link"))
            for i, key in enumerate(job.result_keys or [])]


async def render(deps: ChatDeps, user_id: int, kind: str,
                 payload: dict[str, Any]) -> list[Outbound]:
    """The notification, then the main menu: news ends whatever flow it belonged to, and the
    numbers the user types next answer the menu they see last (issue 13)."""
    lang = await user_lang(deps, user_id)
    try:
        out = await _render(deps, lang, user_id, kind, payload)
        return [*out, menu_text(lang)] if out else out
    except (KeyError, TypeError, ValueError) as exc:
        log.error("outbox %s for user %s: unusable payload (%r); not sent", kind, user_id, exc)
        return []
    except JobNotFound:
        log.info("outbox %s for user %s: the job is gone; not sent", kind, user_id)
        return []


async def _balance(deps: ChatDeps, user_id: int) -> int:
    return (await deps.wallet.balance(user_id)).available


async def _render(deps: ChatDeps, lang: str, user_id: int, kind: str,
                  p: dict[str, Any]) -> list[Outbound]:
    if kind == "job.completed":
        job = await deps.jobs.get(int(p["job_id"]))
        caption = t(lang, "done.caption", job_id=job.id, model=model_name(deps, job.model_id),
                    credits=tn(lang, "n.credits", int(p["credits"])),
                    balance=await _balance(deps, user_id))
        return result_media(deps, lang, job, caption)
    if kind == "job.failed":
        job_id = int(p["job_id"])
        reason = t(lang, REASONS.get(str(p["reason"]), "reason.other"))
        text = t(lang, "fail.text", job_id=job_id, reason=reason,
                 back=tn(lang, "fail.back", int(p["credits"])))
        job = await deps.jobs.get(job_id)
        retry = Choice("video", ("retry", str(job_id)))
        rows = ((button(lang, "btn.retry", retry, job_id=job_id),),) if job.retryable else ()
        return [Text(text=text, buttons=rows)]
    if kind == "payment.credited":
        return [Text(text=t(lang, "pay.credited", credits=tn(lang, "n.credits", int(p["credits"])),
                            balance=await _balance(deps, user_id)))]
    if kind == "payment.reversed":
        key = "pay.reversed_dispute" if p["reason"] == "dispute" else "pay.reversed_refund"
        lines = [t(lang, key, credits=tn(lang, "n.credits", int(p["credits"])))]
        if int(p.get("debt") or 0) > 0:
            lines.append(t(lang, "pay.debt", debt=tn(lang, "n.credits", int(p["debt"]))))
        return [Text(text="\n".join(lines))]
    if kind == "admin.dispute":
        return [Text(text=t(lang, "note.admin_dispute", provider=str(p["provider"]),
                            order_id=str(p["order_id"]), user_id=int(p["user_id"]),
                            credits=tn(lang, "n.credits", int(p["credits"]))))]
    if kind in ("admin.granted", "admin.deducted"):
        key = "note.admin_granted" if kind == "admin.granted" else "note.admin_deducted"
        lines = [t(lang, key, credits=tn(lang, "n.credits", int(p["credits"])),
                    balance=await _balance(deps, user_id))]
        if p.get("reason"):
            lines.append(t(lang, "note.reason", reason=str(p["reason"])))
        return [Text(text="\n".join(lines))]
    if kind.startswith("membership."):
        from . import plan  # the plan view imports this module's neighbours

        news = plan.news(deps, lang, kind, p)
        if news is not None:
            return [news]
    log.warning("outbox kind %r for user %s has no renderer; not sent", kind, user_id)
    return []


async def job_status(deps: ChatDeps, job_id: int) -> tuple[str, Text] | None:
    """The job's status line now and its key; None for a job that is gone."""
    try:
        job = await deps.jobs.get(job_id)
    except JobNotFound:
        return None
    lang = await user_lang(deps, job.user_id)
    now = deps.clock()
    typical = await deps.jobs.typical_seconds(job.model_id)
    return status_key(job, now=now), Text(text=status_text(lang, job, now=now,
                                                            typical=typical))


async def remember_status(engine: AsyncEngine, job_id: int, *, channel: str, address: str,
                          message_id: str, now: datetime, shown: str = "") -> None:
    """Upserts the job's status message (a re-sent status message replaces the old one);
    `shown` is the key of what it shows, so the first edit is a change, never the same text
    again (which Telegram refuses with "message is not modified")."""
    stmt = upsert(engine, job_messages, {
        "job_id": job_id, "channel": channel, "address": address, "message_id": message_id,
        "shown": shown, "updated_at": now}, key=[job_messages.c.job_id], update={
        "channel": channel, "address": address, "message_id": message_id, "shown": shown,
        "updated_at": now})
    async with write(engine) as conn:
        await conn.execute(stmt)


async def status_rows(engine: AsyncEngine, *, channels: Sequence[str], after: int,
                      limit: int, ended_since: datetime | None = None,
                      final: Sequence[str] = ()) -> list[Any]:
    """Status messages on `channels`, by job id from `after` on, of users who have not blocked
    the bot: of running jobs, and of jobs that ended since `ended_since` whose message does not
    show one of the `final` keys yet: (job_id, user_id, channel, address, message_id, shown)."""
    query = with_active_job(select(job_messages.c.job_id), job_messages.c.job_id, ACTIVE,
                            ended_since=ended_since,
                            unless_ended=job_messages.c.shown.not_in(list(final)))
    query = (unblocked(query, JOB_OWNER)
             .add_columns(job_messages.c.channel, job_messages.c.address,
                          job_messages.c.message_id, job_messages.c.shown)
             .where(job_messages.c.channel.in_(list(channels)), job_messages.c.job_id > after)
             .order_by(job_messages.c.job_id).limit(limit))
    async with read(engine) as conn:
        return list((await conn.execute(query)).all())


async def swap_shown(engine: AsyncEngine, job_id: int, *, old: str, new: str,
                     now: datetime) -> bool:
    """Sets what a status message shows if it still shows `old` (the claim on one edit)."""
    async with write(engine) as conn:
        moved = await conn.execute(update(job_messages).where(
            job_messages.c.job_id == job_id, job_messages.c.shown == old)
            .values(shown=new, updated_at=now))
    return moved.rowcount == 1
