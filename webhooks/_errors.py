"""The one place that turns exceptions into HTTP answers.

Routes raise; `errors_middleware` answers. Every refusal is a small JSON body
`{"ok": false, "error": "<reason>"}` whose reason never echoes the request.

    WebError                    refusals the routes raise themselves  .status .reason .headers
     ├── Unauthorized    401    a callback URL without a valid job token
     ├── Forbidden       403    a media link that is not signed or has expired
     ├── NotFound        404    unknown provider, route switched off, no such file
     └── Busy            503    the callback backlog is full (Retry-After: the provider retries)
    providers.BadSignature 401  signed, but not by the provider's key (or too long ago)
    providers.BadCallback  400  a body the provider's parser cannot read
    storage.InvalidKey     404  a key that may not be used as a path
    storage.ObjectNotFound 404
    web.HTTPException      its own status (405, and 413 from `request.read()` over the limit)
    anything else          500, logged with its traceback and an incident id
"""

from __future__ import annotations

import logging
import uuid
from typing import ClassVar

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from providers import BadCallback, BadSignature
from storage import InvalidKey, ObjectNotFound

__all__ = ["Busy", "Forbidden", "NotFound", "Unauthorized", "WebError", "errors_middleware",
           "status_of"]

log = logging.getLogger("webhooks")


class WebError(Exception):
    status: ClassVar[int] = 400
    headers: ClassVar[dict[str, str] | None] = None

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unauthorized(WebError):
    status = 401


class Forbidden(WebError):
    status = 403


class NotFound(WebError):
    status = 404


class Busy(WebError):
    status = 503
    headers: ClassVar[dict[str, str] | None] = {"Retry-After": "30"}


# Most specific first: BadSignature is a BadCallback.
_MAPPED: tuple[tuple[type[Exception], int, str], ...] = (
    (BadSignature, 401, "bad signature"),
    (BadCallback, 400, "malformed callback"),
    (InvalidKey, 404, "not found"),
    (ObjectNotFound, 404, "not found"),
)


def status_of(exc: Exception) -> tuple[int, str] | None:
    """The status and reason for an exception the routes may raise, or None for a bug."""
    if isinstance(exc, WebError):
        return exc.status, exc.reason
    if isinstance(exc, web.HTTPException):
        return exc.status, exc.reason.lower()
    for kind, status, reason in _MAPPED:
        if isinstance(exc, kind):
            return status, reason
    return None


def _refusal(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"ok": False, "error": reason}, status=status, headers=headers)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answers every exception a route raises; the traceback of a bug goes to the log only."""
    try:
        return await handler(request)
    except WebError as exc:
        return _refusal(exc.status, exc.reason, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow = exc.headers.get(hdrs.ALLOW)
        return _refusal(exc.status, exc.reason.lower(), {hdrs.ALLOW: allow} if allow else None)
    except Exception as exc:
        known = status_of(exc)
        if known is not None:
            return _refusal(*known)
        incident = uuid.uuid4().hex[:12]
        log.exception("incident %s: %s %s failed", incident, request.method, request.path)
        return _refusal(500, f"internal error (incident {incident})")
