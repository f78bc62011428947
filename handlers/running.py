"""What /cancel does to the user's running jobs.

/cancel ends the conversation step; a job already confirmed is another matter, and the user is
told what happens to it rather than a bare "Cancelled." while it goes on and is charged:

- a job the provider has not accepted yet (no task id) is cancelled in the domain
  (`JobService.cancel`: failed as "cancelled", credits released in the same transaction);
- a job the provider has accepted cannot be stopped: it finishes and is charged (or fails and
  the credits come back), and the user is told so.

Only jobs started in the last `RECENT` are considered: /cancel right after Confirm is the case
this is for; a job left running for long is not what a /cancel typed now is about.
"""

from __future__ import annotations

from datetime import timedelta

from generation import ACTIVE

from .deps import ChatDeps, Ctx
from .messages import t, tn
from .types import Outbound, Text

__all__ = ["RECENT", "jobs_on_cancel"]

RECENT = timedelta(minutes=10)


async def jobs_on_cancel(deps: ChatDeps, ctx: Ctx) -> list[Outbound]:
    """Cancels the user's recent jobs that the provider has not accepted; says what happens to
    each recent running job."""
    since = deps.clock() - RECENT
    out: list[Outbound] = []
    for job in await deps.jobs.recent(ctx.user_id, limit=5):
        if job.state not in ACTIVE or job.created_at < since:
            continue
        thing = t(ctx.lang, "thing.image" if job.kind == "try-on" else "thing.video")
        if await deps.jobs.cancel(job.id):
            out.append(Text(text=tn(ctx.lang, "cancel.job_stopped", job.credits,
                                    job_id=job.id)))
        else:
            out.append(Text(text=t(ctx.lang, "cancel.job_running", job_id=job.id,
                                   thing=thing)))
    return out
