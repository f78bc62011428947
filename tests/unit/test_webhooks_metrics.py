"""Metrics in their own registry, TimedProvider, and the one exception → status mapping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from providers import (
    BadCallback,
    BadSignature,
    CallbackHint,
    KieClient,
    Provider,
    ProviderTimeout,
    TaskRequest,
    TaskState,
    TaskStatus,
)
from storage import InvalidKey, ObjectNotFound
from tests.fakes import http_client
from tests.fakes.kie import signed_headers
from webhooks import Metrics, TimedProvider
from webhooks._errors import Busy, Forbidden, NotFound, Unauthorized, status_of


class Scripted:
    """A provider whose calls do what the test says."""

    name = "scripted"

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.delay = 0.0
        self.hint = CallbackHint(task_id="t", verified=False, status=None)

    async def create_task(self, req: TaskRequest) -> TaskStatus:
        return await self._answer()

    async def query_task(self, task_id: str) -> TaskStatus:
        return await self._answer()

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackHint:
        return self.hint

    async def _answer(self) -> TaskStatus:
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return TaskStatus(task_id="t", state=TaskState.RUNNING)


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_timed_provider_records_each_call_and_how_it_ended() -> None:
    metrics, inner = Metrics(), Scripted()
    provider: Provider = TimedProvider(inner, metrics)
    assert provider.name == "scripted"
    await provider.create_task(TaskRequest(model="m", prompt="p"))
    inner.error = ProviderTimeout("scripted", "slow")
    with pytest.raises(ProviderTimeout):
        await provider.query_task("t")
    inner.error = KeyError("bug")
    with pytest.raises(KeyError):
        await provider.query_task("t")
    count = "videofly_provider_call_duration_seconds_count"
    for operation, outcome in (("create_task", "ok"), ("query_task", "ProviderTimeout"),
                               ("query_task", "unexpected")):
        assert value(metrics, count, provider="scripted", operation=operation,
                     outcome=outcome) == 1


async def test_timed_provider_records_a_cancelled_call_and_its_duration() -> None:
    metrics, inner = Metrics(), Scripted()
    inner.delay = 10.0
    task = asyncio.create_task(TimedProvider(inner, metrics).query_task("t"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    labels = {"provider": "scripted", "operation": "query_task", "outcome": "cancelled"}
    assert value(metrics, "videofly_provider_call_duration_seconds_count", **labels) == 1
    took = value(metrics, "videofly_provider_call_duration_seconds_sum", **labels)
    assert took is not None
    assert 0.04 < took < 5


def test_timed_provider_passes_callbacks_through_and_metrics_wraps_every_provider() -> None:
    metrics, inner = Metrics(), Scripted()
    wrapped = metrics.timed({"a": inner, "b": Scripted()})
    assert set(wrapped) == {"a", "b"}
    assert all(isinstance(p, TimedProvider) for p in wrapped.values())
    assert wrapped["a"].parse_callback({}, b"") is inner.hint


@pytest.mark.parametrize(("status", "outcome"), [
    (200, "accepted"), (400, "malformed"), (401, "unauthorized"), (404, "unknown_provider"),
    (413, "too_large"), (503, "busy"), (500, "error"), (499, "error"),
])
def test_callback_outcomes_come_from_the_answer(status: int, outcome: str) -> None:
    metrics = Metrics()
    metrics.callback("kie", status)
    assert value(metrics, "videofly_callbacks_total", provider="kie", outcome=outcome) == 1


def test_each_metrics_has_its_own_registry_and_none_touches_the_global_one() -> None:
    one, two = Metrics(), Metrics()
    one.callback("kie", 200)
    assert value(two, "videofly_callbacks_total", provider="kie", outcome="accepted") is None
    assert REGISTRY.get_sample_value("videofly_callbacks_total",
                                     {"provider": "kie", "outcome": "accepted"}) is None
    assert b"videofly_jobs" in one.render()


@pytest.mark.parametrize(("exc", "expected"), [
    (BadSignature("kie", "signature does not match"), 401),
    (BadCallback("kie", "body is not JSON"), 400),
    (InvalidKey("bad key"), 404),
    (ObjectNotFound("gone"), 404),
    (Unauthorized("x"), 401),
    (Forbidden("x"), 403),
    (NotFound("x"), 404),
    (Busy("x"), 503),
    (web.HTTPRequestEntityTooLarge(max_size=10, actual_size=11), 413),
    (RuntimeError("a bug"), None),
])
def test_one_mapping_from_exceptions_to_statuses(exc: Exception, expected: int | None) -> None:
    known = status_of(exc)
    assert (known[0] if known else None) == expected


# --- kie: signature problems are BadSignature, unreadable bodies plain BadCallback -----------


@pytest.fixture
async def kie() -> AsyncIterator[KieClient]:
    async with http_client() as client:
        yield KieClient(client, api_key="k", webhook_key="hook-key")


BODY = b'{"code": 200, "msg": "ok", "data": {"taskId": "t1", "state": "generating"}}'


@pytest.mark.parametrize("headers", [
    signed_headers("t1", "another-key"),
    signed_headers("t1", "hook-key", timestamp=int(time.time()) - 301),
    {**signed_headers("t1", "hook-key"), "X-Webhook-Timestamp": "later"},
], ids=["wrong-key", "stale", "garbage-timestamp"])
def test_kie_signature_problems_are_bad_signature(kie: KieClient,
                                                  headers: dict[str, str]) -> None:
    with pytest.raises(BadSignature):
        kie.parse_callback(headers, BODY)


def test_kie_unreadable_body_is_bad_callback_not_bad_signature(kie: KieClient) -> None:
    with pytest.raises(BadCallback) as caught:
        kie.parse_callback(signed_headers("t1", "hook-key"), b"not json")
    assert not isinstance(caught.value, BadSignature)


def test_bad_signature_is_exported_with_the_tree() -> None:
    import providers

    assert "BadSignature" in providers.__all__
    assert "BadSignature" in (providers.__doc__ or "")
