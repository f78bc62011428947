"""Buttons and the short texts every flow shares: the main menu, a question with a Cancel row.

Button data is short and self-describing, because WeChat and the console send it back as
`Inbound.choice` from a numbered menu and Telegram limits it to 64 bytes:

    c:<command>   a command from a menu button (c:balance, c:checkin, …)
    g             start making something          x      cancel
    k:<kind>      kind                            m:<id>  model
    d:<seconds>   duration                        a:<w:h> aspect ratio
    done          no more clothing photos         go     confirm
    h:<id>        history page before ledger id <id> ("h:" the newest)
    vs:/vr:/va:<job id>   re-send, retry storing, make again
    l:<lang>      language                        p:<package>, $:<package>:<method>  top-up
"""

from __future__ import annotations

from .messages import t
from .types import MAX_CHOICE_BYTES, Button, Text

__all__ = ["Rows", "button", "fits", "main_menu", "menu_text", "question"]

Rows = tuple[tuple[Button, ...], ...]


def fits(data: str) -> bool:
    return 0 < len(data.encode()) <= MAX_CHOICE_BYTES


def button(lang: str, key: str, data: str, **params: object) -> Button:
    return Button(label=t(lang, key, **params), data=data)


def main_menu(lang: str) -> Rows:
    return (
        (button(lang, "btn.generate", "g"),),
        (button(lang, "btn.balance", "c:balance"), button(lang, "btn.checkin", "c:checkin")),
        (button(lang, "btn.videos", "c:videos"), button(lang, "btn.topup", "c:topup")),
        (button(lang, "btn.help", "c:help"),),
    )


def menu_text(lang: str, key: str = "menu.prompt") -> Text:
    return Text(text=t(lang, key), buttons=main_menu(lang))


def question(lang: str, text: str, rows: Rows = ()) -> Text:
    """A question inside a flow: its choices, then a Cancel row."""
    return Text(text=text, buttons=(*rows, (button(lang, "btn.cancel", "x"),)))
