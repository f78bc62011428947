"""DemoProvider against a real local server standing in for our callback endpoint (and for the
signed /media links its input images come from)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import httpx
import pytest
from aiohttp import web
from PIL import Image

from providers import (
    BadCallback,
    BadSignature,
    DemoProvider,
    ProviderBadInput,
    TaskNotFound,
    TaskRequest,
    TaskState,
    TaskStatus,
    demo_signature,
)

SECRET = "demo-callback-secret-0123456789"
PUBLIC = "http://bot.example:8080"
WAIT = 30.0  # bound on any wait for a callback: a render takes well under a second


def png(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(out, format="PNG")
    return out.getvalue()


@dataclass
class Received:
    path_qs: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Endpoint:
    """Our callback endpoint and media server, as far as the demo provider can tell."""

    url: str = ""
    callbacks: asyncio.Queue[Received] = field(default_factory=asyncio.Queue)
    answers: deque[int] = field(default_factory=deque)  # statuses for the next callbacks
    tries: int = 0
    image: bytes = field(default_factory=png)
    image_status: int = 200
    probe: Callable[[], Awaitable[object]] | None = None  # run while a callback is handled
    probed: list[object] = field(default_factory=list)

    async def callback(self, request: web.Request) -> web.Response:
        self.tries += 1
        if self.probe is not None:
            self.probed.append(await self.probe())
        status = self.answers.popleft() if self.answers else 200
        if status == 200:
            await self.callbacks.put(Received(request.path_qs, dict(request.headers),
                                              await request.read(), time.monotonic()))
        return web.json_response({"ok": status == 200}, status=status)

    async def media(self, request: web.Request) -> web.Response:
        return web.Response(body=self.image, status=self.image_status,
                            content_type="image/png")

    async def next(self) -> Received:
        return await asyncio.wait_for(self.callbacks.get(), WAIT)


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    ep = Endpoint()
    app = web.Application()
    app.router.add_post("/callbacks/demo", ep.callback)
    app.router.add_get("/media/inputs/photo.png", ep.media)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    ep.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield ep
    await runner.cleanup()


@pytest.fixture
async def demo(http: httpx.AsyncClient, tmp_path: Path) -> AsyncIterator[DemoProvider]:
    provider = DemoProvider(http, secret=SECRET, out_dir=tmp_path / "demo", public_url=PUBLIC,
                            delay=0.5, seconds=1, backoff=0.01)
    yield provider
    await provider.aclose()


def request(ep: Endpoint, *, image: bool = True, aspect_ratio: str = "16:9",
            duration: int | None = None) -> TaskRequest:
    return TaskRequest(
        model="demo", prompt="a red square drifting", aspect_ratio=aspect_ratio,
        duration=duration,
        image_urls=(f"{ep.url}/media/inputs/photo.png?exp=1&sig=abc",) if image else (),
        callback_url=f"{ep.url}/callbacks/demo?job=7&token=t0k")


async def idle(demo: DemoProvider) -> None:
    """Waits, bounded, until the provider's background tasks have all ended."""
    async with asyncio.timeout(WAIT):
        while demo.in_flight:  # noqa: ASYNC110 -- the tasks are the provider's own
            await asyncio.sleep(0.05)


def frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


async def test_a_task_renders_a_clip_and_calls_back_signed(demo: DemoProvider,
                                                           endpoint: Endpoint) -> None:
    started = time.monotonic()
    status = await demo.create_task(request(endpoint))
    assert status.state is TaskState.PENDING
    assert len(status.task_id) == 32
    assert int(status.task_id, 16) >= 0
    assert (await demo.query_task(status.task_id)).state is TaskState.RUNNING
    endpoint.probe = lambda: demo.query_task(status.task_id)

    got = await endpoint.next()
    assert got.at - started >= 0.5  # the configured delay is honoured
    assert got.path_qs == "/callbacks/demo?job=7&token=t0k"
    assert got.headers["Content-Type"] == "application/json"
    expected = hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-Signature"] == expected == demo_signature(got.body, SECRET)
    url = f"{PUBLIC}/demo/{status.task_id}.mp4"
    assert json.loads(got.body) == {"taskId": status.task_id, "state": "success",
                                    "resultUrls": [url], "error": None}
    clip = demo.out_dir / f"{status.task_id}.mp4"
    assert frames(clip) == 12  # one second at 12 fps, decodable

    # A provider that is asked while it calls back answers as the callback says.
    [during] = endpoint.probed
    assert isinstance(during, TaskStatus)
    assert (during.state, during.result_urls) == (TaskState.SUCCEEDED, (url,))

    hint = demo.parse_callback(got.headers, got.body)
    assert hint.verified
    assert hint.body_signed  # the whole body: the job layer may act on it as it is
    assert hint.task_id == status.task_id
    assert hint.status is not None
    assert hint.status.state is TaskState.SUCCEEDED
    assert hint.status.result_urls == (url,)

    await idle(demo)  # the task ends right after its callback was answered
    done = await demo.query_task(status.task_id)
    assert (done.state, done.result_urls) == (TaskState.SUCCEEDED, (url,))


async def test_text_to_video_needs_no_image(demo: DemoProvider, endpoint: Endpoint) -> None:
    status = await demo.create_task(request(endpoint, image=False, aspect_ratio="9:16"))
    got = await endpoint.next()
    assert json.loads(got.body)["state"] == "success"
    with av.open(str(demo.out_dir / f"{status.task_id}.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.height > stream.width  # portrait


async def test_parse_callback_refuses_tampering_and_missing_signatures(
        demo: DemoProvider) -> None:
    body = json.dumps({"taskId": "a" * 32, "state": "success",
                       "resultUrls": [f"{PUBLIC}/demo/{'a' * 32}.mp4"], "error": None}).encode()
    good = {"x-signature": demo_signature(body, SECRET)}  # header names are case-insensitive
    assert demo.parse_callback(good, body).verified
    with pytest.raises(BadSignature):
        demo.parse_callback(good, body.replace(b"success", b"fail\x20\x20\x20"))
    with pytest.raises(BadSignature):
        demo.parse_callback({}, body)
    with pytest.raises(BadSignature):
        demo.parse_callback({"X-Signature": demo_signature(body, "another-secret")}, body)
    with pytest.raises(BadSignature):
        demo.parse_callback({"X-Signature": "zz"}, body)


@pytest.mark.parametrize("payload", [
    b"not json",
    b"[1, 2]",
    json.dumps({"taskId": "../../etc", "state": "fail"}).encode(),
    json.dumps({"taskId": "a" * 32, "state": "generating"}).encode(),
    json.dumps({"taskId": "a" * 32, "state": "success", "resultUrls": []}).encode(),
    json.dumps({"taskId": "a" * 32, "state": "success", "resultUrls": "x"}).encode(),
])
def test_signed_but_malformed_callbacks_are_bad_callbacks(demo: DemoProvider,
                                                          payload: bytes) -> None:
    with pytest.raises(BadCallback) as caught:
        demo.parse_callback({"X-Signature": demo_signature(payload, SECRET)}, payload)
    assert not isinstance(caught.value, BadSignature)


async def test_a_failed_callback_parses_as_failed(demo: DemoProvider) -> None:
    body = json.dumps({"taskId": "b" * 32, "state": "fail", "resultUrls": [],
                       "error": "The image could not be read."}).encode()
    hint = demo.parse_callback({"X-Signature": demo_signature(body, SECRET)}, body)
    assert hint.status is not None
    assert (hint.status.state, hint.status.error) == (TaskState.FAILED,
                                                      "The image could not be read.")


async def test_a_bad_image_ends_in_a_user_safe_fail_callback(demo: DemoProvider,
                                                             endpoint: Endpoint) -> None:
    endpoint.image = b"\x89PNG\r\n\x1a\n" + b"garbage" * 50
    status = await demo.create_task(request(endpoint))
    got = await endpoint.next()
    body = json.loads(got.body)
    assert body["state"] == "fail"
    assert body["resultUrls"] == []
    assert body["error"] == "The image could not be read."
    hint = demo.parse_callback(got.headers, got.body)
    assert hint.status is not None
    assert hint.status.state is TaskState.FAILED
    failed = await demo.query_task(status.task_id)
    assert (failed.state, failed.error) == (TaskState.FAILED, "The image could not be read.")
    assert not (demo.out_dir / f"{status.task_id}.mp4").exists()


async def test_an_image_that_cannot_be_fetched_fails_the_task(demo: DemoProvider,
                                                              endpoint: Endpoint) -> None:
    endpoint.image_status = 403  # an expired link: not retried
    await demo.create_task(request(endpoint))
    body = json.loads((await endpoint.next()).body)
    assert (body["state"], body["error"]) == ("fail", "The image could not be downloaded.")


async def test_the_callback_is_retried_on_5xx_but_not_on_4xx(demo: DemoProvider,
                                                             endpoint: Endpoint) -> None:
    endpoint.answers.extend([503, 502])
    status = await demo.create_task(request(endpoint, image=False))
    got = await endpoint.next()
    assert json.loads(got.body)["taskId"] == status.task_id
    assert endpoint.tries == 3

    endpoint.answers.append(401)
    await demo.create_task(request(endpoint, image=False))
    await idle(demo)
    assert endpoint.tries == 4
    assert endpoint.callbacks.empty()


async def test_the_callback_retries_are_bounded(http: httpx.AsyncClient, tmp_path: Path,
                                                endpoint: Endpoint) -> None:
    demo = DemoProvider(http, secret=SECRET, out_dir=tmp_path, public_url=PUBLIC, delay=0,
                        seconds=1, attempts=3, backoff=0.01)
    endpoint.answers.extend([500] * 10)
    status = await demo.create_task(request(endpoint, image=False))
    await idle(demo)
    assert endpoint.tries == 3
    # The clip is there all the same: a poll finds it.
    assert (await demo.query_task(status.task_id)).state is TaskState.SUCCEEDED


async def test_query_task_knows_only_its_own_tasks(http: httpx.AsyncClient, demo: DemoProvider,
                                                   endpoint: Endpoint) -> None:
    for unknown in ("c" * 32, "../../../etc/passwd", ""):
        with pytest.raises(TaskNotFound):
            await demo.query_task(unknown)
    status = await demo.create_task(request(endpoint, image=False))
    await endpoint.next()
    # After a restart a finished clip is still found; a task never finished is not invented.
    again = DemoProvider(http, secret=SECRET, out_dir=demo.out_dir, public_url=PUBLIC,
                         delay=0)
    assert (await again.query_task(status.task_id)).state is TaskState.SUCCEEDED
    with pytest.raises(TaskNotFound):
        await again.query_task("d" * 32)


async def test_bad_requests_are_refused_before_any_work(demo: DemoProvider,
                                                        endpoint: Endpoint) -> None:
    with pytest.raises(ProviderBadInput):
        await demo.create_task(request(endpoint, aspect_ratio="1:9"))
    with pytest.raises(ProviderBadInput):
        await demo.create_task(request(endpoint, duration=600))
    assert demo.in_flight == 0


async def test_aclose_cancels_tasks_in_flight(http: httpx.AsyncClient, tmp_path: Path,
                                              endpoint: Endpoint) -> None:
    demo = DemoProvider(http, secret=SECRET, out_dir=tmp_path, public_url=PUBLIC, delay=60)
    await demo.create_task(request(endpoint, image=False))
    started = time.monotonic()
    await demo.aclose()
    assert time.monotonic() - started < 10
    assert demo.in_flight == 0
    await asyncio.sleep(0.2)
    assert endpoint.tries == 0  # no callback for a cancelled task


async def test_purge_deletes_old_clips_but_not_new_or_busy_ones(http: httpx.AsyncClient,
                                                                 tmp_path: Path,
                                                                 endpoint: Endpoint) -> None:
    demo = DemoProvider(http, secret=SECRET, out_dir=tmp_path, public_url=PUBLIC, delay=60)
    busy = await demo.create_task(request(endpoint, image=False))  # rendered, then waiting
    clip = tmp_path / f"{busy.task_id}.mp4"
    async with asyncio.timeout(WAIT):
        while not await asyncio.to_thread(clip.exists):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    old, new, partial = "e" * 32, "f" * 32, f".{'a' * 32}.mp4.x1.part"
    for name in (f"{old}.mp4", f"{new}.mp4", partial, "keep.txt"):
        await asyncio.to_thread((tmp_path / name).write_bytes, b"x")
    day_ago = time.time() - 86_400
    for name in (f"{old}.mp4", partial, clip.name, "keep.txt"):
        os.utime(tmp_path / name, (day_ago, day_ago))
    assert await demo.purge(3600) == 2
    left = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.iterdir()))
    assert left == sorted([f"{new}.mp4", clip.name, "keep.txt"])
    await demo.aclose()
