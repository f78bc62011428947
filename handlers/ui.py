"""Buttons and the short texts every flow shares: the main menu, a question with a Cancel row.

Button data go through the one codec, `handlers.choices` (readable names such as `balance`,
`kind:try-on`, `pay:pkg_small:stripe`, each under Telegram's 64 bytes).
"""

from __future__ import annotations

from .choices import Choice, encode
from .choices import fits as choice_fits
from .messages import t
from .types import Button, Text

__all__ = ["Rows", "button", "fits", "main_menu", "menu_text", "question"]

Rows = tuple[tuple[Button, ...], ...]


def fits(choice: Choice) -> bool:
    return choice_fits(choice)


def button(lang: str, key: str, choice: Choice, **params: object) -> Button:
    return Button(label=t(lang, key, **params), data=encode(choice))


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
