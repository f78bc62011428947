"""python-telegram-bot plumbing: the rate limiter and the update processor VideoFly runs with.

`ChatRateLimiter` is PTB's `AIORateLimiter` (about 30 requests/s overall; groups 20/min) plus
what it leaves out: private chats. Telegram asks for about one message per second per chat;
a reply is often two or three messages at once, so each private chat gets a small burst
(`chat_burst`) refilled at `chat_per_second`. A 429 is waited out in place (every other request
waits with it, as AIORateLimiter does) and retried up to `max_retries` times, but only when
`retry_after` is at most `max_wait` seconds: a longer pause would stall the caller, so the
`RetryAfter` goes up instead and the outbox dispatcher retries later (`RetryLater`).

`PerUserProcessor` processes updates of different users concurrently (up to
`max_concurrent_updates`) and each user's updates one at a time, in arrival order: a
conversation's state lives in the database, and a photo followed at once by its prompt must be
handled in that order. The per-user lock is also what the album collector takes before it hands
an album over. One user sending many updates at once occupies that many slots of the
processor's semaphore while they wait for their lock; Telegram's own per-user limits keep that
small.

`redacting` puts a filter on python-telegram-bot's loggers that replaces the bot token with
`<token>`: PTB logs its API URLs, which hold the token, at DEBUG.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

from aiolimiter import AsyncLimiter
from telegram import Update
from telegram.error import RetryAfter
from telegram.ext import AIORateLimiter, BaseUpdateProcessor
from telegram.warnings import PTBDeprecationWarning

from .ordering import KeyedLock

__all__ = ["ChatRateLimiter", "PerUserProcessor", "redacting", "retry_seconds", "user_key"]

JSONish = bool | dict[str, Any] | list[dict[str, Any]]
_MAX_IDLE_LIMITERS = 512  # per-chat limiters kept before idle ones are dropped


def retry_seconds(exc: RetryAfter) -> float:
    """`retry_after` in seconds, whichever type this PTB version hands out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class _WaitTooLong(Exception):
    """Carries a RetryAfter past AIORateLimiter's in-place retry loop."""

    def __init__(self, original: RetryAfter) -> None:
        super().__init__(str(original))
        self.original = original


class ChatRateLimiter(AIORateLimiter):
    def __init__(self, *, overall_per_second: float = 30, chat_per_second: float = 1.0,
                 chat_burst: int = 3, max_retries: int = 2, max_wait: float = 5.0) -> None:
        super().__init__(overall_max_rate=overall_per_second, overall_time_period=1,
                         max_retries=max_retries)
        self._chat_rate = chat_per_second
        self._chat_burst = chat_burst
        self._max_wait = max_wait
        self._chats: dict[int, AsyncLimiter] = {}

    def _chat_limiter(self, chat_id: int) -> AsyncLimiter | None:
        if self._chat_rate <= 0 or self._chat_burst <= 0:
            return None
        if len(self._chats) > _MAX_IDLE_LIMITERS:
            for key, limiter in list(self._chats.items()):
                if key != chat_id and limiter.has_capacity(limiter.max_rate):
                    del self._chats[key]
        found = self._chats.get(chat_id)
        if found is None:
            found = self._chats[chat_id] = AsyncLimiter(
                self._chat_burst, self._chat_burst / self._chat_rate)
        return found

    async def process_request(
        self, callback: Callable[..., Coroutine[Any, Any, JSONish]], args: Any,
        kwargs: dict[str, Any], endpoint: str, data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> JSONish:
        async def bounded(*a: Any, **kw: Any) -> JSONish:
            try:
                return await callback(*a, **kw)
            except RetryAfter as exc:
                if retry_seconds(exc) > self._max_wait:
                    raise _WaitTooLong(exc) from None
                raise

        chat_id = data.get("chat_id")
        try:
            chat = int(chat_id) if chat_id is not None else None
        except (TypeError, ValueError):
            chat = None
        limiter = self._chat_limiter(chat) if chat is not None and chat > 0 else None
        try:
            if limiter is None:
                return await super().process_request(bounded, args, kwargs, endpoint, data,
                                                     rate_limit_args)
            async with limiter:
                return await super().process_request(bounded, args, kwargs, endpoint, data,
                                                     rate_limit_args)
        except _WaitTooLong as exc:
            raise exc.original from None


def user_key(update: object) -> int | None:
    """The user an update belongs to, for ordering; None for updates without one, and for a
    pre-checkout query: it touches no conversation and must be answered within 10 s, so it does
    not wait behind the user's other updates."""
    if isinstance(update, Update) and update.pre_checkout_query is not None:
        return None
    if isinstance(update, Update) and update.effective_user is not None:
        return update.effective_user.id
    return None


class PerUserProcessor(BaseUpdateProcessor):
    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self._locks = KeyedLock()  # the channel-neutral FIFO lock (bot.ordering)

    @asynccontextmanager
    async def serialised(self, user: int) -> AsyncIterator[None]:
        """Holds `user`'s lock; the lock is forgotten once nobody holds or waits for it."""
        async with self._locks.hold(user):
            yield

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        user = user_key(update)
        if user is None:
            await coroutine
            return
        async with self.serialised(user):
            await coroutine

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


class _RedactToken(logging.Filter):
    """Replaces the bot token in log records (PTB logs its API URLs at DEBUG)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, "<token>"), None
        return True


def redacting(stack: ExitStack | AsyncExitStack, token: str) -> None:
    """Puts the filter on PTB's loggers (made at import, so all exist by now) until exit."""
    redact = _RedactToken(token)
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "telegram"]
    for logger in (logging.getLogger(n) for n in ["telegram", *names]):
        logger.addFilter(redact)
        stack.callback(logger.removeFilter, redact)
