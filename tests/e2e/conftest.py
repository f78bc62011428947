"""Shared pieces of the Telegram e2e tests: the fake Bot API server, a config pointing at it,
local storage, a scripted stand-in for `Handlers` (adapter tests), and `running_bot`, the real
`open_telegram` against the fake."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.telegram import TelegramBot, TelegramOptions, open_telegram
from core.config import Config, TelegramConfig
from handlers.types import Inbound, Outbound, Text
from storage import LocalStorage
from tests.fakes.telegram import TelegramFake
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


__all__ = ["FAST", "ScriptedHandlers", "TelegramConfig", "jpeg", "running_bot",
           "telegram_config"]
