"""Prometheus metrics of one application instance, in their own registry.

Each `Metrics` owns a `CollectorRegistry` (never the process-global one), so two apps in one
process, or two tests, never share a counter. Counters and histograms are updated as things
happen; the two gauges read from the database are refreshed when `/metrics` is scraped, with one
GROUP BY each.

    videofly_callbacks_total{provider, outcome}     accepted | unauthorized | malformed |
                                                     unknown_provider | too_large | busy |
                                                     error
    videofly_http_request_duration_seconds{method, route, status}
    videofly_provider_call_duration_seconds{provider, operation, outcome}
    videofly_jobs{state}                             jobs by state (every state, zeros too)
    videofly_ledger_entries{kind}                    wallet ledger entries by kind
    videofly_metrics_refresh_errors_total            scrapes whose database read failed

`TimedProvider` wraps a provider client and times its calls; the composition root wraps every
provider with `metrics.timed(providers)` before handing them to the `JobService`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import read
from generation import state_counts
from providers import CallbackHint, Provider, ProviderError, TaskRequest, TaskStatus
from wallet import queries

__all__ = ["CALLBACK_OUTCOMES", "JOB_STATES", "Metrics", "TimedProvider"]

log = logging.getLogger("webhooks.metrics")

JOB_STATES = ("pending", "generating", "uploading", "completed", "failed")
CALLBACK_OUTCOMES = {200: "accepted", 400: "malformed", 401: "unauthorized",
                     404: "unknown_provider", 413: "too_large", 503: "busy"}
REFRESH_TIMEOUT_SECONDS = 2.0
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PROVIDER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


class Metrics:
    """The instruments, registered in `self.registry`."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.callbacks = Counter(
            "videofly_callbacks", "Provider callbacks received, by outcome.",
            ("provider", "outcome"), registry=r)
        self.http_latency = Histogram(
            "videofly_http_request_duration_seconds", "Time spent in the route's handler.",
            ("method", "route", "status"), buckets=_HTTP_BUCKETS, registry=r)
        self.provider_latency = Histogram(
            "videofly_provider_call_duration_seconds", "Calls to AI providers.",
            ("provider", "operation", "outcome"), buckets=_PROVIDER_BUCKETS, registry=r)
        self.jobs = Gauge("videofly_jobs", "Generation jobs by state (read at scrape).",
                          ("state",), registry=r)
        self.ledger = Gauge("videofly_ledger_entries",
                            "Wallet ledger entries by kind (read at scrape).", ("kind",),
                            registry=r)
        self.refresh_errors = Counter(
            "videofly_metrics_refresh_errors",
            "Scrapes whose database read failed (the job and ledger gauges are then stale).",
            registry=r)

    def callback(self, provider: str, status: int) -> None:
        """Counts a callback by the HTTP status it was answered with."""
        self.callbacks.labels(provider, CALLBACK_OUTCOMES.get(status, "error")).inc()

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_latency.labels(method, route, str(status)).observe(seconds)

    def provider_call(self, provider: str, operation: str, outcome: str,
                      seconds: float) -> None:
        self.provider_latency.labels(provider, operation, outcome).observe(seconds)

    def timed(self, providers: Mapping[str, Provider]) -> dict[str, Provider]:
        """The same providers, each wrapped in a `TimedProvider` recording here."""
        return {name: TimedProvider(p, self) for name, p in providers.items()}

    async def refresh(self, engine: AsyncEngine) -> None:
        """Reads jobs by state and ledger entries by kind; on failure keeps the old values."""
        try:
            async with asyncio.timeout(REFRESH_TIMEOUT_SECONDS), read(engine) as conn:
                states = (await state_counts(conn)).items()
                kinds = (await queries.ledger_by_kind(conn)).items()
        except Exception as exc:  # a scrape must still answer when the database is down
            log.warning("metrics: cannot read jobs and ledger counts: %s", type(exc).__name__)
            self.refresh_errors.inc()
            return
        by_state = dict.fromkeys(JOB_STATES, 0) | {s: n for s, n in states}
        for state, count in by_state.items():
            self.jobs.labels(state).set(count)
        self.ledger.clear()  # a kind that vanished (its rows deleted) must not linger
        for kind, count in kinds:
            self.ledger.labels(kind).set(count)

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)


class TimedProvider:
    """A `Provider` that records how long each call to the wrapped one took, and how it ended
    (`ok`, the `ProviderError` subclass it raised, `cancelled` or `unexpected`)."""

    def __init__(self, inner: Provider, metrics: Metrics) -> None:
        self.inner = inner
        self.name = inner.name
        # For crash recovery (generation.sweeps.recover): the demo's tasks live in the process.
        self.tasks_die_with_process = bool(getattr(inner, "tasks_die_with_process", False))
        self._metrics = metrics

    def __repr__(self) -> str:
        return f"TimedProvider({self.inner!r})"

    async def create_task(self, req: TaskRequest) -> TaskStatus:
        return await self._timed("create_task", self.inner.create_task(req))

    async def query_task(self, task_id: str) -> TaskStatus:
        return await self._timed("query_task", self.inner.query_task(task_id))

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackHint:
        return self.inner.parse_callback(headers, body)

    async def _timed(self, operation: str, call: Awaitable[TaskStatus]) -> TaskStatus:
        started, outcome = time.perf_counter(), "unexpected"
        try:
            status = await call
            outcome = "ok"
            return status
        except ProviderError as exc:
            outcome = type(exc).__name__
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self._metrics.provider_call(self.name, operation, outcome,
                                        time.perf_counter() - started)
