"""Callback parsing: kie's optional signature, evolink's unsigned hints, replays and reorders."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from providers import (
    BadCallback,
    CallbackHint,
    EvolinkClient,
    ImageClient,
    KieClient,
    TaskState,
    TaskStatus,
    kie_signature,
)
from tests.fakes import http_client

NOW = 1_750_000_000
WEBHOOK_KEY = "kie-webhook-secret"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with http_client() as client:
        yield client  # never used to send: parsing needs no network


@pytest.fixture
def kie(http: httpx.AsyncClient) -> KieClient:
    return KieClient(http, api_key="k", webhook_key=WEBHOOK_KEY, clock=lambda: NOW)


def kie_body(state: str, task_id: str = "t1", **extra: Any) -> bytes:
    data = {"taskId": task_id, "model": "sora-2-text-to-video", "state": state,
            "resultJson": json.dumps({"resultUrls": ["https://cdn/v.mp4"]})
            if state == "success" else "",
            "failCode": "", "failMsg": "", **extra}
    return json.dumps({"code": 501 if state == "fail" else 200, "msg": "x",
                       "data": data}).encode()


def signed(task_id: str = "t1", stamp: int = NOW, key: str = WEBHOOK_KEY) -> dict[str, str]:
    return {"X-Webhook-Timestamp": str(stamp),
            "X-Webhook-Signature": kie_signature(task_id, str(stamp), key)}


def test_kie_signature_is_base64_hmac_of_task_and_timestamp() -> None:
    expected = base64.b64encode(hmac.new(b"kie-webhook-secret", b"t1.1750000000",
                                         hashlib.sha256).digest()).decode()
    assert kie_signature("t1", "1750000000", WEBHOOK_KEY) == expected


def test_kie_unsigned_callback_is_an_unverified_hint(kie: KieClient) -> None:
    hint = kie.parse_callback({}, kie_body("success"))
    assert hint == CallbackHint(task_id="t1", verified=False, status=TaskStatus(
        task_id="t1", state=TaskState.SUCCEEDED, progress=100,
        result_urls=("https://cdn/v.mp4",), error=None))


def test_kie_good_signature_verifies(kie: KieClient) -> None:
    assert kie.parse_callback(signed(), kie_body("success")).verified is True


def test_kie_signature_headers_are_case_insensitive(kie: KieClient) -> None:
    headers = {k.lower(): v for k, v in signed().items()}
    assert kie.parse_callback(headers, kie_body("success")).verified is True


@pytest.mark.parametrize("headers", [
    signed(key="another-key"),
    signed(task_id="t2"),  # a signature for another task, replayed on this body
    {**signed(), "X-Webhook-Signature": "not-base64!"},
], ids=["wrong-key", "other-task", "garbage"])
def test_kie_bad_signature_is_refused(kie: KieClient, headers: dict[str, str]) -> None:
    with pytest.raises(BadCallback, match="signature"):
        kie.parse_callback(headers, kie_body("success"))


@pytest.mark.parametrize("stamp", [NOW - 301, NOW + 301])
def test_kie_timestamp_outside_five_minutes_is_refused(kie: KieClient, stamp: int) -> None:
    with pytest.raises(BadCallback, match="timestamp"):
        kie.parse_callback(signed(stamp=stamp), kie_body("success"))


def test_kie_timestamp_within_five_minutes_is_accepted(kie: KieClient) -> None:
    assert kie.parse_callback(signed(stamp=NOW - 299), kie_body("success")).verified


def test_kie_non_numeric_timestamp_is_refused(kie: KieClient) -> None:
    with pytest.raises(BadCallback, match="timestamp"):
        kie.parse_callback({**signed(), "X-Webhook-Timestamp": "yesterday"}, kie_body("success"))


def test_kie_without_webhook_key_cannot_verify(http: httpx.AsyncClient) -> None:
    client = KieClient(http, api_key="k", clock=lambda: NOW)
    assert client.parse_callback(signed(), kie_body("success")).verified is False


def test_kie_failure_callback_carries_the_reason(kie: KieClient) -> None:
    hint = kie.parse_callback({}, kie_body("fail", failMsg="content policy", failCode="400"))
    assert hint.status is not None
    assert (hint.status.state, hint.status.error) == (TaskState.FAILED, "content policy")


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'{"code": 200}',
                                  b'{"code": 200, "data": {"state": "success"}}'])
def test_kie_unparseable_callback_is_refused(kie: KieClient, body: bytes) -> None:
    with pytest.raises(BadCallback):
        kie.parse_callback({}, body)


def test_kie_callback_of_unknown_shape_keeps_the_task_id(kie: KieClient) -> None:
    hint = kie.parse_callback({}, kie_body("teleporting"))
    assert (hint.task_id, hint.status) == ("t1", None)


def test_kie_duplicated_and_out_of_order_callbacks_parse_consistently(kie: KieClient) -> None:
    bodies = [kie_body("success"), kie_body("generating"), kie_body("success")]
    hints = [kie.parse_callback(signed(), b) for b in bodies]
    assert hints[0] == hints[2]  # a replay parses to the same hint
    assert [h.status.state for h in hints if h.status] == [
        TaskState.SUCCEEDED, TaskState.RUNNING, TaskState.SUCCEEDED]
    assert {h.task_id for h in hints} == {"t1"}


def evolink_body(status: str, **extra: Any) -> bytes:
    return json.dumps({"id": "task-unified-1", "object": "video.generation.task",
                       "status": status, "progress": 100 if status == "completed" else 30,
                       **extra}).encode()


def test_evolink_callback_is_never_verified(http: httpx.AsyncClient) -> None:
    client = EvolinkClient(http, api_key="k")
    hint = client.parse_callback({"X-Signature": "anything"},
                                 evolink_body("completed", results=["https://cdn/v.mp4"]))
    assert hint == CallbackHint(task_id="task-unified-1", verified=False, status=TaskStatus(
        task_id="task-unified-1", state=TaskState.SUCCEEDED, progress=100,
        result_urls=("https://cdn/v.mp4",), error=None))


def test_evolink_failed_callback_and_replays(http: httpx.AsyncClient) -> None:
    client = EvolinkClient(http, api_key="k")
    body = evolink_body("failed", error={"code": "content_policy", "message": "refused"})
    first, again = client.parse_callback({}, body), client.parse_callback({}, body)
    assert first == again
    assert first.status is not None
    assert first.status.error == "refused"


@pytest.mark.parametrize("body", [b"{", b'"x"', b'{"status": "completed"}'])
def test_evolink_unparseable_callback_is_refused(http: httpx.AsyncClient, body: bytes) -> None:
    with pytest.raises(BadCallback):
        EvolinkClient(http, api_key="k").parse_callback({}, body)


def test_evolink_completed_without_results_keeps_only_the_id(http: httpx.AsyncClient) -> None:
    hint = EvolinkClient(http, api_key="k").parse_callback({}, evolink_body("completed"))
    assert (hint.task_id, hint.status) == ("task-unified-1", None)


def test_image_model_has_no_callbacks(http: httpx.AsyncClient) -> None:
    client = ImageClient(http, api_key="k", base_url="https://gateway.example")
    with pytest.raises(BadCallback):
        client.parse_callback({}, b"{}")
