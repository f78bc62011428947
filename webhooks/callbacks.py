"""`POST /callbacks/{provider}?job=<id>&token=<hmac>`: a provider says a task moved on.

Verify, parse, hand over, answer at once:
1. the provider must be one we run (else 404);
2. `job` and `token` must be the pair `JobService.callback_url` minted (else 401: nothing is
   parsed, scheduled or changed; the body was only read, within the size and time limits, by
   `body_middleware`);
3. the body (at most `max_body_bytes`, else 413) goes to the provider's own parser, which
   checks the provider's signature where it signs (`BadSignature`: 401; unreadable: 400);
4. the hint is handed to `JobService.on_callback` in the background and the answer is 200
   (503 with Retry-After, nothing scheduled, when the handover backlog is full).
A replay is accepted and changes nothing: the job service acts only on an active job.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from ._deps import DEPS, HANDOVER
from ._errors import Busy, NotFound, Unauthorized

__all__ = ["ROUTE_NAME", "callback"]

ROUTE_NAME = "callback"
_MAX_ID_DIGITS = 18  # fits a BIGINT
_MAX_TOKEN_CHARS = 128


def _reference(query: Mapping[str, str]) -> tuple[int, str]:
    """The job id and token from the query, well-formed, or Unauthorized."""
    raw_job, token = query.get("job", ""), query.get("token", "")
    if not (raw_job.isascii() and raw_job.isdigit() and len(raw_job) <= _MAX_ID_DIGITS):
        raise Unauthorized("missing or bad job reference")
    # hmac.compare_digest refuses non-ASCII str with a TypeError: keep such tokens out.
    if not token or len(token) > _MAX_TOKEN_CHARS or not token.isascii():
        raise Unauthorized("missing or bad job reference")
    return int(raw_job), token


async def callback(request: web.Request) -> web.Response:
    """Checks the callback's job reference and signature, then hands the news over."""
    deps = request.app[DEPS]
    name = request.match_info["provider"]
    provider = deps.providers.get(name)
    if provider is None:
        raise NotFound("unknown provider")
    job_id, token = _reference(request.query)
    if not deps.jobs.check_token(name, job_id, token):
        raise Unauthorized("missing or bad job reference")
    body = await request.read()
    hint = provider.parse_callback(request.headers, body)
    if not request.app[HANDOVER].submit(name, job_id, hint):
        raise Busy("busy, retry later")
    return web.json_response({"ok": True})
