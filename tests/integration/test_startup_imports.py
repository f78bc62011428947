"""What start-up loads: none of the five heavy libraries, and the leaves load nothing of ours.

Each check is a fresh interpreter run with `python -X importtime`, whose report (one stderr line
per module imported, `import time: self | cumulative | name`) lists everything it loaded.
Matplotlib, PyAV, Pillow, boto3 and Stripe cost seconds and tens of MB between them; each is
imported where it is used (the /stats chart, a render or a thumbnail, a photo, the s3 backend,
a Stripe checkout or webhook), never by starting the service.

`videofly run` is checked for real: the shipped config (SQLite, local storage, the demo
provider) in a temp directory whose database `videofly db upgrade` migrated first, Telegram
polling a local fake Bot API, until `/healthz` answers. A warm start does not load Alembic
either: there is nothing to migrate (`core.migrate.upgrade`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.fakes.telegram import TelegramFake

ROOT = Path(__file__).resolve().parents[2]
HEAVY = frozenset({"matplotlib", "av", "PIL", "boto3", "botocore", "stripe"})
OURS = frozenset({"bot", "core", "generation", "handlers", "payments", "providers", "storage",
                  "wallet", "webhooks"})
WAIT = 120.0  # seconds `videofly run` may take to answer /healthz on a loaded machine


def _loaded(stderr: str) -> set[str]:
    """The modules an `-X importtime` report names."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.add(name)
    return names


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VIDEOFLY")}


def importing(statement: str) -> set[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=120, check=True)
    return _loaded(done.stderr)


def heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in HEAVY}


def ours(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in OURS}


def test_the_report_is_read() -> None:
    """The reader sees a heavy library when one is imported (so an empty set means none)."""
    assert "PIL" in heavy(importing("import PIL.Image"))
    assert "handlers.stats" in ours(importing("import handlers.stats"))


def test_the_chat_types_and_the_catalogue_load_nothing_heavy_and_nothing_of_ours() -> None:
    types = importing("import handlers.types")
    assert heavy(types) == set()
    assert ours(types) == {"handlers", "handlers.types"}
    catalogue = importing("import handlers.messages")
    assert heavy(catalogue) == set()
    assert ours(catalogue) == {"handlers", "handlers.messages", "handlers.messages_en",
                               "handlers.messages_zh"}


def test_importing_the_service_loads_no_heavy_library() -> None:
    assert heavy(importing("import bot.app, bot.cli, bot.channels, bot.dispatcher")) == set()
    assert heavy(importing("import handlers, payments, providers, storage, webhooks; "
                           "handlers.Handlers; payments.Payments; storage.LocalStorage")) == set()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_warm_videofly_run_starts_without_a_heavy_library(tmp_path: Path) -> None:
    shutil.copy(ROOT / "config.toml", tmp_path / "config.toml")
    migrating = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "db", "upgrade", cwd=tmp_path, env=_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    async with asyncio.timeout(WAIT):
        assert await migrating.wait() == 0
    port = _free_port()
    async with TelegramFake(token="424242:STARTUP-token_abc") as tg:
        env = {**_env(), "VIDEOFLY__HTTP__PORT": str(port),
               "VIDEOFLY__HTTP__PUBLIC_URL": f"http://127.0.0.1:{port}",
               "PROVIDER_CALLBACK_SECRET": "startup-callback-secret-0123456789",
               "MEDIA_LINK_SECRET": "startup-media-secret-0123456789",
               "TELEGRAM_BOT_TOKEN": tg.token, "VIDEOFLY__TELEGRAM__API_BASE_URL": tg.api_base_url,
               "VIDEOFLY__TELEGRAM__API_FILE_URL": tg.api_file_url}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-X", "importtime", "-m", "bot.cli", "run", cwd=tmp_path, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            async with httpx.AsyncClient(timeout=1.0) as http, asyncio.timeout(WAIT):
                while proc.returncode is None:
                    try:
                        if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.05)
            if proc.returncode is None:  # Telegram polling: start-up is over
                await tg.wait_for("getUpdates", within=WAIT)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
            async with asyncio.timeout(60):
                _, err = await proc.communicate()
    report = err.decode(errors="replace")
    assert proc.returncode == 0, report[-2000:]
    loaded = _loaded(report)
    assert {"bot.app", "telegram", "aiohttp"} <= loaded  # the report covers the real start
    assert heavy(loaded) == set()
    assert "alembic" not in loaded  # warm: the database was at head


def test_the_service_modules_leave_aiohttp_and_apscheduler_to_their_start() -> None:
    loaded = importing("import bot.app, bot._console_session, webhooks.metrics")
    assert {m for m in loaded if m.split(".")[0] in {"aiohttp", "apscheduler"}} == set()


async def test_videofly_chat_shows_its_first_menu_before_the_server_and_scheduler_load(
        tmp_path: Path) -> None:
    """One pipe for stdout and stderr keeps their order: every `-X importtime` line printed
    before the main menu's last button is an import the user waited for."""
    shutil.copy(ROOT / "config.toml", tmp_path / "config.toml")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "importtime", "-m", "bot.cli", "chat", cwd=tmp_path,
        env={**_env(), "LANG": "C.UTF-8"}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    assert proc.stdin is not None
    assert proc.stdout is not None
    before: list[str] = []
    try:
        async with asyncio.timeout(WAIT):
            while "❓" not in (line := (await proc.stdout.readline()).decode(errors="replace")):
                assert line, "the chat ended before its first menu:\n" + "".join(before[-30:])
                before.append(line)
        proc.stdin.write(b"/quit\n")
        await proc.stdin.drain()
        async with asyncio.timeout(60):
            after = (await proc.stdout.read()).decode(errors="replace")
            assert await proc.wait() == 0, after[-2000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    waited = _loaded("".join(before))
    assert {"bot.app", "handlers", "wallet"} <= waited  # the report covers the real start
    assert {m for m in waited if m.split(".")[0] in {"aiohttp", "apscheduler"}} == set()
    assert heavy(waited) == set()
    started = _loaded(after)  # then the server and the scheduler, before /quit was read
    assert {"aiohttp.web", "apscheduler.schedulers.asyncio"} <= started
