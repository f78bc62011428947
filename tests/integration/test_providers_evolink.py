"""EvolinkClient against a local server that speaks evolink.ai's video API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from providers import (
    CallbackHint,
    EvolinkClient,
    ProviderAuthError,
    ProviderBadInput,
    ProviderNoBalance,
    ProviderProtocolError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RetryPolicy,
    TaskNotFound,
    TaskRequest,
    TaskState,
)
from tests.fakes import TIGHT, http_client
from tests.fakes.evolink import EvolinkFake, Reply

KEY = "evo-secret-key-123"
FAST = RetryPolicy(attempts=3, backoff=0.01)
I2V = TaskRequest(model="sora-2", prompt="wave hello", image_urls=("https://img.example/a.png",),
                  duration=8, aspect_ratio="16:9", callback_url="https://bot.example/cb?job=1")


@pytest.fixture
async def fake() -> AsyncIterator[EvolinkFake]:
    async with EvolinkFake(api_key=KEY) as server:
        yield server


@pytest.fixture
def evo(http: httpx.AsyncClient, fake: EvolinkFake) -> EvolinkClient:
    return EvolinkClient(http, api_key=KEY, base_url=fake.url, retry=FAST)


async def test_create_sends_evolink_wire_format(evo: EvolinkClient, fake: EvolinkFake) -> None:
    status = await evo.create_task(I2V)
    assert (status.state, status.progress) == (TaskState.PENDING, 0)
    assert status.task_id in fake.tasks
    assert fake.create_calls == [{
        "model": "sora-2", "prompt": "wave hello", "image_urls": ["https://img.example/a.png"],
        "aspect_ratio": "16:9", "duration": 8, "callback_url": "https://bot.example/cb?job=1"}]
    assert fake.authorizations == [f"Bearer {KEY}"]


async def test_text_to_video_sends_only_what_is_set(evo: EvolinkClient,
                                                    fake: EvolinkFake) -> None:
    await evo.create_task(TaskRequest(model="sora-2", prompt="p"))
    assert fake.create_calls == [{"model": "sora-2", "prompt": "p"}]


async def test_pending_processing_completed_with_progress(evo: EvolinkClient,
                                                          fake: EvolinkFake) -> None:
    fake.progression = (("pending", 0), ("processing", 10), ("processing", 70),
                        ("completed", 100))
    task_id = (await evo.create_task(I2V)).task_id
    seen = [await evo.query_task(task_id) for _ in range(4)]
    assert [(s.state, s.progress) for s in seen] == [
        (TaskState.PENDING, 0), (TaskState.RUNNING, 10), (TaskState.RUNNING, 70),
        (TaskState.SUCCEEDED, 100)]
    assert seen[-1].result_urls == (f"{fake.url}/files/{task_id}.mp4",)
    assert fake.query_calls == [task_id] * 4


async def test_failed_task_carries_the_error_message(evo: EvolinkClient,
                                                     fake: EvolinkFake) -> None:
    fake.progression = (("failed", 0),)
    task_id = (await evo.create_task(I2V)).task_id
    status = await evo.query_task(task_id)
    assert (status.state, status.error) == (TaskState.FAILED, "the video could not be generated")


@pytest.mark.parametrize(("status", "code", "kind"), [
    (400, "invalid_parameter", ProviderBadInput), (401, "unauthorized", ProviderAuthError),
    (402, "insufficient_quota", ProviderNoBalance), (403, "model_access_denied",
                                                     ProviderAuthError),
    (413, "payload_too_large", ProviderRejected)])
async def test_error_bodies_map_to_the_tree_without_retry(
        evo: EvolinkClient, fake: EvolinkFake, status: int, code: str,
        kind: type[ProviderRejected]) -> None:
    fake.script_next("create", Reply(status=status, json=fake.error(code, "told you so")))
    with pytest.raises(kind) as info:
        await evo.create_task(I2V)
    assert (info.value.code, info.value.reason, info.value.status) == (code, "told you so",
                                                                      status)
    assert len(fake.create_calls) == 1


async def test_invalid_parameter_from_the_server(evo: EvolinkClient, fake: EvolinkFake) -> None:
    with pytest.raises(ProviderBadInput, match="duration must be 4, 8 or 12"):
        await evo.create_task(TaskRequest(model="sora-2", prompt="p", duration=10))


async def test_wrong_key_is_auth_error(http: httpx.AsyncClient, fake: EvolinkFake) -> None:
    evo = EvolinkClient(http, api_key="nope", base_url=fake.url, retry=FAST)
    with pytest.raises(ProviderAuthError, match="Invalid API key"):
        await evo.query_task("task-unified-1")


async def test_unknown_task_is_task_not_found(evo: EvolinkClient, fake: EvolinkFake) -> None:
    with pytest.raises(TaskNotFound):
        await evo.query_task("task/../../v1/videos/generations")
    assert fake.query_calls == ["task/../../v1/videos/generations"]  # quoted, not a path


async def test_create_429_with_retry_after_is_retried(evo: EvolinkClient,
                                                      fake: EvolinkFake) -> None:
    fake.script_next("create", Reply(status=429, headers={"Retry-After": "0"},
                                     json=fake.error("rate_limit_exceeded", kind="rate_limit")))
    status = await evo.create_task(I2V)
    assert status.task_id in fake.tasks
    assert len(fake.create_calls) == 2
    assert len(fake.tasks) == 1


async def test_create_429_asking_too_long_a_wait_is_raised(evo: EvolinkClient,
                                                           fake: EvolinkFake) -> None:
    fake.script_next("create", Reply(status=429, headers={"Retry-After": "60"},
                                     json=fake.error("rate_limit_exceeded")))
    with pytest.raises(ProviderRateLimited) as info:
        await evo.create_task(I2V)
    assert info.value.retry_after == 60
    assert len(fake.create_calls) == 1


async def test_create_5xx_is_not_retried(evo: EvolinkClient, fake: EvolinkFake) -> None:
    fake.script_next("create", Reply(status=503, json=fake.error("service_unavailable")))
    with pytest.raises(ProviderUnavailable) as info:
        await evo.create_task(I2V)
    assert info.value.maybe_created
    assert len(fake.create_calls) == 1


async def test_create_dropped_connection_is_not_retried(evo: EvolinkClient,
                                                        fake: EvolinkFake) -> None:
    fake.script_next("create", Reply(drop=True))
    with pytest.raises(ProviderUnavailable) as info:
        await evo.create_task(I2V)
    assert info.value.maybe_created
    assert len(fake.create_calls) == 1


@pytest.fixture
async def tight_evo(fake: EvolinkFake) -> AsyncIterator[EvolinkClient]:
    async with http_client(TIGHT) as tight:
        yield EvolinkClient(tight, api_key=KEY, base_url=fake.url, retry=FAST)


async def test_create_timeout_is_not_retried(tight_evo: EvolinkClient,
                                             fake: EvolinkFake) -> None:
    fake.script_next("create", Reply(delay=1.0, json={}))
    with pytest.raises(ProviderTimeout):
        await tight_evo.create_task(I2V)
    assert len(fake.create_calls) == 1


async def test_query_retries_dropped_connection_and_5xx(evo: EvolinkClient,
                                                        fake: EvolinkFake) -> None:
    task_id = (await evo.create_task(I2V)).task_id
    fake.script_next("query", Reply(drop=True), Reply(status=500, json=fake.error("internal")))
    assert (await evo.query_task(task_id)).state is TaskState.PENDING
    assert len(fake.query_calls) == 3


async def test_query_timeouts_are_bounded(tight_evo: EvolinkClient,
                                          fake: EvolinkFake) -> None:
    fake.script_next("query", *[Reply(delay=1.0, json={})] * 3)
    with pytest.raises(ProviderTimeout) as info:
        await tight_evo.query_task("task-unified-1")
    assert not info.value.maybe_created
    assert len(fake.query_calls) == 3


@pytest.mark.parametrize("reply", [
    Reply(body=b"<html>oops</html>"),
    Reply(json={"id": "t", "status": "queued"}),
    Reply(json={"id": "t", "status": "completed", "results": "https://x/v.mp4"}),
], ids=["html", "unknown-status", "results-not-list"])
async def test_malformed_answers_are_protocol_errors(evo: EvolinkClient, fake: EvolinkFake,
                                                     reply: Reply) -> None:
    fake.script_next("query", reply)
    with pytest.raises(ProviderProtocolError):
        await evo.query_task("t")
    assert len(fake.query_calls) == 1


async def test_unsigned_callbacks_over_http(http: httpx.AsyncClient, fake: EvolinkFake) -> None:
    evo = EvolinkClient(http, api_key=KEY, base_url=fake.url)
    hints: list[CallbackHint] = []

    async def receive(request: web.Request) -> web.Response:
        hints.append(evo.parse_callback(request.headers, await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/callbacks/evolink", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/callbacks/evolink"
        task_id = (await evo.create_task(TaskRequest(model="sora-2", prompt="p",
                                                     callback_url=url))).task_id
        assert await fake.send_callback(task_id) == 200
        assert await fake.send_callback(task_id, state=("processing", 50)) == 200  # late, stale
        assert await fake.send_callback(task_id) == 200
    finally:
        await runner.cleanup()
    assert [h.verified for h in hints] == [False, False, False]
    assert [h.status.state for h in hints if h.status] == [
        TaskState.SUCCEEDED, TaskState.RUNNING, TaskState.SUCCEEDED]
    assert hints[0] == hints[2]
