"""The Telegram channel: python-telegram-bot 22 in front of the channel-neutral `Handlers`.

    hook = TelegramWebhook(secrets["TELEGRAM_WEBHOOK_SECRET"])   # webhook mode only, given to
    app = ... WebDeps(..., telegram=hook)                          # the web app's POST /telegram
    async with open_telegram(config, token=secrets["TELEGRAM_BOT_TOKEN"], handlers=handlers,
                             storage=app.storage, webhook=hook) as tg:
        dispatcher = Dispatcher(..., channels={"telegram": tg.channel})
        ...

`open_telegram` builds the `Application` (the Bot API server of `[telegram] api_base_url` /
`api_file_url`, `local_mode` for a self-hosted one), sets the command menu per language, starts
and, on exit, stops it. `[telegram] mode`:
- `polling`: PTB's updater long-polls getUpdates;
- `webhook`: no updater; our aiohttp route puts updates on `application.update_queue`, and
  `setWebhook({public_url}/telegram, secret_token=…)` is called at start. The webhook is left
  set on exit: other instances behind the same URL go on serving it (and one that is stopping
  detaches first, so Telegram's retries find another instance).

Every update goes through one path: `to_inbound` → the shared answer path (`bot.answer.Answerer`:
`Handlers.handle`, errors through the one mapper, each answer sent in order, a
`Text(track_job=…)` remembered as that job's status message). Updates of different users run
concurrently, one user's in arrival order (`PerUserProcessor`, over `bot.ordering.KeyedLock`; in
webhook mode, where several instances may receive one user's updates, also the turn lease
across instances when the bot is given the `engine`);
album parts are collected into one Inbound (`AlbumCollector`); a pressed button is answered at
once (the spinner stops) and handled as `Inbound.choice`; a Stars pre-checkout query is answered
by the `pre_checkout(payload, total_amount=, currency=) -> bool` hook (payments), or refused
without one. Telegram waits 10 s for that answer: the hook gets `pre_checkout_timeout` seconds
(8 by default, the rest is for the answer itself), and a hook that is late or raises refuses the
payment with the catalogue text, as a "no" does (the buyer can try again; a late "yes" would be
lost anyway).

A reply that cannot be sent (the user blocked the bot, a long 429, the network) is logged and
the rest of that reply is dropped (`bot.answer`).

httpx logs every request URL at INFO, and Bot API URLs hold the token: its logging is turned
down here, and while the bot runs a filter on every `telegram…` logger replaces the token with
`<token>` (PTB logs the API URL at DEBUG). Nothing is built at import time.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import BotCommand, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseRateLimiter,
    ContextTypes,
    PreCheckoutQueryHandler,
    TypeHandler,
)

from core.config import Config
from handlers.errors import incident
from handlers.messages import language_of, t
from storage import Storage
from webhooks.telegram import TelegramWebhook

from ._telegram_channel import Limits, TelegramChannel, telegram_errors
from ._telegram_inbound import DOWNLOAD_LIMIT, AlbumCollector, to_inbound
from ._telegram_ptb import ChatRateLimiter, PerUserProcessor, redacting
from .answer import Answerer
from .answer import ChatHandlers as AnswerHandlers
from .ordering import Turns

__all__ = [
    "ALLOWED_UPDATES",
    "ChatHandlers",
    "ChatRateLimiter",
    "Limits",
    "TelegramBot",
    "TelegramChannel",
    "TelegramOptions",
    "TelegramStartupError",
    "open_telegram",
]

log = logging.getLogger("bot.telegram")

ALLOWED_UPDATES = ("message", "callback_query", "pre_checkout_query")
WEBHOOK_PATH = "/telegram"
PRE_CHECKOUT_SECONDS = 8.0  # of the 10 s Telegram waits for answerPreCheckoutQuery


class PreCheckout(Protocol):
    """The payments' pre-checkout check (`Payments.check_stars_payload`): is this invoice ours,
    still sold, at this amount and currency?"""

    def __call__(self, payload: str, *, total_amount: int,
                 currency: str) -> bool | Awaitable[bool]: ...


# The application's generic parameters are PTB's defaults; spelled once here.
AnyApplication = Application[Any, Any, Any, Any, Any, Any]


class TelegramStartupError(Exception):
    """The bot cannot start: the token was refused, or the Bot API server is unreachable."""


class ChatHandlers(AnswerHandlers, Protocol):
    """What the adapter needs of `handlers.Handlers`."""

    def command_menu(self, language: str) -> list[tuple[str, str]]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class TelegramOptions:
    """Tuning, with production defaults; tests and the benchmark change some."""

    # Updates processed at once (different users). 8 sustain 50-160 updates/s at a Bot API
    # round trip of 50-150 ms, above Telegram's ~30 messages/s per bot; at 16, httpcore's pool
    # bookkeeping (quadratic in open connections, a select() per idle one per request) cost
    # ~0.6 ms CPU per update (bench/telegram.py).
    concurrency: int = 8
    album_wait: float = 1.0  # seconds without a new album part before the album is handed on
    album_max_wait: float = 3.0  # seconds after an album's first part, at most
    poll_timeout: int = 10  # getUpdates long-poll seconds
    limits: Limits | None = None  # upload limits; None: Telegram's for the server kind
    download_limit: int = DOWNLOAD_LIMIT
    pre_checkout_timeout: float = PRE_CHECKOUT_SECONDS  # the payments hook's time to answer
    rate_limiter: Callable[[], BaseRateLimiter] = field(  # type: ignore[type-arg]
        default=ChatRateLimiter)


class TelegramBot:
    """A running bot: `channel` for the dispatcher, `application` for PTB, `webhook` if any."""

    def __init__(self, application: AnyApplication, channel: TelegramChannel, *,
                 config: Config, handlers: ChatHandlers, processor: PerUserProcessor,
                 options: TelegramOptions, webhook: TelegramWebhook | None,
                 pre_checkout: PreCheckout | None, engine: AsyncEngine | None = None) -> None:
        self.application, self.channel, self.webhook = application, channel, webhook
        self.config, self.handlers, self.options = config, handlers, options
        self._pre_checkout = pre_checkout
        # Polling: one getUpdates reader, in order; webhook: any instance may get an update.
        turns = Turns(engine, lease=webhook is not None) if engine is not None else None
        self.answers = Answerer(engine=engine, handlers=handlers, channel=channel,
                                default_language=config.app.default_language, turns=turns)
        self.albums = AlbumCollector(
            deliver=self.answers.answer, serialised=processor.serialised,
            spawn=application.create_task, wait=options.album_wait,
            max_wait=options.album_max_wait)

    @property
    def served(self) -> int:
        """Inbound updates answered (replies sent or dropped): for tests, metrics."""
        return self.answers.answered

    async def refund_stars(self, user_id: int | str, charge_id: str) -> None:
        """refundStarPayment; the channel's errors (`Undeliverable` for a refused refund)."""
        with telegram_errors(self.application.bot.token):
            await self.application.bot.refund_star_payment(int(user_id), charge_id)

    async def on_update(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Turns one update into an Inbound and answers it (albums: once complete)."""
        if not isinstance(update, Update):
            return
        bot = self.application.bot
        if update.callback_query is not None:
            try:
                await update.callback_query.answer()
            except TelegramError as exc:  # the spinner stops by itself after a while
                log.debug("answerCallbackQuery failed: %s", type(exc).__name__)
        inbound = to_inbound(update, bot, limit=self.options.download_limit)
        if inbound is None:
            return
        user = int(inbound.address)
        if inbound.album is not None and inbound.photos and update.message is not None:
            await self.albums.add(user, update.message.message_id, inbound)
            return
        await self.albums.flush(user)  # an album this user sent before comes first
        await self.answers.answer(inbound)

    async def on_pre_checkout(self, update: object,
                              context: ContextTypes.DEFAULT_TYPE) -> None:
        """Accepts a Stars payment whose payload the payments service still honours."""
        assert isinstance(update, Update)
        assert update.pre_checkout_query is not None
        query = update.pre_checkout_query
        ok = False
        if self._pre_checkout is not None and query.currency == "XTR":
            try:
                async with asyncio.timeout(self.options.pre_checkout_timeout):
                    answer = self._pre_checkout(query.invoice_payload,
                                                total_amount=query.total_amount,
                                                currency=query.currency)
                    ok = bool(await answer) if inspect.isawaitable(answer) else bool(answer)
            except TimeoutError:
                ok = False
                log.warning("pre-checkout check took over %s s; refusing the payment",
                            self.options.pre_checkout_timeout)
            except Exception:
                log.exception("pre-checkout check failed; refusing the payment")
        lang = language_of(query.from_user.language_code, self.config.app.default_language)
        try:
            await query.answer(ok=ok,
                               error_message=None if ok else t(lang, "tg.checkout_refused"))
        except TelegramError as exc:
            log.warning("answerPreCheckoutQuery failed: %s", type(exc).__name__)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        incident(context.error, "a telegram update failed")

    async def set_commands(self) -> None:
        """The command menu: the default language for everyone, then English and Chinese."""
        bot = self.application.bot
        default = self.config.app.default_language
        for code in (None, "en", "zh"):
            menu = self.handlers.command_menu(code or default)
            try:
                await bot.set_my_commands([BotCommand(c, d) for c, d in menu],
                                          language_code=code)
            except TelegramError as exc:  # a missing menu is no reason not to start
                log.warning("setMyCommands(%s) failed: %s", code or "default",
                            type(exc).__name__)


def _build(config: Config, token: str, options: TelegramOptions,
           processor: PerUserProcessor, webhook_mode: bool) -> AnyApplication:
    tg = config.telegram
    builder = (ApplicationBuilder().token(token).base_url(tg.api_base_url)
               .base_file_url(tg.api_file_url).local_mode(tg.local_mode)
               .rate_limiter(options.rate_limiter()).concurrent_updates(processor))
    if webhook_mode:
        builder = builder.updater(None)
    return builder.build()


@asynccontextmanager
async def open_telegram(
    config: Config, *, token: str, handlers: ChatHandlers, storage: Storage,
    webhook: TelegramWebhook | None = None, pre_checkout: PreCheckout | None = None,
    options: TelegramOptions | None = None, engine: AsyncEngine | None = None,
) -> AsyncIterator[TelegramBot]:
    """Builds, starts and on exit stops the bot (see the module doc). Webhook mode needs the
    `webhook` the web application routes `POST /telegram` to."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    options = options or TelegramOptions()
    webhook_mode = config.telegram.mode == "webhook"
    if webhook_mode and webhook is None:
        raise TelegramStartupError("[telegram] mode = \"webhook\" needs TELEGRAM_WEBHOOK_SECRET "
                                   "and the web server's POST /telegram route")
    processor = PerUserProcessor(options.concurrency)
    async with AsyncExitStack() as stack:
        redacting(stack, token)  # first: building the bot logs its URL already
        application = _build(config, token, options, processor, webhook_mode)
        channel = TelegramChannel(application.bot, storage,
                                  link_ttl=config.storage.link_ttl_seconds,
                                  local_mode=config.telegram.local_mode, limits=options.limits)
        tg = TelegramBot(application, channel, config=config, handlers=handlers,
                         processor=processor, options=options,
                         webhook=webhook if webhook_mode else None, pre_checkout=pre_checkout,
                         engine=engine)
        application.add_handler(PreCheckoutQueryHandler(tg.on_pre_checkout))
        application.add_handler(TypeHandler(Update, tg.on_update))
        application.add_error_handler(tg.on_error)
        try:
            await application.initialize()  # getMe: checks the token and the server
        except InvalidToken:
            raise TelegramStartupError("the Bot API refused TELEGRAM_BOT_TOKEN") from None
        except TelegramError as exc:
            raise TelegramStartupError(
                f"cannot reach the Bot API server: {type(exc).__name__}") from None
        stack.push_async_callback(application.shutdown)
        await tg.set_commands()
        await application.start()
        stack.push_async_callback(application.stop)
        if tg.webhook is not None:
            tg.webhook.attach(application.bot, application.update_queue)
            stack.callback(tg.webhook.detach)
            await application.bot.set_webhook(
                f"{config.http.public_url}{WEBHOOK_PATH}", secret_token=tg.webhook.secret,
                allowed_updates=list(ALLOWED_UPDATES))
        else:
            assert application.updater is not None
            await application.updater.start_polling(
                timeout=options.poll_timeout, allowed_updates=list(ALLOWED_UPDATES))
            stack.push_async_callback(application.updater.stop)
        log.info("telegram bot @%s running (%s)", application.bot.username,
                 config.telegram.mode)
        yield tg
