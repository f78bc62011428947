"""What a hostile or broken client cannot do to the server: stall it, or fill its log.

- `body_middleware` reads every request body before the route runs, within the body timeout
  and the size limit: a client that sends its body too slowly gets 408, one that sends half
  a body and goes away (or a body that does not match its framing) gets a quiet 400, and
  neither reaches a route or the log's ERROR level. aiohttp keeps the body it read, so the
  route's own `request.read()` returns it at once.
- Headers have their own limit: aiohttp closes a connection that has not sent a whole request
  head within its keep-alive timeout (counted from the connection's start, and again after
  each answer), which `bot.app.serve` sets to `[http] header_timeout_seconds`.
- `quiet_protocol_errors` keeps aiohttp's parser from logging a malformed request at ERROR
  with its traceback: the exception's message holds the raw request line, query string and
  all, and a callback's query carries its job token. Such a record is rewritten to one INFO
  line naming the error's type and status, never the request.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError

from ._deps import DEPS
from ._errors import WebError

__all__ = ["ClientGone", "TooSlow", "body_middleware", "quiet_protocol_errors"]

log = logging.getLogger("webhooks")

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ClientGone(WebError):
    status = 400


class TooSlow(WebError):
    status = 408


@web.middleware
async def body_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Reads the body within the body timeout before the route sees the request."""
    if request.method in _BODY_METHODS and request.body_exists:
        timeout = request.app[DEPS].body_timeout
        try:
            if request.content.is_eof():  # all of it came with the headers: nothing to wait
                await request.read()      # for, no timer (most webhook bodies are small)
            else:
                async with asyncio.timeout(timeout):
                    await request.read()  # over client_max_size: 413 (errors_middleware)
        except TimeoutError:
            log.info("%s %s: body not received within %gs", request.method, request.path,
                     timeout)
            raise TooSlow("request body too slow") from None
        except (ConnectionError, HttpProcessingError, RequestPayloadError) as exc:
            log.info("%s %s: incomplete body (%s)", request.method, request.path,
                     type(exc).__name__)
            raise ClientGone("incomplete request body") from None
    return await handler(request)


class _ProtocolErrors(logging.Filter):
    """Rewrites aiohttp's "Error handling request" records for malformed requests."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = "malformed request refused: %s (status %s)"
            record.args = (type(exc).__name__, exc.code)
            record.exc_info = record.exc_text = None
            record.stack_info = None
        return True


_FILTER = _ProtocolErrors()


def quiet_protocol_errors(logger: logging.Logger | None = None) -> None:
    """Installs the rewrite on aiohttp's server logger (once; idempotent)."""
    target = logger or logging.getLogger("aiohttp.server")
    if _FILTER not in target.filters:
        target.addFilter(_FILTER)
