"""The web application built as the composition root builds it, and its plumbing: routes that do
not exist, methods that are not allowed, bugs, access logs and the shutdown wait.

`web_stack()` is shared by the other `test_webhooks_*` modules: a real `JobService` on the test
database, real `LocalStorage` in a temporary directory, kie and evolink clients pointed at their
fake servers, and `create_app` served on 127.0.0.1 from a socket bound before anything is built
(so storage links and callback URLs know the server's address).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import GenerationConfig, ModelConfig
from generation import Catalogue, Job, JobService
from providers import CallbackHint, EvolinkClient, KieClient
from providers._render import render_clip
from storage import LocalStorage, Storage
from tests.factories import FakeClock, funded_user
from tests.fakes.evolink import EvolinkFake
from tests.fakes.kie import KieFake
from wallet import Wallet
from webhooks import HANDOVER, AccessLogger, Handover, Metrics, WebDeps, create_app

LINK_SECRET = "0123456789abcdef0123456789abcdef"  # 32 bytes
CALLBACK_SECRET = "callback-secret-for-the-tests"
KIE_WEBHOOK_KEY = "kie-webhook-key"
MAX_BODY = 64 * 1024
WAIT = 15.0  # seconds: the bound on every wait for background work

MODELS = (
    ModelConfig(id="kie-t2v", name="Sora 2 (kie)", provider="kie", kind="text-to-video",
                credits=5, provider_model="sora-2-text-to-video", durations=(10,),
                aspect_ratios=("16:9",)),
    ModelConfig(id="evo-t2v", name="Sora 2 (evolink)", provider="evolink",
                kind="text-to-video", credits=4, provider_model="sora-2", durations=(4,),
                aspect_ratios=("16:9",)),
)


@functools.cache
def clip_bytes() -> bytes:
    """A real one-second H.264 clip, so the job pipeline can make its thumbnail."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        render_clip(path, prompt="webhooks", seconds=1, width=160)
        return path.read_bytes()


class SettableTime:
    """A float clock for LocalStorage links that tests move by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Stack:
    url: str
    app: web.Application
    jobs: JobService
    wallet: Wallet
    storage: LocalStorage
    link_time: SettableTime
    metrics: Metrics
    kie: KieFake
    evolink: EvolinkFake
    session: aiohttp.ClientSession

    @property
    def handover(self) -> Handover:
        return self.app[HANDOVER]

    async def idle(self) -> None:
        """Waits (bounded) until every handed-over callback has been handled."""
        async with asyncio.timeout(WAIT):
            await self.handover.wait_idle()

    async def start(self, model_id: str = "kie-t2v", credits: int = 20) -> tuple[int, Job]:
        """A funded user with one job submitted to the model's fake provider."""
        user = await funded_user(self.wallet, credits)
        return user, await self.jobs.start(user, model_id, prompt="a cat surfing")

    def callback_url(self, provider: str, job_id: int) -> str:
        return self.jobs.callback_url(provider, job_id)

    async def post(self, url: str, body: bytes, headers: dict[str, str] | None = None,
                   ) -> tuple[int, Any]:
        """POSTs to the app; (status, parsed JSON body or None)."""
        full = url if url.startswith("http") else self.url + url
        async with self.session.post(full, data=body, headers={
                "Content-Type": "application/json", **(headers or {})}) as resp:
            data = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, data

    async def get(self, path: str, **kw: Any) -> tuple[int, bytes, aiohttp.ClientResponse]:
        async with self.session.get(self.url + path, **kw) as resp:
            return resp.status, await resp.read(), resp


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def web_stack(
    engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient, clock: FakeClock,
    media_dir: Path, *, demo_dir: Path | None = None, storage: Storage | None = None,
    health_engine: AsyncEngine | None = None,
) -> AsyncIterator[Stack]:
    """The whole web application on 127.0.0.1, over the fakes; stopped (and drained) on exit.

    kie tasks succeed at the first query; evolink tasks stay pending until a test sets
    `stack.evolink.tasks[task_id].states`."""
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with KieFake(progression=("success",)) as kie, \
            EvolinkFake(progression=(("pending", 0),)) as evo:
        kie.video_bytes = evo.video_bytes = clip_bytes()
        metrics = Metrics()
        providers = metrics.timed({
            "kie": KieClient(http, api_key=kie.api_key, base_url=kie.url,
                             webhook_key=KIE_WEBHOOK_KEY),
            "evolink": EvolinkClient(http, api_key=evo.api_key, base_url=evo.url),
        })
        link_time = SettableTime(clock.now.timestamp())
        local = LocalStorage(media_dir, public_base=url, link_secret=LINK_SECRET,
                             durable=False, clock=link_time)
        jobs = JobService(
            engine=engine, wallet=wallet, catalogue=Catalogue(MODELS), providers=providers,
            storage=local, http=http, config=GenerationConfig(allow_hosts=(kie.url, evo.url, url)),
            public_url=url, callback_secret=CALLBACK_SECRET, clock=clock)
        app = create_app(WebDeps(
            engine=health_engine or engine, jobs=jobs, providers=providers,
            storage=storage or local, metrics=metrics, max_body_bytes=MAX_BODY,
            demo_dir=demo_dir))
        runner = web.AppRunner(app, access_log_class=AccessLogger, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as s:
                yield Stack(url, app, jobs, wallet, local, link_time, metrics, kie, evo, s)
        finally:
            await runner.cleanup()
            sock.close()


@pytest.fixture
async def stack(engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient,
                clock: FakeClock, tmp_path: Path) -> AsyncIterator[Stack]:
    async with web_stack(engine, wallet, http, clock, tmp_path / "media") as built:
        yield built


# --- the plumbing ----------------------------------------------------------------------------


async def test_an_unknown_route_is_a_json_404(stack: Stack) -> None:
    status, body, resp = await stack.get("/nowhere")
    assert (status, resp.content_type) == (404, "application/json")
    assert b'"ok": false' in body


async def test_a_wrong_method_is_405_with_allow(stack: Stack) -> None:
    status, _, resp = await stack.get("/callbacks/kie")
    assert status == 405
    assert resp.headers["Allow"] == "POST"


async def test_a_bug_in_a_route_is_a_500_with_an_incident_id_and_a_logged_traceback(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    _, job = await stack.start()

    def broken(headers: object, body: bytes) -> CallbackHint:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(stack.jobs.providers["kie"], "parse_callback", broken)
    with caplog.at_level(logging.ERROR, logger="webhooks"):
        status, data = await stack.post(stack.callback_url("kie", job.id), b"{}")
    assert status == 500
    incident = data["error"].removeprefix("internal error (incident ").rstrip(")")
    assert any(incident in r.getMessage() and r.exc_info for r in caplog.records)
    assert "parser bug" not in str(data)
    assert stack.handover.in_flight == 0


async def test_the_access_log_never_shows_the_query(
    stack: Stack, caplog: pytest.LogCaptureFixture,
) -> None:
    _, job = await stack.start()
    url = stack.callback_url("kie", job.id)
    token = url.rsplit("token=", 1)[1]
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        await stack.post(url, stack.kie.callback_body(job.task_id or ""))
        await stack.idle()
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any(line.startswith("POST /callbacks/kie 200") for line in lines)
    assert not any(token in line for line in lines)


async def test_shutdown_waits_for_a_running_handover(
    engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient, clock: FakeClock,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    finished: list[int] = []
    async with web_stack(engine, wallet, http, clock, tmp_path) as stack:
        _, job = await stack.start()

        async def slow(provider: str, job_id: int, hint: CallbackHint) -> None:
            await asyncio.sleep(0.3)
            finished.append(job_id)

        monkeypatch.setattr(stack.jobs, "on_callback", slow)
        status, _ = await stack.post(stack.callback_url("kie", job.id), b'{"data":{"taskId":"t"}}')
        assert status == 200
        assert finished == []
    assert finished == [job.id]  # the context exit stopped the app: it waited


async def test_shutdown_cancels_a_handover_that_outlives_the_wait(
    engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient, clock: FakeClock,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr("webhooks.app.SHUTDOWN_WAIT_SECONDS", 0.2)
    cancelled = asyncio.Event()

    async def stuck(provider: str, job_id: int, hint: CallbackHint) -> None:
        try:
            await asyncio.sleep(WAIT * 4)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with caplog.at_level(logging.WARNING, logger="webhooks.handover"):
        async with asyncio.timeout(WAIT), web_stack(engine, wallet, http, clock,
                                                    tmp_path) as stack:
            _, job = await stack.start()
            monkeypatch.setattr(stack.jobs, "on_callback", stuck)
            status, _ = await stack.post(stack.callback_url("kie", job.id),
                                         b'{"data":{"taskId":"t"}}')
            assert status == 200
            assert stack.handover.in_flight == 1
    assert cancelled.is_set()
    assert any("cancelled" in r.getMessage() for r in caplog.records)
