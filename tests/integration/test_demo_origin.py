"""The demo allows exactly its own origin on the relay: a callback signed with the demo's key
that names a result on another port of 127.0.0.1 fails the job (credits back) and that port
is never asked for anything."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from bot.app import build_app, serve
from core.config import Secrets
from providers import demo_signature
from tests.factories import TestDatabase
from tests.integration.test_app_run import demo_config, finished

SECRET = "demo-callback-secret-for-tests"


@pytest.fixture
async def other_port() -> AsyncIterator[tuple[int, list[str]]]:
    """A server on another port of 127.0.0.1 that records every request it gets."""
    hits: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        hits.append(request.path_qs)
        return web.Response(body=b"\x00" * 1024, content_type="video/mp4")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1], hits
    await runner.cleanup()


async def test_a_signed_callback_cannot_send_the_relay_to_another_port(
        database: TestDatabase, tmp_path: Path, other_port: tuple[int, list[str]]) -> None:
    port, hits = other_port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        # The demo's own callback waits a minute: ours comes first.
        config = demo_config(database, tmp_path / "data", url,
                             VIDEOFLY__GENERATION__DEMO_DELAY_SECONDS="60")
        secrets = Secrets({"PROVIDER_CALLBACK_SECRET": SECRET, "MEDIA_LINK_SECRET": "m" * 40})
        async with build_app(config, secrets) as app, serve(app.web_app, sock=sock), \
                httpx.AsyncClient(timeout=10) as client:
            assert app.jobs.config.allow_hosts == (url,)  # the origin, not the host
            uid = await app.wallet.open_account("console", "origin")
            await app.wallet.grant(uid, 3, source="admin", key="origin-grant")
            job = await app.jobs.start(uid, "demo-t2v", prompt="x")
            assert job.task_id is not None
            body = json.dumps({"taskId": job.task_id, "state": "success", "error": None,
                               "resultUrls": [f"http://127.0.0.1:{port}/x.mp4"]}).encode()
            answer = await client.post(app.jobs.callback_url("demo", job.id), content=body,
                                       headers={"X-Signature": demo_signature(body, SECRET)})
            assert answer.status_code == 200  # signed: accepted, then acted on
            done = await finished(app, job.id)
            assert (done.state, done.failure) == ("failed", "storage")
            assert "UnsafeURL" in (done.failure_detail or "")
            assert (await app.wallet.balance(uid)).available == 3
            assert hits == []
            assert await app.wallet.audit() == []
