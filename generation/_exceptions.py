"""Errors of the generation layer. `wallet.InsufficientCredits` passes through `start()` as is.

    GenerationError
     ├── UnknownModel      not in the catalogue, or disabled
     ├── InvalidChoice     a duration or aspect ratio the model does not offer, wrong photos
     ├── TooManyJobs       the user's tier allows no more jobs at once (.limit)
     ├── JobNotFound
     └── NotRetryable      only a job that failed while storing, with its result still at the
                           provider, can be retried
"""

from __future__ import annotations

__all__ = ["GenerationError", "InvalidChoice", "JobNotFound", "NotRetryable", "TooManyJobs",
           "UnknownModel"]


class GenerationError(Exception):
    """Base of the generation layer's own errors."""


class UnknownModel(GenerationError):
    pass


class InvalidChoice(GenerationError):
    pass


class TooManyJobs(GenerationError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} jobs at once")
        self.limit = limit


class JobNotFound(GenerationError):
    pass


class NotRetryable(GenerationError):
    pass
