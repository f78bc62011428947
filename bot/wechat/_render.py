"""An `Outbound` as the text of a passive reply (WeChat shows no buttons and, passively, no
uploaded media).

Data buttons become a numbered menu, one `N. label` line each (the user answers with the
number); url buttons become `label: url` lines. A finished video or image becomes its caption
and a signed link to it in storage (valid `[storage] link_ttl_seconds`). The admin chart shows
its caption only.
"""

from __future__ import annotations

from handlers.menus import numbered
from handlers.types import Media, Outbound, Picture, Text
from storage import Storage

__all__ = ["TextRenderer"]


class TextRenderer:
    """`await renderer(message)` → the message as plain text."""

    def __init__(self, storage: Storage, *, link_ttl: int) -> None:
        self._storage, self._ttl = storage, link_ttl

    async def __call__(self, message: Outbound) -> str:
        if isinstance(message, Text):
            return self.text(message)
        if isinstance(message, Media):
            link = await self._storage.url(message.key, ttl=self._ttl)
            lines = [message.caption, message.link_text, link]
            return "\n".join(line for line in lines if line)
        if isinstance(message, Picture):
            return message.caption
        return message.title  # an Invoice: Stars are never offered on WeChat

    @staticmethod
    def text(message: Text) -> str:
        return numbered(message).text  # the one numbered-menu rendering (handlers.menus)
