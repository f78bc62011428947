"""`create_app(deps)`: the aiohttp application, its routes, middlewares and lifetime.

    app = create_app(WebDeps(engine=…, jobs=…, providers=…, storage=…, metrics=…,
                             max_body_bytes=config.http.max_body_bytes, demo_dir=…))
    runner = web.AppRunner(app, access_log_class=AccessLogger)

Middlewares, outermost first: `observe` times every request per route and counts callback
outcomes; `errors_middleware` turns whatever a route raises into its answer; `body_middleware`
reads the body within `deps.body_timeout` (408) and turns a client that went away mid-body into
a quiet 400 (see `_body`). Malformed requests are logged at INFO without their request line.
On shutdown the app gives callback handovers still running up to `SHUTDOWN_WAIT_SECONDS` to
finish; a background probe (`health`) keeps /healthz's answer current while the app runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from storage import LocalStorage

from ._body import body_middleware, quiet_protocol_errors
from ._deps import DEPS, HANDOVER, HEALTH, WebDeps
from ._errors import errors_middleware, status_of
from ._handover import Handover
from .callbacks import ROUTE_NAME, callback
from .health import HealthProbe
from .media import demo_clip, media
from .ops import healthz, metrics, readyz
from .payments import creem_webhook, stripe_webhook
from .telegram import telegram_update

__all__ = ["DEPS", "HANDOVER", "SHUTDOWN_WAIT_SECONDS", "AccessLogger", "WebDeps",
           "create_app"]

SHUTDOWN_WAIT_SECONDS = 10.0


def create_app(deps: WebDeps) -> web.Application:
    """The web application over `deps`; bodies over `deps.max_body_bytes` get 413."""
    quiet_protocol_errors()
    app = web.Application(client_max_size=deps.max_body_bytes,
                          middlewares=[observe, errors_middleware, body_middleware])
    app[DEPS] = deps
    app[HANDOVER] = Handover(deps.jobs)
    app[HEALTH] = HealthProbe(deps.engine, interval=deps.health_interval,
                              max_age=deps.health_max_age)
    app.cleanup_ctx.append(_probe_health)
    app.cleanup_ctx.append(_drain_handovers)
    app.router.add_post("/callbacks/{provider}", callback, name=ROUTE_NAME)
    if isinstance(deps.storage, LocalStorage):
        app.router.add_get("/media/{key:.+}", media, name="media")
    if deps.demo_dir is not None:
        app.router.add_get("/demo/{name}", demo_clip, name="demo")
    if deps.telegram is not None:
        app.router.add_post("/telegram", telegram_update, name="telegram")
    if deps.wechat is not None:  # its own, smaller body limit on top of the server's
        from .wechat import wechat_get, wechat_post  # wechatpy only when WeChat is served

        app.router.add_get("/wechat", wechat_get, name="wechat_get")
        app.router.add_post("/wechat", wechat_post, name="wechat")
    if deps.payments is not None:
        app.router.add_post("/payments/stripe", stripe_webhook, name="payments_stripe")
        app.router.add_post("/payments/creem", creem_webhook, name="payments_creem")
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_get("/metrics", metrics, name="metrics")
    return app


async def _probe_health(app: web.Application) -> AsyncIterator[None]:
    """Runs the /healthz probe while the server runs."""
    await app[HEALTH].start()
    yield
    await app[HEALTH].stop()


async def _drain_handovers(app: web.Application) -> AsyncIterator[None]:
    """On shutdown, lets running callback handovers finish (bounded), then cancels the rest."""
    yield
    await app[HANDOVER].close(SHUTDOWN_WAIT_SECONDS)


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Records the handler's latency per route, and each callback's outcome."""
    started = time.perf_counter()
    status = 499  # stays so only if the handler is cancelled: the client went away
    try:
        response = await handler(request)
        status = response.status
        return response
    except Exception as exc:  # errors_middleware answers all but HTTP redirects
        known = status_of(exc)
        status = known[0] if known else 500
        raise
    finally:
        _record(request, status, time.perf_counter() - started)


def _record(request: web.Request, status: int, seconds: float) -> None:
    deps = request.app[DEPS]
    route = request.match_info.route
    resource = route.resource
    deps.metrics.request(request.method, resource.canonical if resource else "unmatched",
                         status, seconds)
    if route.name == ROUTE_NAME:
        name = request.match_info.get("provider", "")
        deps.metrics.callback(name if name in deps.providers else "unknown", status)


class AccessLogger(AbstractAccessLogger):
    """Logs method, path, status and time, never the query string: callback URLs carry job
    tokens and media links carry signatures."""

    @property
    def enabled(self) -> bool:
        """False while INFO is off for the logger: aiohttp then skips the call entirely."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %.1fms", request.method, request.path, response.status,
                         time * 1000)

