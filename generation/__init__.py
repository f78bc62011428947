"""Generation jobs: quote → hold → submit → callback or poll → store → settle, or release.

    service = JobService(engine=…, wallet=…, catalogue=Catalogue(config.models), providers=…,
                         storage=…, http=…, config=config.generation, public_url=…,
                         callback_secret=…)
    job = await service.start(user_id, "demo-i2v", prompt="…", image_keys=[key])

The scheduler calls `sweeps.poll_due`, `sweeps.fail_overdue` and `sweeps.cleanup`; the HTTP
server calls `JobService.on_callback` after checking the callback URL's token. Errors are drawn
in `_exceptions`.
"""

from ._exceptions import (
    GenerationError,
    InvalidChoice,
    JobNotFound,
    NotRetryable,
    TooManyJobs,
    UnknownModel,
)
from ._records import JOB_OWNER, Job, finished_since, state_counts, with_active_job
from .catalogue import Catalogue, Quote
from .jobs import ACTIVE, JobService

__all__ = [
    "ACTIVE",
    "JOB_OWNER",
    "Catalogue",
    "GenerationError",
    "InvalidChoice",
    "Job",
    "JobNotFound",
    "JobService",
    "NotRetryable",
    "Quote",
    "TooManyJobs",
    "UnknownModel",
    "finished_since",
    "state_counts",
    "with_active_job",
]
