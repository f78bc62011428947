"""Errors of the generation layer. `wallet.InsufficientCredits` passes through `start()` as is.

    GenerationError
     ├── UnknownModel      not in the catalogue, or disabled
     ├── InvalidChoice     a duration or aspect ratio the model does not offer, wrong photos
     ├── TooManyJobs       the user's tier allows no more jobs at once (.limit)
     ├── TooManyClothes    more clothing photos than the user's tier allows (.limit)
     ├── TierRequired      the model is reserved to other tiers (.model_id, .tiers: those
     │                     that may use it, for a refusal that offers /plan)
     ├── JobNotFound
     └── NotRetryable      only a job that failed while storing, with its result still at the
                           provider, can be retried
"""

from __future__ import annotations

__all__ = ["GenerationError", "InvalidChoice", "JobNotFound", "NotRetryable", "TierRequired",
           "TooManyClothes", "TooManyJobs", "UnknownModel"]


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


class TooManyClothes(GenerationError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} clothing photos")
        self.limit = limit


class TierRequired(GenerationError):
    def __init__(self, model_id: str, tiers: tuple[str, ...]) -> None:
        super().__init__(f"{model_id} is for tiers {', '.join(tiers) or '(none)'}")
        self.model_id, self.tiers = model_id, tiers


class JobNotFound(GenerationError):
    pass


class NotRetryable(GenerationError):
    pass
