"""The status line of a job: queued, being made (with progress when the provider reports it,
the minutes so far and the model's usual run time), almost ready, and at the end the outcome:
delivered, failed with the credits back, or cancelled with the credits back.

`status_key` is a short key of what the line shows; the dispatcher edits a status message only
when the key changes, so the key holds exactly what the text shows that can change: the state,
the progress and the whole minutes elapsed (the estimate is the model's median run time, which
moves slowly: it is refreshed with the rest, never on its own). A try-on makes an image, and
its line says so.
"""

from __future__ import annotations

from datetime import datetime

from generation import Job

from .messages import t, tn

__all__ = ["FIXED", "status_key", "status_text"]

# The keys whose line is one catalogue text, "status.<key>".
FIXED = ("queued", "uploading", "delivered", "failed", "cancelled")


def _minutes(job: Job, now: datetime | None) -> int:
    if now is None:
        return 0
    return max(0, int((now - job.created_at).total_seconds() // 60))


def status_key(job: Job, *, now: datetime | None = None) -> str:
    """What the status line shows, as a key ("making:40:m2", "delivered")."""
    if job.state == "completed":
        return "delivered"
    if job.state == "failed":
        return "cancelled" if job.failure == "cancelled" else "failed"
    if job.state == "pending":
        return "queued"
    if job.state == "uploading":
        return "uploading"
    return f"making:{job.progress or 0}:m{_minutes(job, now)}"


def status_text(lang: str, job: Job, *, now: datetime | None = None,
                typical: float | None = None) -> str:
    """The status line for `job` at `now`; `typical` is the model's usual run time in seconds
    (`JobService.typical_seconds`), None when there is none to go by."""
    key = status_key(job, now=now)
    if not key.startswith("making:"):
        return t(lang, f"status.{key}", job_id=job.id,
                 credits=tn(lang, "n.credits", job.credits))
    thing = t(lang, "thing.image" if job.kind == "try-on" else "thing.video")
    parts = [t(lang, "status.making", job_id=job.id, thing=thing)]
    if job.progress:
        parts.append(t(lang, "status.progress", progress=job.progress))
    if minutes := _minutes(job, now):
        parts.append(tn(lang, "status.elapsed", minutes))
    if typical is not None:
        parts.append(t(lang, "status.estimate_short") if typical < 45
                     else tn(lang, "status.estimate", max(1, round(typical / 60))))
    return " · ".join(parts)
