"""`open_wechat(app, secrets)`: the WeChat channel of a running service, both sides wired.

    async with open_wechat(app, secrets) as wx:    # by bot.channels.open_channels
        channels["wechat"] = wx.channel              # for the outbox dispatcher

It builds the API client on one access token for all replicas (`TokenStore.stable`), the
`WeChatChannel` (customer-service messages; in passive mode it keeps each message in
`wechat_held` instead), and the `WeChatInbox` the `/wechat` route hands messages to, and
attaches that inbox to the route's hook (`App.wechat_webhook`, made by `build_app`). At start
it creates the custom menu (`[wechat] menu`; an account that may not, 48001, is logged and
left without). On exit the route is detached first (WeChat's retries then find another
instance) and answers still being made get a bounded time to go out.

The reply to a message is the contract's answer path (`bot.answer.Answerer`: the user's turn
across replicas, numbered menus read back, errors as text), run against a `Collector`: a
channel with WeChat's capabilities that keeps what the conversation says instead of sending
it, so the inbox can put it in the HTTP reply or, when late, send it (active) or hold it
(passive). That is the one point where WeChat needed more than the contract gave, and it
needed no change to it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from bot.answer import Answerer
from bot.app import App, StartupError
from bot.channel import ChannelError
from core.config import Secrets
from core.db import read
from handlers.menus import remember_in
from handlers.messages import CATALOGUES, language_of, t, tn
from handlers.types import Capabilities, Inbound, Outbound, Text
from storage._urlsafety import allow_list
from wallet import queries

from . import _held, _peers
from ._api import WeChatApi
from ._channel import WeChatChannel
from ._inbound import CHANNEL, MENU_COMMANDS, WeChatPhoto
from ._render import TextRenderer
from ._serve import Answered, WeChatInbox
from ._token import TokenStore

__all__ = ["MENU", "SHUTDOWN_WAIT_SECONDS", "Collector", "WeChat", "open_wechat", "say_in"]

log = logging.getLogger("bot.wechat")

SHUTDOWN_WAIT_SECONDS = 5.0
WECHAT_LANGUAGE = "zh"  # WeChat users speak Chinese until they pick another with /language
# The custom menu: CLICK key and label; each key is a command (`_inbound.MENU_COMMANDS`).
MENU = (("MAKE", "wx.menu.make"), ("BALANCE", "wx.menu.balance"),
        ("CHECKIN", "wx.menu.checkin"), ("TOPUP", "wx.menu.topup"))
assert {key for key, _ in MENU} == set(MENU_COMMANDS)


class Collector:
    """A channel that keeps what is sent to it: one message's answers, prepared by the shared
    sender for WeChat (menus numbered, long texts split), for the inbox to deliver."""

    name = CHANNEL

    def __init__(self, capabilities: Capabilities) -> None:
        self.capabilities = capabilities
        self.sent: list[Outbound] = []

    async def send(self, address: str, message: Outbound) -> str | None:
        self.sent.append(message)
        return None

    async def edit(self, address: str, message_id: str, message: Text) -> None:
        """Never called: WeChat declares no progress, so no status message is tracked."""


@dataclass(frozen=True, slots=True)
class WeChat:
    """The running channel: `channel` for the dispatcher, `inbox` for the route, `api`."""

    channel: WeChatChannel
    inbox: WeChatInbox
    api: WeChatApi


@asynccontextmanager
async def open_wechat(app: App, secrets: Secrets, *, window: float | None = None,
                      ) -> AsyncIterator[WeChat]:
    """Wires and starts WeChat (see the module doc); `window` overrides
    `[wechat] reply_window_seconds` (tests)."""
    hook = app.wechat_webhook
    if hook is None:
        raise StartupError("WeChat needs WECHAT_APP_ID, WECHAT_APP_SECRET and WECHAT_TOKEN")
    config, engine, clock = app.config, app.engine, app.handlers.deps.clock
    cfg = config.wechat
    tokens = TokenStore.stable(engine, app.http, base_url=cfg.api_base_url,
                               app_id=secrets["WECHAT_APP_ID"],
                               secret=secrets["WECHAT_APP_SECRET"])
    api = WeChatApi(app.http, cfg.api_base_url, tokens)

    async def keep(openid: str, text: Text) -> None:
        await _held.hold(engine, openid, [text], clock())

    channel = WeChatChannel(api=api, engine=engine, storage=app.storage, config=cfg,
                            link_ttl=config.storage.link_ttl_seconds, passive_sink=keep,
                            clock=clock)
    # Several replicas may each get one of a user's messages; the outbox dispatcher takes
    # the same turns for the notices that write a menu (`App.turns`).
    turns = app.turns

    # A reply is shown at once, in either mode: its menu is the one on screen.
    shown = replace(channel.capabilities, deferred=False)

    async def answer(inbound: Inbound, held: str | None) -> Answered:
        collector = Collector(shown)
        # Holding the turn (`held`), the inbox writes the menu with the turn's release.
        answerer = Answerer(engine=engine, handlers=app.handlers, channel=collector,
                            default_language=config.app.default_language, turns=turns,
                            keep_menus=held is not None)
        await answerer.answer(inbound, held=held)
        menu = answerer.sender.menu
        if menu is None:
            return Answered(collector.sent)
        return Answered(collector.sent, partial(remember_in, channel=CHANNEL,
                                                address=inbound.address, choices=menu))

    async def words(openid: str) -> Callable[..., str]:
        return say_in(await user_language(app, openid))

    async def wrote(openid: str) -> None:
        await _peers.user_wrote(engine, openid, now=clock())

    allow = allow_list(config.generation.allow_hosts)
    inbox = WeChatInbox(
        engine=engine, answer=answer, send=channel.send,
        render=TextRenderer(app.storage, link_ttl=config.storage.link_ttl_seconds),
        words=words, photo=lambda media_id, url: WeChatPhoto(media_id, url, api, app.http,
                                                             allow_hosts=allow),
        clock=clock, mode=cfg.mode, window=window or cfg.reply_window_seconds,
        language=WECHAT_LANGUAGE, reply_bytes=cfg.text_limit_bytes,
        on_inbound=wrote if cfg.mode == "active" else None,  # passive: no window to open
        turns=turns)
    if cfg.menu:
        await create_menu(api, language_of(WECHAT_LANGUAGE, config.app.default_language))
    hook.attach(inbox)
    log.info("wechat official account served at /wechat (%s mode%s)", cfg.mode,
             ", safe mode" if hook.safe_mode else "")
    try:
        yield WeChat(channel=channel, inbox=inbox, api=api)
    finally:
        hook.detach()
        try:
            await inbox.wait_idle(SHUTDOWN_WAIT_SECONDS)
        except TimeoutError:
            log.warning("wechat: answers still being made at shutdown were dropped")


async def create_menu(api: WeChatApi, lang: str) -> None:
    """The custom menu, CLICK buttons: Make, Balance, and (WeChat allows three at the top)
    Credits → Check in, Top up."""
    click: list[dict[str, Any]] = [{"type": "click", "name": t(lang, label), "key": key}
                                   for key, label in MENU]
    buttons = [*click[:2], {"name": t(lang, "wx.menu.credits"), "sub_button": click[2:]}]
    try:
        await api.create_menu(buttons)
    except ChannelError as exc:  # 48001: this account may not have a custom menu
        log.warning("wechat: the custom menu was not created (%s, errcode %s)",
                    type(exc).__name__, getattr(exc, "errcode", "-"))


def say_in(lang: str) -> Callable[..., str]:
    """The inbox's `say(key, **params)` in `lang`; a plural key ("wx.more": `wx.more#one`,
    `wx.more#other`) takes its form from the `count` param."""

    def say(key: str, /, **params: Any) -> str:
        if f"{key}#other" in CATALOGUES["en"]:
            return tn(lang, key, int(params.pop("count")), **params)
        return t(lang, key, **params)

    return say


async def user_language(app: App, openid: str) -> str:
    """The language the user chose, else Chinese."""
    async with read(app.engine) as conn:
        user = await queries.find_user(conn, CHANNEL, openid)
        stored = None if user is None else await queries.language(conn, user)
    return language_of(stored or WECHAT_LANGUAGE, app.config.app.default_language)
