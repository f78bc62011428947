"""Operator routes: `GET /healthz` (liveness), `GET /readyz` (readiness) and `GET /metrics`.

`/healthz` answers from the background probe (`health.HealthProbe`): 200 while the last
successful database round trip is recent, 503 after; it never waits on the database itself.
`/readyz` makes a round trip now, within `HEALTH_TIMEOUT_SECONDS`: 200 or 503.
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from ._deps import DEPS, HEALTH
from .health import round_trip

__all__ = ["HEALTH_TIMEOUT_SECONDS", "healthz", "metrics", "readyz"]

log = logging.getLogger("webhooks")

HEALTH_TIMEOUT_SECONDS = 2.0


async def healthz(request: web.Request) -> web.Response:
    """Answers 200 if the background probe reached the database recently, else 503."""
    probe = request.app[HEALTH]
    if probe.healthy:
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "unavailable"}, status=503)


async def readyz(request: web.Request) -> web.Response:
    """Answers 200 if the database answers `SELECT 1` in time now, else 503."""
    try:
        await round_trip(request.app[DEPS].engine, HEALTH_TIMEOUT_SECONDS)
    except Exception as exc:  # whatever the driver raises, the answer is "not ready"
        # The type only: driver messages can carry the database URL.
        log.warning("readyz: database unreachable: %s", type(exc).__name__)
        return web.json_response({"status": "unavailable"}, status=503)
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    """Refreshes the database gauges, then renders the app's registry as Prometheus text."""
    deps = request.app[DEPS]
    await deps.metrics.refresh(deps.engine)
    return web.Response(body=deps.metrics.render(),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})
