"""The chat channels `videofly run` serves, opened from the config and the secrets.

Telegram runs when `TELEGRAM_BOT_TOKEN` is set (polling, or webhook mode through the web app's
`POST /telegram`, which `build_app` prepared). Its Stars hooks go to the payments service: the
pre-checkout answer (`Payments.check_stars_payload`) and `/refund` (`refundStarPayment`).
WeChat runs when `WECHAT_APP_ID`, `WECHAT_APP_SECRET` and `WECHAT_TOKEN` are set (`build_app`
made the `/wechat` route's hook; `bot.wechat.open_wechat` attaches the inbox, creates the menu).
With no channel configured the service still runs (callbacks, payments, the outbox waits for
an instance that serves the users' channels).

`telegram_options` tunes the bot (tests: a short long-poll, a looser per-chat rate); `videofly
run` leaves it at the production defaults. python-telegram-bot is imported only when Telegram
runs.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from core.config import Secrets

from .app import App, StartupError
from .channel import Channel

if TYPE_CHECKING:
    from .telegram import TelegramOptions

__all__ = ["open_channels"]

log = logging.getLogger("bot.channels")


@asynccontextmanager
async def open_channels(app: App, secrets: Secrets, *,
                        telegram_options: TelegramOptions | None = None,
                        ) -> AsyncIterator[dict[str, Channel]]:
    """Starts every configured channel; yields them by name; stops them on exit."""
    channels: dict[str, Channel] = {}
    async with AsyncExitStack() as stack:
        token = secrets.get("TELEGRAM_BOT_TOKEN")
        if token:
            from .telegram import TelegramStartupError, open_telegram  # PTB only when used

            try:
                bot = await stack.enter_async_context(open_telegram(
                    app.config, token=token, handlers=app.handlers, storage=app.storage,
                    webhook=app.telegram_webhook, pre_checkout=app.payments.check_stars_payload,
                    options=telegram_options, engine=app.engine))
            except TelegramStartupError as exc:
                raise StartupError(f"telegram: {exc}") from None
            app.payments.stars_refund = bot.refund_stars
            app.payments.stars_subscription_link = bot.subscription_link
            app.payments.stars_subscription_edit = bot.edit_star_subscription
            for port in ("stars_refund", "stars_subscription_link", "stars_subscription_edit"):
                stack.callback(setattr, app.payments, port, None)
            channels[bot.channel.name] = bot.channel
        if app.wechat_webhook is not None:
            from .wechat import open_wechat  # wechatpy only when used

            wx = await stack.enter_async_context(open_wechat(app, secrets))
            channels[wx.channel.name] = wx.channel
        if not channels:
            log.info("no chat channel configured (set TELEGRAM_BOT_TOKEN for Telegram, "
                     "WECHAT_APP_ID, WECHAT_APP_SECRET and WECHAT_TOKEN for WeChat)")
        yield channels
