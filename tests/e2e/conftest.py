"""Shared pieces of the Telegram e2e tests: the fake Bot API server, a config pointing at it,
local storage, a scripted stand-in for `Handlers` (adapter tests), `running_bot`, the real
`open_telegram` against the fake, and `service`, the whole stack exactly as `videofly run`
assembles it (`build_app`, `serve`, the scheduler, `open_channels`, the outbox `Dispatcher`)
with the shipped config.toml and the Bot API pointed at the fake."""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.app import App, build_app, serve
from bot.channel import Channel
from bot.channels import open_channels
from bot.dispatcher import Dispatcher, DispatchPolicy
from bot.telegram import ChatRateLimiter, TelegramBot, TelegramOptions, open_telegram
from core.config import Config, Secrets, TelegramConfig
from handlers.types import Inbound, Outbound, Text
from storage import LocalStorage
from tests.factories import TestDatabase
from tests.fakes.telegram import TelegramFake
from tests.integration.test_app_run import ROOT, demo_config
from webhooks import TelegramWebhook

LINK_SECRET = "e2e-media-link-secret-0123456789abcdef"
FAST = TelegramOptions(album_wait=0.3, album_max_wait=1.0, poll_timeout=1)


def jpeg(width: int = 320, height: int = 240) -> bytes:
    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    img.save(out, format="JPEG")
    return out.getvalue()


def telegram_config(tg: TelegramFake, config: Config | None = None, **telegram: Any) -> Config:
    """`config` (default: the defaults) with its Bot API pointed at the fake."""
    base = config or Config()
    return replace(base, telegram=replace(base.telegram, api_base_url=tg.api_base_url,
                                          api_file_url=tg.api_file_url, **telegram))


Reply = Callable[[Inbound], list[Outbound] | Awaitable[list[Outbound]]]


@dataclass
class ScriptedHandlers:
    """A stand-in for `handlers.Handlers` in adapter tests: records what came in and answers
    with `reply(inbound)` (by default one Text echoing it)."""

    reply: Reply | None = None
    inbounds: list[Inbound] = field(default_factory=list)
    statuses: list[tuple[int, str, str, str]] = field(default_factory=list)

    async def handle(self, inbound: Inbound) -> list[Outbound]:
        self.inbounds.append(inbound)
        if self.reply is None:
            return [Text(text=f"echo {inbound.choice or inbound.text or len(inbound.photos)}")]
        answer = self.reply(inbound)
        return answer if isinstance(answer, list) else await answer

    async def remember_status(self, job_id: int, *, channel: str, address: str,
                              message_id: str) -> None:
        self.statuses.append((job_id, channel, address, message_id))

    def command_menu(self, language: str) -> list[tuple[str, str]]:
        if language == "zh":
            return [("start", "开始"), ("balance", "余额")]
        return [("start", "Start"), ("balance", "Your credits")]


@pytest.fixture
async def tg() -> AsyncIterator[TelegramFake]:
    async with TelegramFake() as fake:
        yield fake


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media", public_base="http://127.0.0.1:9/",
                        link_secret=LINK_SECRET)


@asynccontextmanager
async def running_bot(tg: TelegramFake, handlers: Any, storage: Any, *,
                      config: Config | None = None, webhook: TelegramWebhook | None = None,
                      options: TelegramOptions = FAST, **kw: Any) -> AsyncIterator[TelegramBot]:
    config = config or telegram_config(tg)
    async with open_telegram(config, token=tg.token, handlers=handlers, storage=storage,
                             webhook=webhook, options=options, **kw) as bot:
        yield bot


# The service's bot with test tuning: replies come faster than a person types, so Telegram's
# ~1/s per chat would only slow the run down.
SERVICE = replace(FAST, rate_limiter=lambda: ChatRateLimiter(chat_per_second=100,
                                                               chat_burst=100))
SERVICE_SECRETS = {"PROVIDER_CALLBACK_SECRET": "p" * 40, "MEDIA_LINK_SECRET": "m" * 40}


@dataclass
class Service:
    """The running service: the app, its public URL, the channels `open_channels` opened."""

    app: App
    url: str
    channels: dict[str, Channel]
    tg: TelegramFake


@asynccontextmanager
async def service(database: TestDatabase, tmp_path: Path, tg: TelegramFake, *,
                  env: Mapping[str, str] | None = None,
                  secrets: Mapping[str, str] | None = None) -> AsyncIterator[Service]:
    """`videofly run` in this process (see `bot.cli.cmd_run`): the shipped config.toml with the
    test database, `env` as VIDEOFLY__… overrides, and `TELEGRAM_BOT_TOKEN` = the fake's token
    plus `secrets` in the Secrets. The port is bound first so the public URL is known."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = demo_config(database, tmp_path / "data", url, ROOT / "config.toml", **{
            "VIDEOFLY__TELEGRAM__API_BASE_URL": tg.api_base_url,
            "VIDEOFLY__TELEGRAM__API_FILE_URL": tg.api_file_url, **(env or {})})
        vault = Secrets({**SERVICE_SECRETS, "TELEGRAM_BOT_TOKEN": tg.token, **(secrets or {})})
        async with build_app(config, vault) as app, serve(app.web_app, sock=sock), \
                app.scheduler, open_channels(app, vault, telegram_options=SERVICE) as channels, \
                Dispatcher(engine=app.engine, handlers=app.handlers, channels=channels,
                           policy=DispatchPolicy(idle=0.1), turns=app.turns):
            yield Service(app, url, channels, tg)


__all__ = ["FAST", "SERVICE", "ScriptedHandlers", "Service", "TelegramConfig", "jpeg",
           "running_bot", "service", "telegram_config"]
