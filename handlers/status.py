"""The live status line of a running job: queued, generating (with progress when the provider
reports it), almost ready. A job that has ended has no status line: its news is the outbox
notification (`notify`)."""

from __future__ import annotations

from generation import Job

from .messages import t

__all__ = ["status_key", "status_text"]


def status_key(job: Job) -> str | None:
    """A short key of what the status line shows ("generating:40"); None once the job ended."""
    if job.state == "pending":
        return "queued"
    if job.state == "generating":
        return f"generating:{job.progress}" if job.progress else "generating"
    if job.state == "uploading":
        return "uploading"
    return None


def status_text(lang: str, job: Job) -> str:
    key = status_key(job) or "generating"
    if key.startswith("generating:"):
        return t(lang, "status.generating_pct", job_id=job.id, progress=job.progress)
    return t(lang, f"status.{key}", job_id=job.id)
