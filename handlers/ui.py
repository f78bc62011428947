"""Buttons and the short texts every flow shares: the main menu, a question with a Cancel row.

Button data go through the one codec, `handlers.choices` (readable names such as `balance`,
`kind:try-on`, `pay:pkg_small:stripe`, each under Telegram's 64 bytes).
"""

from __future__ import annotations

import functools

from .choices import Choice, encode
from .choices import fits as choice_fits
from .messages import t
from .types import Button, Capabilities, Text

__all__ = ["Rows", "ask_text", "button", "fits", "main_menu", "menu_text", "question"]

Rows = tuple[tuple[Button, ...], ...]


def fits(choice: Choice) -> bool:
    return choice_fits(choice)


def button(lang: str, key: str, choice: Choice, **params: object) -> Button:
    return Button(label=t(lang, key, **params), data=encode(choice))


@functools.cache  # immutable, and on every answer that ends a flow (/balance included)
def main_menu(lang: str) -> Rows:
    return (
        (button(lang, "btn.generate", Choice("generate")),),
        (button(lang, "btn.balance", Choice("balance")),
         button(lang, "btn.checkin", Choice("checkin"))),
        (button(lang, "btn.videos", Choice("videos")), button(lang, "btn.topup", Choice("topup"))),
        (button(lang, "btn.help", Choice("help")),),
    )


def menu_text(lang: str, key: str = "menu.prompt") -> Text:
    return Text(text=t(lang, key), buttons=main_menu(lang))


def question(lang: str, text: str, rows: Rows = (), *, free_text: bool = False) -> Text:
    """A question inside a flow: its choices, then a Cancel row."""
    return Text(text=text, buttons=(*rows, (button(lang, "btn.cancel", Choice("cancel")),)),
                free_text=free_text)


def ask_text(lang: str, text: str, caps: Capabilities) -> Text:
    """A question answered by typing. With buttons it keeps its Cancel button (a press cannot
    be mistaken for text); without, it shows no numbered choice at all, so a typed "1" is the
    answer, and says that /cancel stops."""
    if caps.buttons:
        return question(lang, text, free_text=True)
    return Text(text=f"{text}\n{t(lang, 'free.cancel_hint')}", free_text=True)
