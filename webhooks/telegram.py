"""`POST /telegram`: Telegram's webhook, verified, parsed and put on the bot's update queue.

    hook = TelegramWebhook(secrets["TELEGRAM_WEBHOOK_SECRET"])
    app = create_app(WebDeps(..., telegram=hook))          # the route exists only with a hook
    hook.attach(application.bot, application.update_queue) # by bot.telegram.open_telegram

The route compares `X-Telegram-Bot-Api-Secret-Token` with the secret in constant time (missing
or wrong: 401, nothing queued), reads the body within the server's size limit (413), parses it
(not JSON or not an update: 400), queues `Update.de_json(body, bot)` and answers 200 at once:
Telegram retries anything else, so the work happens after the answer. Before a bot is attached,
or while too many updates wait unprocessed, it answers 503 and Telegram delivers again later.

An update answered 200 but not yet processed when the process dies is lost; Telegram keeps no
copy once it got its 200. That is the price of answering at once, which Telegram asks for.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from typing import TYPE_CHECKING

from aiohttp import web

from ._deps import DEPS
from ._errors import Busy, NotFound, Unauthorized, WebError

if TYPE_CHECKING:
    from telegram import Bot

__all__ = ["SECRET_HEADER", "TelegramWebhook", "telegram_update"]

log = logging.getLogger("webhooks.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105  (a header name)
_SECRET_FORM = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what setWebhook accepts as secret_token


class TelegramWebhook:
    """Where the route hands updates: the secret to check and, once attached, the bot's queue."""

    def __init__(self, secret: str, *, max_pending: int = 1000) -> None:
        if not _SECRET_FORM.fullmatch(secret or ""):
            # Never echo the value: it is a secret.
            raise ValueError("TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, "
                             "0-9, _ and -")
        self._secret = secret.encode()
        self.max_pending = max_pending
        self._bot: Bot | None = None
        self._queue: asyncio.Queue[object] | None = None

    @property
    def secret(self) -> str:
        return self._secret.decode()

    def check(self, header: str | None) -> bool:
        given = (header or "").encode("utf-8", "replace")
        return hmac.compare_digest(given, self._secret)

    def attach(self, bot: Bot, queue: asyncio.Queue[object]) -> None:
        self._bot, self._queue = bot, queue

    def detach(self) -> None:
        self._bot = self._queue = None

    @property
    def attached(self) -> bool:
        return self._queue is not None

    def accept(self, data: dict[str, object]) -> bool:
        """Queues one update; False when no bot is attached or the queue is full."""
        bot, queue = self._bot, self._queue
        if bot is None or queue is None or queue.qsize() >= self.max_pending:
            return False
        from telegram import Update  # loaded already: the attached bot is python-telegram-bot's

        update = Update.de_json(data, bot)
        queue.put_nowait(update)
        return True


async def telegram_update(request: web.Request) -> web.Response:
    """Verifies the secret, parses the update and queues it; answers before processing."""
    hook = request.app[DEPS].telegram
    if hook is None:
        raise NotFound("not found")
    if not hook.check(request.headers.get(SECRET_HEADER)):
        raise Unauthorized("bad secret token")
    body = await request.read()  # over the server's client_max_size: 413
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebError("malformed update") from None
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise WebError("malformed update")
    try:
        queued = hook.accept(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise WebError("malformed update") from None
    if not queued:
        raise Busy("not ready for updates")
    return web.json_response({"ok": True})
