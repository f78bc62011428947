"""The WeChat official account channel.

Inbound (`_inbound`, `_serve`, `_dedup`, `_held`, `_render`): the `/wechat` route
(`webhooks.wechat`) verifies, decrypts and parses each message and hands it to
`WeChatInbox.on_message`, which answers it once across replicas and within WeChat's 5 seconds
(see `_serve`). Outbound (`_api`, `_token`, `_media`, `_channel`): the API client and the
`WeChatChannel` that sends customer-service messages.

Tables: `_inbox_tables` (`wechat_inbound`: each message once; `wechat_held`: messages waiting
for the user's next message) and `_tables` (the access token, per-user window and quota).

The names below load on first use: the migrations import the tables modules, and must not
pay for wechatpy, httpx and the conversations' types to do so.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._inbound import CHANNEL, IGNORE, MENU_COMMANDS, UNSUPPORTED, MediaSource, WeChatPhoto
    from ._open import WeChat, open_wechat
    from ._render import TextRenderer
    from ._serve import WeChatInbox, Words

__all__ = [
    "CHANNEL",
    "IGNORE",
    "MENU_COMMANDS",
    "UNSUPPORTED",
    "MediaSource",
    "TextRenderer",
    "WeChat",
    "WeChatInbox",
    "WeChatPhoto",
    "Words",
    "open_wechat",
]

_WHERE = {"CHANNEL": "_inbound", "IGNORE": "_inbound", "MENU_COMMANDS": "_inbound",
          "UNSUPPORTED": "_inbound", "MediaSource": "_inbound", "WeChatPhoto": "_inbound",
          "TextRenderer": "_render", "WeChatInbox": "_serve", "Words": "_serve",
          "WeChat": "_open", "open_wechat": "_open"}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
