"""Operator routes: `GET /healthz` (is the database reachable?) and `GET /metrics`."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from core.db import read

from ._deps import DEPS

__all__ = ["HEALTH_TIMEOUT_SECONDS", "healthz", "metrics"]

log = logging.getLogger("webhooks")

HEALTH_TIMEOUT_SECONDS = 2.0


async def healthz(request: web.Request) -> web.Response:
    """Answers 200 if the database answers `SELECT 1` in time, else 503."""
    engine = request.app[DEPS].engine
    try:
        # read: on SQLite a plain connection would BEGIN IMMEDIATE and queue for the write
        # lock behind every writer; a read transaction takes no lock.
        async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS), read(engine) as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # whatever the driver raises, the answer is "not healthy"
        # The type only: driver messages can carry the database URL.
        log.warning("healthz: database unreachable: %s", type(exc).__name__)
        return web.json_response({"status": "unavailable"}, status=503)
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    """Refreshes the database gauges, then renders the app's registry as Prometheus text."""
    deps = request.app[DEPS]
    await deps.metrics.refresh(deps.engine)
    return web.Response(body=deps.metrics.render(),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})
