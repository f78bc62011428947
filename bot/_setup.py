"""What the config asks the service to build, checked before anything starts: the registered
provider clients an enabled model uses (each with its key and settings), the Telegram webhook's
hand-over point, WeChat's (all of its variables or none), and the generation settings with the
demo's own origin allowed. Each problem is a `StartupError` whose message names what to set."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from core.config import Config, GenerationConfig, Secrets
from providers import PROVIDERS, Provider, Setup

if TYPE_CHECKING:
    from webhooks.telegram import TelegramWebhook
    from webhooks.wechat import WeChatWebhook

__all__ = ["WECHAT_NEEDS", "StartupError", "clients", "generation", "telegram_webhook",
           "wechat_webhook"]


class StartupError(Exception):
    """The service cannot start as configured; the message names what to set."""


def telegram_webhook(config: Config, secrets: Secrets) -> TelegramWebhook | None:
    """The hand-over point of `POST /telegram`, in webhook mode with a bot token only."""
    if config.telegram.mode != "webhook" or not secrets.get("TELEGRAM_BOT_TOKEN"):
        return None
    from webhooks.telegram import TelegramWebhook  # aiohttp only when a server is started

    try:
        return TelegramWebhook(secrets.get("TELEGRAM_WEBHOOK_SECRET") or "")
    except ValueError as exc:
        raise StartupError(f"[telegram] mode = \"webhook\": {exc}") from None


WECHAT_NEEDS = ("WECHAT_APP_ID", "WECHAT_APP_SECRET", "WECHAT_TOKEN")


def wechat_webhook(config: Config, secrets: Secrets) -> WeChatWebhook | None:
    """The hand-over point of `/wechat`, when WeChat's variables are set (all or none of
    them); safe mode with `WECHAT_AES_KEY`. StartupError names what is missing or wrong."""
    given = [name for name in WECHAT_NEEDS if secrets.get(name)]
    if not given:
        if secrets.get("WECHAT_AES_KEY"):
            raise StartupError("WECHAT_AES_KEY is set: set WECHAT_APP_ID, WECHAT_APP_SECRET "
                               "and WECHAT_TOKEN too, or unset it")
        return None
    missing = [name for name in WECHAT_NEEDS if name not in given]
    if missing:
        raise StartupError(f"WeChat: set the environment variable {missing[0]} (WeChat needs "
                           f"{', '.join(WECHAT_NEEDS)})")
    from webhooks.wechat import WeChatWebhook  # wechatpy only when WeChat is served

    try:
        return WeChatWebhook(token=secrets["WECHAT_TOKEN"], app_id=secrets["WECHAT_APP_ID"],
                             aes_key=secrets.get("WECHAT_AES_KEY"),
                             max_body_bytes=config.wechat.max_body_bytes)
    except ValueError as exc:
        raise StartupError(f"WeChat: {exc}") from None


def clients(config: Config, secrets: Secrets, http: httpx.AsyncClient, *,
             skip: frozenset[str]) -> dict[str, Provider]:
    """The registered clients that enabled models use (but those in `skip`, which the caller
    supplies); StartupError names a missing key or setting."""
    clients: dict[str, Provider] = {}
    for model in config.models:
        name = model.provider
        if not model.enabled or name == "demo" or name in clients or name in skip:
            continue
        spec = PROVIDERS.get(name)
        if spec is None:
            raise StartupError(f"model {model.id!r}: unknown provider {name!r} "
                               f"(known: demo, {', '.join(PROVIDERS)})")
        key = secrets.get(spec.key_variable)
        if not key:
            raise StartupError(f"model {model.id!r} uses provider {name!r}: set the environment "
                               f"variable {spec.key_variable} (or disable the model)")
        settings: dict[str, str] = {}
        for setting, meaning in spec.settings:
            value = getattr(config.generation, setting, "")
            if not isinstance(value, str) or not value:
                raise StartupError(f"model {model.id!r} uses provider {name!r}: set "
                                   f"[generation] {setting} to {meaning}")
            settings[setting] = value
        clients[name] = spec.build(Setup(http=http, api_key=key, settings=settings))
    return clients


def generation(config: Config) -> GenerationConfig:
    """The generation config, with our own origin (scheme, host and port of the public URL,
    and nothing else) allowed for the demo's results."""
    gen = config.generation
    parts = urlsplit(config.http.public_url)
    uses_demo = any(m.enabled and m.provider == "demo" for m in config.models)
    if not uses_demo or not parts.hostname:
        return gen
    own = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    return gen if own in gen.allow_hosts else replace(gen, allow_hosts=(*gen.allow_hosts, own))
