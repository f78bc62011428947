"""KieClient against a local server that speaks kie.ai's jobs API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from providers import (
    CallbackHint,
    KieClient,
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
from tests.fakes.kie import KieFake, Reply

KEY = "kie-secret-key-123"
FAST = RetryPolicy(attempts=3, backoff=0.01)
T2V = TaskRequest(model="sora-2-text-to-video", prompt="a cat surfing", duration=10,
                  aspect_ratio="9:16", callback_url="https://bot.example/callbacks/kie?job=7")


@pytest.fixture
async def fake() -> AsyncIterator[KieFake]:
    async with KieFake(api_key=KEY) as server:
        yield server


@pytest.fixture
def kie(http: httpx.AsyncClient, fake: KieFake) -> KieClient:
    return KieClient(http, api_key=KEY, base_url=fake.url + "/", retry=FAST)


async def test_create_sends_kie_wire_format(kie: KieClient, fake: KieFake) -> None:
    status = await kie.create_task(T2V)
    assert status.state is TaskState.PENDING
    assert status.task_id in fake.tasks
    assert fake.create_calls == [{
        "model": "sora-2-text-to-video", "callBackUrl": "https://bot.example/callbacks/kie?job=7",
        "input": {"prompt": "a cat surfing", "aspect_ratio": "portrait", "n_frames": "10"}}]
    assert fake.authorizations == [f"Bearer {KEY}"]


async def test_image_to_video_sends_image_urls_and_landscape(kie: KieClient,
                                                             fake: KieFake) -> None:
    await kie.create_task(TaskRequest(model="sora-2-image-to-video", prompt="move",
                                      image_urls=("https://img.example/a.jpg",), duration=15,
                                      aspect_ratio="16:9"))
    assert fake.create_calls[0]["input"] == {
        "prompt": "move", "image_urls": ["https://img.example/a.jpg"],
        "aspect_ratio": "landscape", "n_frames": "15"}
    assert "callBackUrl" not in fake.create_calls[0]


async def test_queued_generating_success_across_queries(kie: KieClient, fake: KieFake) -> None:
    fake.progression = ("waiting", "queuing", "generating", "success")
    task_id = (await kie.create_task(T2V)).task_id
    states = [(await kie.query_task(task_id)).state for _ in range(5)]
    assert states == [TaskState.PENDING, TaskState.PENDING, TaskState.RUNNING,
                      TaskState.SUCCEEDED, TaskState.SUCCEEDED]
    done = await kie.query_task(task_id)
    assert done.result_urls == (f"{fake.url}/files/{task_id}.mp4",)
    assert (done.progress, done.error) == (100, None)
    assert fake.query_calls == [task_id] * 6


async def test_failed_task_carries_fail_msg(kie: KieClient, fake: KieFake) -> None:
    fake.progression = ("generating", "fail")
    task_id = (await kie.create_task(T2V)).task_id
    fake.tasks[task_id].fail_msg = "prompt violates content policy"
    await kie.query_task(task_id)
    status = await kie.query_task(task_id)
    assert (status.state, status.error, status.result_urls) == (
        TaskState.FAILED, "prompt violates content policy", ())


async def test_failed_record_with_code_501_is_a_failed_task(kie: KieClient,
                                                            fake: KieFake) -> None:
    fake.progression = ("fail",)
    task_id = (await kie.create_task(T2V)).task_id
    fake.script_next("query", Reply(body=fake.callback_body(task_id)))  # code 501, state fail
    status = await kie.query_task(task_id)
    assert (status.state, status.error) == (TaskState.FAILED, fake.tasks[task_id].fail_msg)
    assert len(fake.query_calls) == 1


@pytest.mark.parametrize("msg_key", ["msg", "message"])
async def test_error_reason_read_from_msg_or_message(http: httpx.AsyncClient,
                                                     msg_key: str) -> None:
    async with KieFake(api_key=KEY, msg_key=msg_key) as fake:
        kie = KieClient(http, api_key=KEY, base_url=fake.url, retry=FAST)
        with pytest.raises(ProviderBadInput) as info:
            await kie.create_task(TaskRequest(model="sora-2-image-to-video", prompt="p"))
        assert info.value.reason == "input.image_urls is required for image-to-video"
        status = await kie.create_task(T2V)  # and a success answer in the same dialect
        assert status.task_id in fake.tasks


@pytest.mark.parametrize(("code", "kind"), [
    (401, ProviderAuthError), (402, ProviderNoBalance), (422, ProviderBadInput),
    (404, TaskNotFound), (409, ProviderRejected)])
async def test_business_codes_map_to_the_tree_without_retry(
        kie: KieClient, fake: KieFake, code: int, kind: type[ProviderRejected]) -> None:
    fake.script_next("create", Reply(json=fake.envelope(code, "no")))
    with pytest.raises(kind) as info:
        await kie.create_task(T2V)
    assert (info.value.code, info.value.status, info.value.reason) == (str(code), code, "no")
    assert len(fake.create_calls) == 1


@pytest.mark.parametrize("code", [500, 455, 505])
async def test_provider_fault_on_create_is_not_retried(kie: KieClient, fake: KieFake,
                                                       code: int) -> None:
    fake.script_next("create", Reply(json=fake.envelope(code, "server busy")))
    with pytest.raises(ProviderUnavailable) as info:
        await kie.create_task(T2V)
    assert info.value.maybe_created
    assert info.value.status == code
    assert len(fake.create_calls) == 1


async def test_http_error_status_without_envelope(kie: KieClient, fake: KieFake) -> None:
    fake.script_next("create", Reply(status=502, body=b"<html>Bad Gateway</html>"))
    with pytest.raises(ProviderUnavailable):
        await kie.create_task(T2V)
    fake.script_next("create", Reply(status=401, json={"detail": "no"}))
    with pytest.raises(ProviderAuthError):
        await kie.create_task(T2V)
    assert len(fake.create_calls) == 2


async def test_wrong_key_is_auth_error_and_never_echoed(http: httpx.AsyncClient,
                                                       fake: KieFake) -> None:
    kie = KieClient(http, api_key="wrong-key-456", base_url=fake.url, retry=FAST)
    with pytest.raises(ProviderAuthError):
        await kie.create_task(T2V)
    fake.script_next("query", Reply(json=fake.envelope(401, "bad token wrong-key-456")))
    with pytest.raises(ProviderAuthError) as info:
        await kie.query_task("x")
    assert "wrong-key-456" not in str(info.value)
    assert "***" in info.value.reason


@pytest.mark.parametrize("reply", [
    Reply(body=b"{not json"),
    Reply(json=["a", "list"]),
    Reply(json={"code": "200", "msg": "success"}),
    Reply(json={"code": 200, "msg": "success", "data": {}}),
    Reply(json={"code": 200, "msg": "success", "data": "kie-task-1"}),
], ids=["not-json", "list", "string-code", "no-task-id", "data-not-object"])
async def test_malformed_create_answer_is_a_protocol_error(kie: KieClient, fake: KieFake,
                                                          reply: Reply) -> None:
    fake.script_next("create", reply)
    with pytest.raises(ProviderProtocolError) as info:
        await kie.create_task(T2V)
    assert info.value.maybe_created  # a 200 came back: the task may well exist
    assert len(fake.create_calls) == 1


@pytest.mark.parametrize("data", [
    {"taskId": "t", "state": "success", "resultJson": "{broken"},
    {"taskId": "t", "state": "success", "resultJson": json.dumps({"resultUrls": []})},
    {"taskId": "t", "state": "exploded"},
], ids=["result-json-broken", "no-urls", "unknown-state"])
async def test_malformed_record_is_a_protocol_error(kie: KieClient, fake: KieFake,
                                                    data: dict[str, str]) -> None:
    fake.script_next("query", Reply(json=fake.envelope(200, "success", data)))
    with pytest.raises(ProviderProtocolError) as info:
        await kie.query_task("t")
    assert not info.value.maybe_created
    assert len(fake.query_calls) == 1


async def test_unknown_task_is_task_not_found(kie: KieClient) -> None:
    with pytest.raises(TaskNotFound):
        await kie.query_task("nope")


async def test_query_retries_5xx_and_timeouts_then_answers(kie: KieClient,
                                                           fake: KieFake) -> None:
    task_id = (await kie.create_task(T2V)).task_id
    fake.script_next("query", Reply(delay=1.0, json={}), Reply(status=503, body=b"busy"))
    async with http_client(TIGHT) as tight:
        kie = KieClient(tight, api_key=KEY, base_url=fake.url, retry=FAST)
        status = await kie.query_task(task_id)
    assert status.state is TaskState.PENDING
    assert len(fake.query_calls) == 3


async def test_query_gives_up_after_bounded_tries(kie: KieClient, fake: KieFake) -> None:
    fake.script_next("query", *[Reply(json=fake.envelope(500, "down"))] * 5)
    with pytest.raises(ProviderUnavailable) as info:
        await kie.query_task("t")
    assert not info.value.maybe_created
    assert len(fake.query_calls) == 3


async def test_query_rate_limit_in_body_is_retried(kie: KieClient, fake: KieFake) -> None:
    task_id = (await kie.create_task(T2V)).task_id
    fake.script_next("query", Reply(json=fake.envelope(429, "too many requests")))
    assert (await kie.query_task(task_id)).task_id == task_id
    assert len(fake.query_calls) == 2


async def test_create_timeout_is_not_retried(fake: KieFake) -> None:
    fake.script_next("create", Reply(delay=1.0, json={}))
    async with http_client(TIGHT) as tight:
        kie = KieClient(tight, api_key=KEY, base_url=fake.url, retry=FAST)
        with pytest.raises(ProviderTimeout) as info:
            await kie.create_task(T2V)
    assert info.value.maybe_created
    assert len(fake.create_calls) == 1


async def test_create_rate_limited_is_retried_then_raised(kie: KieClient,
                                                          fake: KieFake) -> None:
    fake.script_next("create", *[Reply(json=fake.envelope(429, "slow down"))] * 3)
    with pytest.raises(ProviderRateLimited) as info:
        await kie.create_task(T2V)
    assert not info.value.maybe_created
    assert len(fake.create_calls) == 3
    assert not fake.tasks


async def test_callbacks_over_http_signed_and_unsigned(http: httpx.AsyncClient,
                                                      fake: KieFake) -> None:
    """The fake's callbacks reach a receiver, which parses them as the webhook route would."""
    kie = KieClient(http, api_key=KEY, base_url=fake.url, webhook_key="hook-key")
    hints: list[CallbackHint] = []

    async def receive(request: web.Request) -> web.Response:
        hints.append(kie.parse_callback(request.headers, await request.read()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/callbacks/kie", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        req = TaskRequest(model="sora-2-text-to-video", prompt="p",
                          callback_url=f"http://127.0.0.1:{port}/callbacks/kie")
        task_id = (await kie.create_task(req)).task_id
        assert await fake.send_callback(task_id, webhook_key="hook-key") == 200
        assert await fake.send_callback(task_id) == 200
        assert await fake.send_callback(task_id, webhook_key="hook-key") == 200  # duplicate
    finally:
        await runner.cleanup()
    assert [h.verified for h in hints] == [True, False, True]
    assert all(h.task_id == task_id and h.status is not None
               and h.status.state is TaskState.SUCCEEDED for h in hints)
    assert hints[0] == hints[2]
