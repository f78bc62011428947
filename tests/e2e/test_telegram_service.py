"""Telegram as the service runs it: webhook mode built by `build_app` itself (`[telegram] mode =
"webhook"`, the bot token and webhook secret in the Secrets), the start-up refusal without the
secret, and `videofly run` as a process polling the fake Bot API until SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from bot.app import StartupError, build_app
from core.config import Secrets
from handlers.messages import t
from tests.factories import TestDatabase
from tests.fakes.telegram import TelegramFake
from tests.integration.test_app_run import ROOT, demo_config
from webhooks.telegram import SECRET_HEADER

from .conftest import service

SECRET = "svc-hook_secret-0123456789"
WEBHOOK = {"VIDEOFLY__TELEGRAM__MODE": "webhook"}
WAIT = 15.0


async def test_webhook_mode_through_the_composition_root(database: TestDatabase,
                                                         tmp_path: Path,
                                                         tg: TelegramFake) -> None:
    async with service(database, tmp_path, tg, env=WEBHOOK,
                       secrets={"TELEGRAM_WEBHOOK_SECRET": SECRET}) as svc, \
            httpx.AsyncClient(base_url=svc.url, timeout=10) as client:
        assert svc.app.telegram_webhook is not None
        assert set(svc.channels) == {"telegram"}
        [hook] = tg.of("setWebhook")
        assert hook.params["url"] == f"{svc.url}/telegram"
        assert hook.params["secret_token"] == SECRET

        # Telegram (the fake) pushes a user's message to POST /telegram with the secret.
        tg.user(7001).says("/start")
        await tg.wait_for("sendMessage", chat_id=7001, within=WAIT,
                          where=lambda c: t("en", "welcome") in c.params["text"])
        assert tg.webhook is not None
        async with asyncio.timeout(WAIT):  # the fake notes the status once it read the answer
            while not tg.webhook.statuses:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert tg.webhook.statuses == [200]

        # The route itself: with the secret header an update is answered in its chat;
        # without it (or with a wrong one) 401 and nothing happens.
        update = json.dumps({"update_id": 9_000_001, **tg.user(7002).text_update("/start")})
        for headers in ({}, {SECRET_HEADER: SECRET + "x"}, {SECRET_HEADER: ""}):
            refused = await client.post("/telegram", content=update, headers=headers)
            assert refused.status_code == 401
        answered = await client.post("/telegram", content=update,
                                     headers={SECRET_HEADER: SECRET})
        assert (answered.status_code, answered.json()) == (200, {"ok": True})
        await tg.wait_for("sendMessage", chat_id=7002, within=WAIT,
                          where=lambda c: t("en", "welcome") in c.params["text"])
        # /start answers with the welcome, then the menu: exactly one answer, so the refused
        # posts were never handled.
        menus = await tg.wait_for("sendMessage", chat_id=7002, within=WAIT,
                                  where=lambda c: bool(c.buttons()))
        assert len(menus) == 1
        assert len(tg.of("sendMessage", 7002)) == 2
        assert tg.of("getUpdates") == []


async def test_webhook_mode_needs_its_secret(database: TestDatabase, tmp_path: Path) -> None:
    config = demo_config(database, tmp_path / "data", "http://127.0.0.1:9", ROOT / "config.toml",
                         **WEBHOOK)
    token = {"TELEGRAM_BOT_TOKEN": "123456:TEST-token_abc"}
    with pytest.raises(StartupError, match="TELEGRAM_WEBHOOK_SECRET"):
        async with build_app(config, Secrets(token)):
            pass
    bad = "not a valid secret!"
    with pytest.raises(StartupError, match="TELEGRAM_WEBHOOK_SECRET") as refused:
        async with build_app(config, Secrets({**token, "TELEGRAM_WEBHOOK_SECRET": bad})):
            pass
    assert bad not in str(refused.value)  # a secret is never echoed


@pytest.mark.slow
async def test_videofly_run_polls_telegram_and_stops_on_sigterm(database: TestDatabase,
                                                                tmp_path: Path,
                                                                tg: TelegramFake) -> None:
    script = Path(sys.executable).with_name("videofly")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VIDEOFLY", "TELEGRAM_")) and k != "DATABASE_URL"}
    env |= {"DATABASE_URL": database.url, "VIDEOFLY__HTTP__PORT": "0",
            "VIDEOFLY__APP__DATA_DIR": str(tmp_path / "data"),
            "VIDEOFLY__STORAGE__LOCAL_DIR": str(tmp_path / "data" / "media"),
            "VIDEOFLY__TELEGRAM__API_BASE_URL": tg.api_base_url,
            "VIDEOFLY__TELEGRAM__API_FILE_URL": tg.api_file_url,
            "TELEGRAM_BOT_TOKEN": tg.token}
    proc = await asyncio.create_subprocess_exec(
        *cmd, "--config", str(ROOT / "config.toml"), "run", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(60):
            while "outbox dispatcher delivering on" not in (
                    line := (await proc.stderr.readline()).decode()):
                assert line, "videofly run ended before serving:\n" + "".join(seen)
                seen.append(line)
        seen.append(line)
        assert "telegram" in line  # the dispatcher serves the Telegram channel
        assert [c.method for c in tg.calls[:1]] == ["getMe"]
        assert {"", "en", "zh"} <= set(tg.commands)  # setMyCommands, per language
        tg.user(8001).says("/start")
        await tg.wait_for("sendMessage", chat_id=8001, within=WAIT,
                          where=lambda c: t("en", "welcome") in c.params["text"])
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = "".join(seen) + err.decode()
    assert proc.returncode == 0, log
    assert "running (polling)" in log
    assert "stopped" in log
    assert "Traceback" not in log
    assert tg.token not in log  # the token is in every Bot API URL; never in the log
    assert tg.of("setWebhook") == []
