"""The one place that sends provider requests, decides what may be retried, and maps HTTP
answers onto the exception tree.

Retry policy (CONVENTIONS #13: retry only what is idempotent):

- A create-task POST is retried (at most `RetryPolicy.attempts` tries in all) only when the
  failure proves nothing was created: the connection was refused or could not be opened in time
  (`httpx.ConnectError`, `httpx.ConnectTimeout`), or the provider answered an explicit 429.
  Anything after the request was sent (read timeout, dropped connection, 5xx, an unreadable
  answer) is raised at once with `maybe_created=True`: the task may exist and be billed, so the
  job layer must not resubmit. It keeps the job in flight and lets the provider's callback (whose
  URL should carry our own job reference, since no task id came back) or a deadline settle it.
- Queries are idempotent: retried on network errors, timeouts, 5xx and 429, with the same bound.

Backoff doubles from `RetryPolicy.backoff`; a 429's Retry-After is honoured when it is no longer
than `RetryPolicy.max_retry_after`, otherwise the 429 is raised for the caller to reschedule.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import httpx

from ._exceptions import (
    ProviderAuthError,
    ProviderBadInput,
    ProviderError,
    ProviderNoBalance,
    ProviderProtocolError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    TaskNotFound,
)

__all__ = ["Caller", "RetryPolicy", "json_object", "openai_style_error", "raise_for_code",
           "retry_after"]

log = logging.getLogger("providers")

T = TypeVar("T")

_REASON_LIMIT = 300


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    attempts: int = 3  # tries in all, the first included
    backoff: float = 0.5  # seconds before the first retry, doubled after each
    max_retry_after: float = 10.0  # a 429 asking for a longer wait is raised, not waited out

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 0 or self.max_retry_after < 0:
            raise ValueError(f"invalid retry policy: {self}")


class Caller:
    """Sends one provider's requests with its key, its retry policy and its redaction."""

    __slots__ = ("_api_key", "_client", "_policy", "provider")

    def __init__(self, client: httpx.AsyncClient, *, provider: str, api_key: str,
                 policy: RetryPolicy) -> None:
        self._client = client
        self._api_key = api_key
        self._policy = policy
        self.provider = provider

    def __repr__(self) -> str:
        return f"Caller(provider={self.provider!r})"

    def safe(self, text: object) -> str:
        """A provider-supplied text fit for logs and exceptions: no key, bounded length."""
        out = str(text)
        if self._api_key:
            out = out.replace(self._api_key, "***")
        return out[:_REASON_LIMIT]

    async def call(self, method: str, url: str, parse: Callable[[httpx.Response], T], *,
                   idempotent: bool, json_body: Any = None,
                   params: Mapping[str, str] | None = None,
                   request_timeout: httpx.Timeout | None = None) -> T:
        """Sends the request, retrying as the module docstring says, and returns `parse(resp)`.

        `parse` raises the mapped ProviderError for an error answer."""
        headers = {"Authorization": f"Bearer {self._api_key}"}
        policy = self._policy
        err: ProviderError | None = None
        for attempt in range(1, policy.attempts + 1):
            if err is not None:
                wait = policy.backoff * 2 ** (attempt - 2)
                if isinstance(err, ProviderRateLimited):
                    wait = max(wait, err.retry_after or 0.0)
                # The path only: a URL may carry a secret in its query, a message never does.
                log.warning("%s %s failed (%s); retry %d of %d in %.2fs", method,
                            httpx.URL(url).path, err, attempt - 1, policy.attempts - 1, wait)
                await asyncio.sleep(wait)
            try:
                resp = await self._client.request(
                    method, url, headers=headers, json=json_body, params=params,
                    timeout=request_timeout or httpx.USE_CLIENT_DEFAULT)
                return parse(resp)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # The request never left this host: nothing can have been created.
                err = ProviderUnavailable(self.provider, f"could not connect ({_name(exc)})")
                err.__cause__ = exc
            except ProviderRateLimited as exc:
                if (exc.retry_after or 0.0) > policy.max_retry_after:
                    raise
                err = exc
            except httpx.TimeoutException as exc:
                err = self._after_send(
                    ProviderTimeout(self.provider, f"no answer in time ({_name(exc)})"),
                    exc, idempotent)
            except httpx.TransportError as exc:
                err = self._after_send(
                    ProviderUnavailable(self.provider, f"connection failed ({_name(exc)})"),
                    exc, idempotent)
            except (ProviderUnavailable, ProviderTimeout) as exc:
                err = self._after_send(exc, None, idempotent)
            except httpx.RequestError as exc:  # an undecodable body, too many redirects
                raise ProviderProtocolError(self.provider, f"bad answer ({_name(exc)})",
                                            maybe_created=not idempotent) from exc
            except ProviderProtocolError as exc:
                exc.maybe_created = not idempotent
                raise
        assert err is not None
        raise err

    @staticmethod
    def _after_send(err: ProviderError, cause: BaseException | None,
                    idempotent: bool) -> ProviderError:
        """Returns the error to retry on, or raises it when the request may have landed."""
        if cause is not None:
            err.__cause__ = cause
        if not idempotent:
            err.maybe_created = True
            raise err
        return err


def _name(exc: BaseException) -> str:
    return type(exc).__name__


def json_object(resp: httpx.Response) -> dict[str, Any] | None:
    """The answer's JSON object, or None when the body is not one (the caller decides)."""
    try:
        body = json.loads(resp.content)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def retry_after(resp: httpx.Response) -> float | None:
    """Retry-After in seconds when given as a number (HTTP dates are ignored)."""
    value = resp.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def raise_for_code(caller: Caller, status: int, *, code: str | None = None,
                   reason: object = "", retry_after: float | None = None) -> NoReturn:
    """Raises the exception that a numeric status (HTTP, or kie's body code) maps to."""
    provider = caller.provider
    code = caller.safe(code if code is not None else status)
    why = caller.safe(reason) or f"status {status}"
    if status == 429:
        raise ProviderRateLimited(provider, code=code, reason=why, status=status,
                                  retry_after=retry_after)
    # kie answers 455 while under maintenance; everything 5xx is the provider's fault.
    if status >= 500 or status == 455:
        raise ProviderUnavailable(provider, f"provider fault ({code}): {why}", status=status)
    kind: type[ProviderRejected] = {
        400: ProviderBadInput, 401: ProviderAuthError, 402: ProviderNoBalance,
        403: ProviderAuthError, 404: TaskNotFound, 422: ProviderBadInput,
    }.get(status, ProviderRejected)
    raise kind(provider, code=code, reason=why, status=status)


def openai_style_error(caller: Caller, resp: httpx.Response,
                       body: Mapping[str, Any] | None) -> NoReturn:
    """Raises for an HTTP error answer shaped `{"error": {"code", "message", ...}}`."""
    error = body.get("error") if body is not None else None
    if isinstance(error, dict):
        code, reason = error.get("code"), error.get("message") or error.get("type")
    else:
        code, reason = None, error if isinstance(error, str) else None
    raise_for_code(caller, resp.status_code, code=None if code is None else str(code),
                   reason=reason or resp.reason_phrase, retry_after=retry_after(resp))
