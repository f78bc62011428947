"""Webhook mode: the fake Bot API pushes updates to our real aiohttp server's `POST /telegram`,
which checks the secret token and hands them to the bot's update queue."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import serve
from bot.telegram import TelegramStartupError
from core.config import Config, GenerationConfig, HttpConfig
from generation import Catalogue, JobService
from storage import LocalStorage
from tests.fakes.telegram import TelegramFake
from wallet import Wallet
from webhooks import Metrics, TelegramWebhook, WebDeps, create_app

from .conftest import ScriptedHandlers, running_bot, telegram_config

SECRET = "hook-secret_0123456789-abc"
MAX_BODY = 64 * 1024


@asynccontextmanager
async def web_server(engine: AsyncEngine, storage: LocalStorage,
                     hook: TelegramWebhook) -> AsyncIterator[str]:
    """The web application as the composition root builds it, with the Telegram hook."""
    async with httpx.AsyncClient() as http:
        jobs = JobService(engine=engine, wallet=Wallet(engine), catalogue=Catalogue([]),
                          providers={}, storage=storage, http=http, config=GenerationConfig(),
                          public_url="http://127.0.0.1:9", callback_secret="c" * 32)
        app = create_app(WebDeps(engine=engine, jobs=jobs, providers={}, storage=storage,
                                 metrics=Metrics(), max_body_bytes=MAX_BODY, telegram=hook))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            async with serve(app, sock=sock) as url:
                yield url


def webhook_config(tg: TelegramFake, url: str) -> Config:
    config = telegram_config(tg, mode="webhook")
    return replace(config, http=HttpConfig(public_url=url))


async def test_updates_pushed_to_the_webhook_are_answered(
        tg: TelegramFake, storage: LocalStorage, engine: AsyncEngine) -> None:
    hook = TelegramWebhook(SECRET)
    script = ScriptedHandlers()
    async with web_server(engine, storage, hook) as url, \
            running_bot(tg, script, storage, config=webhook_config(tg, url), webhook=hook):
        [setting] = tg.of("setWebhook")
        assert setting.params["url"] == f"{url}/telegram"
        assert setting.params["secret_token"] == SECRET
        assert setting.params["allowed_updates"] == ["message", "callback_query",
                                                     "pre_checkout_query"]
        alice = tg.user(31)
        alice.says("/balance")
        await tg.wait_for("sendMessage", chat_id=31)
        alice.presses("h:2")
        await tg.wait_for("sendMessage", chat_id=31, count=2)
    assert [i.text or i.choice for i in script.inbounds] == ["/balance", "h:2"]
    assert tg.webhook is not None
    assert tg.webhook.statuses == [200, 200]
    assert tg.of("getUpdates") == []
    assert not hook.attached  # detached on exit: later pushes get 503 and are retried


async def test_the_route_refuses_what_it_must(tg: TelegramFake, storage: LocalStorage,
                                              engine: AsyncEngine) -> None:
    hook = TelegramWebhook(SECRET)
    script = ScriptedHandlers()
    update = {"update_id": 1, "message": {
        "message_id": 1, "date": 0, "chat": {"id": 32, "type": "private"},
        "from": {"id": 32, "is_bot": False, "first_name": "Eve"}, "text": "hi"}}
    body = json.dumps(update)
    async with web_server(engine, storage, hook) as url, \
            httpx.AsyncClient(base_url=url, timeout=10) as client:
        async def post(data: str | bytes, secret: str | None = SECRET) -> httpx.Response:
            headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
            return await client.post("/telegram", content=data, headers=headers)

        assert (await post(body)).status_code == 503  # no bot attached yet: Telegram retries
        async with running_bot(tg, script, storage, config=webhook_config(tg, url),
                               webhook=hook):
            assert (await post(body, secret=None)).status_code == 401
            assert (await post(body, secret=SECRET + "x")).status_code == 401
            assert (await post(body, secret=SECRET.upper())).status_code == 401
            assert (await post("{not json")).status_code == 400
            assert (await post("[1, 2]")).status_code == 400
            assert (await post(json.dumps({"update_id": "1"}))).status_code == 400
            assert (await post(b"{" + b" " * MAX_BODY + b"}")).status_code == 413
            assert script.inbounds == []
            answer = await post(body)
            assert (answer.status_code, answer.json()) == (200, {"ok": True})
            await tg.wait_for("sendMessage", chat_id=32)
    assert [i.text for i in script.inbounds] == ["hi"]


def test_a_webhook_secret_must_be_what_telegram_accepts() -> None:
    for bad in ("", "has space", "ü" * 3, "x" * 257):
        with pytest.raises(ValueError, match="TELEGRAM_WEBHOOK_SECRET") as refused:
            TelegramWebhook(bad)
        assert not bad or bad not in str(refused.value)
    assert TelegramWebhook("A-z_09").secret == "A-z_09"


async def test_webhook_mode_without_a_hook_does_not_start(tg: TelegramFake,
                                                          storage: LocalStorage) -> None:
    config = webhook_config(tg, "http://127.0.0.1:9")
    with pytest.raises(TelegramStartupError, match="TELEGRAM_WEBHOOK_SECRET"):
        async with running_bot(tg, ScriptedHandlers(), storage, config=config):
            pass
    assert tg.calls == []
