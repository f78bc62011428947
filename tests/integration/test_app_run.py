"""End to end through the composition root: `build_app` with the embedded defaults on the test
database, the real HTTP server on 127.0.0.1, the demo provider calling back through it; and
`videofly run` as a process."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from bot.app import App, StartupError, build_app, serve
from core.config import Config, Secrets, load_config
from core.db import read
from core.outbox import outbox
from generation import Job
from storage import LocalStorage, new_key
from tests.factories import TestDatabase

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # bound on a job's whole life here: render ~1 s, delay 0.3 s, store, thumbnail


def jpeg(width: int = 320, height: int = 240) -> bytes:
    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    img.save(out, format="JPEG")
    return out.getvalue()


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def demo_config(database: TestDatabase, data_dir: Path, public_url: str,
                path: Path = ROOT / "config.toml", **extra: str) -> Config:
    """The shipped config.toml with the test's database, directories and URL."""
    return load_config(path, environ={
        "DATABASE_URL": database.url,
        "VIDEOFLY__APP__DATA_DIR": str(data_dir),
        "VIDEOFLY__STORAGE__LOCAL_DIR": str(data_dir / "media"),
        "VIDEOFLY__HTTP__PUBLIC_URL": public_url,
        "VIDEOFLY__GENERATION__DEMO_DELAY_SECONDS": "0.3",
        **extra,
    })


@dataclass
class Running:
    app: App
    url: str
    client: httpx.AsyncClient


@asynccontextmanager
async def running(database: TestDatabase, tmp_path: Path,
                  secrets: Secrets | None = None) -> AsyncIterator[Running]:
    """The app built from the shipped config, served on a port bound before it is built (so
    the public URL is known first), with its scheduler running, as `videofly run` has it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = demo_config(database, tmp_path / "data", url)
        async with build_app(config, secrets or Secrets({})) as app, \
                serve(app.web_app, sock=sock) as served, app.scheduler, \
                httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert served == url
            yield Running(app, url, client)


async def finished(app: App, job_id: int) -> Job:
    """Polls the job until it ends (bounded): its state lives in the database."""
    async with asyncio.timeout(WAIT):
        while (job := await app.jobs.get(job_id)).state not in (  # noqa: ASYNC110
                "completed", "failed"):
            await asyncio.sleep(0.05)
    return job


async def outbox_kinds(app: App, user_id: int) -> list[str]:
    async with read(app.engine) as conn:
        return list((await conn.execute(select(outbox.c.kind).where(
            outbox.c.user_id == user_id).order_by(outbox.c.id))).scalars())


async def test_a_demo_job_completes_through_the_real_server(database: TestDatabase,
                                                            tmp_path: Path) -> None:
    async with running(database, tmp_path) as run:
        app = run.app
        assert (await run.client.get("/healthz")).status_code == 200
        assert run.url in app.jobs.config.allow_hosts  # our own origin, for the demo
        assert app.scheduler.running
        assert set(app.scheduler.names) >= {"poll_due", "fail_overdue", "reap_holds",
                                            "expire_grants", "cleanup", "purge_demo_clips",
                                            "purge_partial_uploads"}
        uid = await app.wallet.open_account("console", "e2e")
        await app.wallet.grant(uid, 5, source="admin", key="e2e-grant")
        photo = new_key("inputs", ".jpg")
        await app.storage.put(photo, chunks(jpeg()), content_type="image/jpeg")

        job = await app.jobs.start(uid, "demo-i2v", prompt="a slow pan over a gradient",
                                   image_keys=[photo])
        assert job.state == "generating"
        assert job.task_id
        assert (await app.wallet.balance(uid)).held == job.credits == 1

        done = await finished(app, job.id)
        assert done.state == "completed", (done.failure, done.failure_detail)
        assert done.result_keys
        assert done.thumbnail_key
        assert done.result_urls == [f"{run.url}/demo/{job.task_id}.mp4"]
        for key in (*done.result_keys, done.thumbnail_key):
            assert await app.storage.exists(key)
        assert isinstance(app.storage, LocalStorage)
        with av.open(str(app.storage.file_path(done.result_keys[0]))) as clip:
            assert clip.streams.video[0].frames or sum(1 for _ in clip.decode(video=0))
        with Image.open(app.storage.file_path(done.thumbnail_key)) as thumb:
            assert thumb.format == "JPEG"

        balance = await app.wallet.balance(uid)
        assert (balance.available, balance.held) == (4, 0)
        assert await outbox_kinds(app, uid) == ["job.completed"]
        assert await app.wallet.audit() == []
        assert app.scheduler.failures == dict.fromkeys(app.scheduler.names, 0)

        # The callback went through the HTTP server, and the clip was fetched from it.
        text = (await run.client.get("/metrics")).text
        assert 'videofly_callbacks_total{outcome="accepted",provider="demo"} 1.0' in text
        assert 'route="/demo/{name}"' in text
        # The stored result is served to whoever holds a signed link.
        link = await app.storage.url(done.result_keys[0], ttl=60)
        media = await run.client.get(link)
        assert (media.status_code, media.headers["content-type"]) == (200, "video/mp4")


async def test_a_bad_photo_fails_the_job_and_gives_the_credits_back(
        database: TestDatabase, tmp_path: Path) -> None:
    secrets = Secrets({"PROVIDER_CALLBACK_SECRET": "p" * 40, "MEDIA_LINK_SECRET": "m" * 40})
    async with running(database, tmp_path, secrets) as run:
        app = run.app
        uid = await app.wallet.open_account("console", "unlucky")
        await app.wallet.grant(uid, 3, source="admin", key="e2e-unlucky")
        photo = new_key("inputs", ".jpg")
        await app.storage.put(photo, chunks(b"\xff\xd8\xff not really a jpeg"),
                              content_type="image/jpeg")
        job = await app.jobs.start(uid, "demo-i2v", prompt="x", image_keys=[photo])
        done = await finished(app, job.id)
        assert (done.state, done.failure) == ("failed", "provider")
        assert done.failure_detail == "Only JPEG, PNG and WebP images can be used."
        assert (await app.wallet.balance(uid)).available == 3
        assert await outbox_kinds(app, uid) == ["job.failed"]
        assert await app.wallet.audit() == []


async def test_an_enabled_model_without_its_key_stops_the_start(database: TestDatabase,
                                                                tmp_path: Path) -> None:
    shipped = (ROOT / "config.toml").read_text()
    kie_off = 'provider = "kie"'
    assert kie_off in shipped
    head, tail = shipped.split(kie_off, 1)
    path = tmp_path / "kie.toml"
    path.write_text(head + kie_off + tail.replace("enabled = false", "enabled = true", 1))
    config = demo_config(database, tmp_path / "data", "http://127.0.0.1:9", path=path)
    with pytest.raises(StartupError, match="KIE_API_KEY"):
        async with build_app(config, Secrets({})):
            pass
    # Not a demo any more (a real provider): the signing secrets must be set too.
    with pytest.raises(StartupError, match="PROVIDER_CALLBACK_SECRET"):
        async with build_app(config, Secrets({"KIE_API_KEY": "k" * 20})):
            pass
    async with build_app(config, Secrets({"KIE_API_KEY": "k" * 20,
                                          "PROVIDER_CALLBACK_SECRET": "p" * 40,
                                          "MEDIA_LINK_SECRET": "m" * 40})) as app:
        assert sorted(app.providers) == ["demo", "kie"]
        assert app.catalogue.get("sora2-kie").provider == "kie"


@pytest.mark.slow
async def test_videofly_run_serves_health_and_stops_on_sigterm(database: TestDatabase,
                                                               tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("videofly")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VIDEOFLY") and k != "DATABASE_URL"}
    env |= {"DATABASE_URL": database.url, "VIDEOFLY__HTTP__PORT": "0",
            "VIDEOFLY__APP__DATA_DIR": str(tmp_path / "data"),
            "VIDEOFLY__STORAGE__LOCAL_DIR": str(tmp_path / "data" / "media")}
    proc = await asyncio.create_subprocess_exec(
        *cmd, "--config", str(ROOT / "config.toml"), "run", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(60):
            while "listening on http://" not in (line := (await proc.stderr.readline())
                                                 .decode()):
                assert line, "videofly run ended before listening:\n" + "".join(seen)
                seen.append(line)
        url = line.split("listening on ", 1)[1].split()[0]
        async with httpx.AsyncClient(timeout=10) as client:
            health = await client.get(f"{url}/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = "".join(seen) + line + err.decode()
    assert proc.returncode == 0, log
    assert "no chat channel configured" in log
    assert "demo mode" in log
    assert "stopped" in log
    assert "Traceback" not in log
