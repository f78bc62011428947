"""The one aiohttp server: provider callbacks, media, demo clips, health and metrics.

    metrics = Metrics()
    providers = metrics.timed({"kie": KieClient(...), "evolink": EvolinkClient(...)})
    jobs = JobService(..., providers=providers, ...)
    app = create_app(WebDeps(engine=engine, jobs=jobs, providers=providers, storage=storage,
                             metrics=metrics, max_body_bytes=config.http.max_body_bytes))
    runner = web.AppRunner(app, access_log_class=AccessLogger)   # no query strings in logs

Routes (each verifies, parses and hands over; none holds business logic):

    POST /callbacks/{provider}?job=&token=   callbacks.py  → JobService.on_callback (background)
    GET  /media/{key}?exp=&sig=              media.py      local storage only
    GET  /demo/{name}                        media.py      only with a demo_dir
    POST /telegram                           telegram.py   → the bot's update queue
    GET|POST /wechat                         wechat.py     → the WeChat channel's sink
    POST /payments/stripe, /payments/creem   payments.py   → Payments.apply (only with payments)
    GET  /healthz, GET /metrics              ops.py

Modules: `app` (factory, middlewares, lifetime), `_deps` (WebDeps, app keys), `_errors` (the
one exception → response mapping, its tree drawn there), `_handover` (background callback
work: one callback at a time per job, 32 jobs at once, a bounded backlog beyond which callbacks
get 503), `metrics` (Metrics, TimedProvider).

Latency: a full collection of Python's cyclic GC walks everything a service has loaded and
stalls every request in flight for ~100 ms (see `bench/callbacks.py`); a service should call
`gc.collect(); gc.freeze()` once it has started.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._deps import DEPS, HANDOVER, WebDeps
    from ._handover import Handover
    from .app import SHUTDOWN_WAIT_SECONDS, AccessLogger, create_app
    from .metrics import Metrics, TimedProvider
    from .telegram import TelegramWebhook

# Where each name lives. They are imported on first use (PEP 562), so that `webhooks.metrics`
# can be imported without aiohttp: `videofly chat` shows its first menu before the server
# (and aiohttp's import, about 0.3 s of CPU) starts (bench/startup.py).
_HOMES = {"DEPS": "._deps", "HANDOVER": "._deps", "WebDeps": "._deps", "Handover": "._handover",
          "SHUTDOWN_WAIT_SECONDS": ".app", "AccessLogger": ".app", "create_app": ".app",
          "Metrics": ".metrics", "TimedProvider": ".metrics", "TelegramWebhook": ".telegram"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name], __name__), name)


__all__ = [
    "DEPS",
    "HANDOVER",
    "SHUTDOWN_WAIT_SECONDS",
    "AccessLogger",
    "Handover",
    "Metrics",
    "TelegramWebhook",
    "TimedProvider",
    "WebDeps",
    "create_app",
]
