"""What the web application is built from, and the typed keys it keeps them under."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from generation import JobService
from providers import Provider
from storage import Storage

from ._handover import Handover
from .health import HealthProbe
from .metrics import Metrics

if TYPE_CHECKING:
    from payments import Payments

    from .telegram import TelegramWebhook
    from .wechat import WeChatWebhook

__all__ = ["DEPS", "HANDOVER", "HEALTH", "WebDeps"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WebDeps:
    """Everything the routes use, built once by the composition root.

    `providers` are the same clients the `JobService` uses (wrapped in `TimedProvider`);
    `max_body_bytes` bounds every request body (more gets 413); `demo_dir`, when set, is where
    the demo provider writes its clips, served at `/demo/{name}`."""

    engine: AsyncEngine
    jobs: JobService
    providers: Mapping[str, Provider]
    storage: Storage
    metrics: Metrics
    max_body_bytes: int
    demo_dir: pathlib.Path | None = None
    # Telegram webhook mode: where `POST /telegram` puts updates (no route without it).
    telegram: TelegramWebhook | None = None
    # Top-ups: `POST /payments/stripe` and `/payments/creem` (no routes without it).
    payments: Payments | None = None
    # Seconds a client has to send a request body (more: 408).
    body_timeout: float = 30.0
    # /healthz: the background probe's period, and how old its last success may be.
    health_interval: float = 2.0
    health_max_age: float = 15.0
    # WeChat: where `GET|POST /wechat` hands messages (no route without it).
    wechat: WeChatWebhook | None = None


DEPS = web.AppKey("deps", WebDeps)
HANDOVER = web.AppKey("handover", Handover)
HEALTH = web.AppKey("health", HealthProbe)
