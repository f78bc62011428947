"""Numbered menus for channels without buttons (WeChat, the console), kept in the database.

DESIGN.md, "Menus outside Telegram": a menu is one line per choice, `N. label`, and the user
answers with the number `N` (ASCII or full-width digits). Decisions:

- Rendering (`numbered`) is here, once, for every button-less channel; url buttons become
  `label: URL` lines (where the channel shows no links, the bare URL is still text to copy).
  The layout has no words of its own (the labels come from the catalogue), so it needs no
  language: the dispatcher renders a notification without knowing the user's.
- The data of the choices last shown, in order, is kept in `chats.menu` of the identity's user
  (`remember`), written by the shared sending path after a message with choices went out (the
  answer path and the outbox dispatcher alike), so any instance reads the reply: the
  conversations read it with the user (`handlers.service`) and turn a number into that choice
  (`by_number`).
  A caller that gives the user's turn back in a transaction of its own (WeChat) writes it
  there instead (`remember_in`): the menu is stored before the next message can be handled,
  with no transaction of its own.
- A message without choices leaves the menu as it was, unless it asks for free text
  (`Text.free_text`): then the menu is cleared and a "1" is text.
- A reply whose last menu is the one stored already (the main menu after most answers) writes
  nothing: the conversations mark its messages `Text.keep_menu` (`keep_stored`), and
  `menu_change` then says "no change". Only the reply's last menu matters, so the earlier ones
  in it need no write either. The stored menu was read in the user's turn, and everything that
  writes a menu (answers and the outbox dispatcher's notices) does so in the user's turn, so it
  is still the stored one when the reply goes out.
- A number outside the menu, or with no menu, stays text: the conversation decides.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection, bindparam, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import write
from core.prepared import Prepared
from wallet import queries

from .tables import chats
from .types import Inbound, Outbound, Text

__all__ = ["by_number", "choice_number", "keep_stored", "menu_change", "numbered", "remember",
           "remember_in", "shows_menu"]

_FULL_WIDTH = str.maketrans("０１２３４５６７８９", "0123456789")
_USER = queries.identity_user()
_WRITE = Prepared(update(chats).where(chats.c.user_id == _USER)
                  .values(menu=bindparam("menu", type_=chats.c.menu.type)))


def numbered(message: Text) -> Text:
    """The message as plain text: its lines, then `N. label` per choice and `label: URL` per
    link; no buttons left (the sender remembers the choices, `menu_change`)."""
    if not message.buttons:
        return message
    lines, choices = [message.text], []
    for row in message.buttons:
        for button in row:
            if button.url:
                lines.append(f"{button.label}: {button.url}")
            else:
                choices.append(button.data)
                lines.append(f"{len(choices)}. {button.label}")
    return replace(message, text="\n".join(lines), buttons=(), choices=tuple(choices))


def menu_change(message: Outbound) -> list[str] | None:
    """What sending `message` does to the menu: the new choices' data, [] to clear it (a
    question for free text), None to leave it as it was."""
    if not isinstance(message, Text) or message.keep_menu:
        return None
    return _shown(message)


def shows_menu(message: Outbound) -> bool:
    """Whether `message` shows a menu of its own (numbered choices or a question for free
    text), whether or not it changes the one stored (`Text.keep_menu`)."""
    return isinstance(message, Text) and _shown(message) is not None


def _shown(message: Text) -> list[str] | None:
    """The menu `message` shows: its choices' data (buttons, or `choices` once numbered), []
    for a question for free text, None for none."""
    data = [b.data for row in message.buttons for b in row if b.data] or list(message.choices)
    if data:
        return data
    return [] if message.free_text else None


def choice_number(text: str) -> int | None:
    """1 for "1" or "１" (surrounding spaces allowed); None when the text is not a number."""
    digits = text.strip().translate(_FULL_WIDTH)
    if not digits or len(digits) > 3 or not digits.isascii() or not digits.isdigit():
        return None
    return int(digits)


async def remember(engine: AsyncEngine, channel: str, address: str, choices: list[str]) -> None:
    """Stores `choices` ([] clears) as the menu of the identity's chat (no row: nothing)."""
    await write(engine, lambda conn: remember_in(conn, channel, address, choices))


def remember_in(conn: Connection, channel: str, address: str, choices: list[str]) -> None:
    """`remember` inside the caller's transaction."""
    _WRITE.run(conn, channel=channel, address=address, menu=choices or None)


def by_number(inbound: Inbound, menu: object) -> Inbound:
    """A reply "N" to the numbered `menu` (the `chats.menu` column as read) → that choice;
    anything else, a number outside the menu included, stays as it is (text)."""
    if inbound.choice is not None or inbound.photos or not isinstance(menu, list):
        return inbound
    number = choice_number(inbound.text)
    if number is None or not 1 <= number <= len(menu):
        return inbound
    found = menu[number - 1]
    return replace(inbound, text="", choice=found) if isinstance(found, str) and found \
        else inbound


def keep_stored(answers: list[Outbound], stored: object) -> list[Outbound]:
    """`answers` with their menu changes marked `keep_menu` when the last of them is the menu
    `stored` already (the `chats.menu` column as read in the user's turn): nothing to write."""
    changes = [(i, change) for i, m in enumerate(answers)
               if (change := menu_change(m)) is not None]
    if not changes or changes[-1][1] != (stored or []):
        return answers
    marked = list(answers)
    for i, _ in changes:
        message = marked[i]
        assert isinstance(message, Text)
        marked[i] = replace(message, keep_menu=True)
    return marked
