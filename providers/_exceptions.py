"""The providers' exceptions. Messages carry the provider's name and a safe reason, never a key.

    ProviderError                 .provider, .maybe_created
     ├── ProviderTimeout          no answer in time
     ├── ProviderUnavailable      5xx, maintenance, network failure     .status
     ├── ProviderRejected         a 4xx-class business answer           .code, .reason, .status
     │    ├── ProviderAuthError       401/403: the key is wrong or lacks access
     │    ├── ProviderNoBalance       402: our account at the provider is out of credit
     │    ├── ProviderBadInput        400/422: the request itself was refused (or refused locally)
     │    ├── TaskNotFound            404: the provider has no such task
     │    └── ProviderRateLimited     429                               .retry_after
     ├── ProviderProtocolError    malformed JSON or an answer of unexpected shape
     └── BadCallback              a callback body that cannot be parsed, or a bad signature
          └── BadSignature        the callback is signed, but not by us (or too long ago)

`maybe_created` is True only on errors raised by a create-task call whose request reached the
provider without a definite answer (a read timeout, a 5xx, a dropped connection, an unreadable
success). Such a task may exist and be billed: the job layer must not resubmit it, but wait for
the callback or the poller (see `providers/_http.py`).
"""

from __future__ import annotations

__all__ = [
    "BadCallback",
    "BadSignature",
    "ProviderAuthError",
    "ProviderBadInput",
    "ProviderError",
    "ProviderNoBalance",
    "ProviderProtocolError",
    "ProviderRateLimited",
    "ProviderRejected",
    "ProviderTimeout",
    "ProviderUnavailable",
    "TaskNotFound",
]


class ProviderError(Exception):
    """Base of every error a provider client raises on purpose."""

    def __init__(self, provider: str, message: str, *, maybe_created: bool = False) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.maybe_created = maybe_created


class ProviderTimeout(ProviderError):
    """The provider did not answer within the client's timeout."""


class ProviderUnavailable(ProviderError):
    """The provider failed on its side (5xx, maintenance) or could not be reached."""

    def __init__(self, provider: str, message: str, *, status: int | None = None,
                 maybe_created: bool = False) -> None:
        super().__init__(provider, message, maybe_created=maybe_created)
        self.status = status


class ProviderRejected(ProviderError):
    """The provider refused the request; retrying the same request will not help."""

    def __init__(self, provider: str, *, code: str, reason: str,
                 status: int | None = None) -> None:
        super().__init__(provider, f"rejected ({code}): {reason}")
        self.code = code
        self.reason = reason
        self.status = status


class ProviderAuthError(ProviderRejected):
    """401/403: our API key is wrong, revoked, or lacks access to the model."""


class ProviderNoBalance(ProviderRejected):
    """402: our account at the provider has run out of credit."""


class ProviderBadInput(ProviderRejected):
    """400/422: the prompt, image or parameters were refused."""


class TaskNotFound(ProviderRejected):
    """404: the provider keeps no task with that id."""


class ProviderRateLimited(ProviderRejected):
    """429: too many requests; `retry_after` is in seconds when the provider said."""

    def __init__(self, provider: str, *, code: str, reason: str, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(provider, code=code, reason=reason, status=status)
        self.retry_after = retry_after


class ProviderProtocolError(ProviderError):
    """The answer was not JSON, or not the shape the provider documents."""


class BadCallback(ProviderError):
    """A callback body that cannot be parsed, or whose signature does not verify."""


class BadSignature(BadCallback):
    """A callback whose signature does not verify: a wrong key, another task's signature, or a
    timestamp that is unreadable or outside the provider's window. The web layer answers 401."""
