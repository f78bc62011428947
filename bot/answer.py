"""The one answer path every channel adapter uses, and the one sending side it shares with the
outbox dispatcher.

    answers = Answerer(engine=app.engine, handlers=app.handlers, channel=channel,
                       default_language=config.app.default_language, turns=Turns(app.engine))
    await answers.answer(inbound)        # the adapter's whole job once it has an Inbound

`Answerer.answer(inbound)`:
1. takes the user's turn (`bot.ordering.Turns`: one user's messages one at a time, in order);
2. `handlers.handle(inbound)` (on a channel without buttons it turns a reply "2" into the choice
   the user was last shown under that number, read with the user: `handlers.menus.by_number`);
   an exception that escapes it becomes text through the one mapper
   (`handlers.errors.error_text`: the incident id in the text, the traceback in the log);
3. sends each answer in order through `Sender`; a `ChannelError` (blocked, 429, network) drops
   the rest of that reply with a log line: a reply is not in the outbox, the user can ask again.

`Sender.send(address, message)`, used by the answer path and the dispatcher alike:
- prepares the message for the channel's `Capabilities`: on a channel without buttons, a menu
  becomes numbered text (`handlers.menus.numbered`); a text over `max_text_bytes` is split at
  line ends (a line longer than that at character boundaries), in order;
- sends it (`Channel.send`), then remembers what must be: `Text.track_job` as that job's status
  message (where the channel declares `progress`), and on a channel without buttons the
  numbered choices as the chat's menu (or clears it for a `Text.free_text` question); not on
  a channel that keeps what is sent for the user's next reply (`Capabilities.deferred`: not on
  screen yet). The send and that write must happen in the user's turn, or the menu stored can
  be another than the one shown last: the answer path holds the turn for the whole answer; the
  dispatcher takes it for each message that `changes_menu`.

A caller that holds the user's turn itself and gives it back in a transaction of its own
(WeChat, `answer(inbound, held=…)`) asks for the menu to be kept (`Sender(keep_menus=True)`)
rather than written: the last change is then `Sender.menu`, and the caller writes it with
`handlers.menus.remember_in` in that transaction (one write a message fewer; the menu is still
stored before the turn is free for the user's next message).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from handlers import menus
from handlers.errors import error_text
from handlers.messages import language_of
from handlers.types import Capabilities, Inbound, Outbound, Text, capabilities_of

from .channel import Channel, ChannelError
from .ordering import Turns

__all__ = ["Answerer", "ChatHandlers", "Sender", "StatusKeeper", "capabilities", "split_text"]

log = logging.getLogger("bot.answer")


class StatusKeeper(Protocol):
    async def remember_status(self, job_id: int, *, channel: str, address: str,
                              message_id: str) -> None: ...


class ChatHandlers(StatusKeeper, Protocol):
    """What the answer path needs of `handlers.Handlers`."""

    async def handle(self, inbound: Inbound) -> list[Outbound]: ...


def capabilities(channel: Channel) -> Capabilities:
    """The channel's declaration: its own `capabilities`, else the registry's for its name."""
    declared = getattr(channel, "capabilities", None)
    return declared if isinstance(declared, Capabilities) else capabilities_of(channel.name)


def split_text(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` UTF-8 bytes, cut at line ends where it can."""
    pieces: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line.encode()) > limit:  # one line too long by itself: cut by characters
            head = _prefix(line, limit)
            if current:
                pieces.append(current)
                current = ""
            pieces.append(head)
            line = line[len(head):]
        if len((current + line).encode()) > limit:
            pieces.append(current)
            current = ""
        current += line
    if current or not pieces:
        pieces.append(current)
    return [p.rstrip("\n") or p for p in pieces]


def _prefix(line: str, limit: int) -> str:
    """The longest prefix of `line` within `limit` bytes (at least one character)."""
    cut = len(line.encode()[:limit].decode("utf-8", "ignore"))
    return line[:max(cut, 1)]


class Sender:
    """Sends through one channel as its capabilities allow, and records status and menus."""

    def __init__(self, *, engine: AsyncEngine | None, handlers: StatusKeeper,
                 channel: Channel, keep_menus: bool = False) -> None:
        self.engine, self.handlers, self.channel = engine, handlers, channel
        self.caps = capabilities(channel)
        self.keep_menus = keep_menus
        self.menu: list[str] | None = None  # with keep_menus: the last change, for the caller

    def prepare(self, message: Outbound) -> list[Outbound]:
        """What goes to the channel for `message`, in order."""
        if not isinstance(message, Text):
            return [message]
        if not self.caps.buttons:
            message = menus.numbered(message)
        limit = self.caps.max_text_bytes
        if limit is None or len(message.text.encode()) <= limit:
            return [message]
        pieces = split_text(message.text, limit)
        last = len(pieces) - 1
        return [replace(message, text=p) if i == last else Text(text=p)
                for i, p in enumerate(pieces)]

    def changes_menu(self, message: Outbound) -> bool:
        """Whether sending `message` writes the chat's menu: a channel without buttons, and a
        message with choices or a question for free text (the dispatcher sends those in the
        user's turn)."""
        return not self.caps.buttons and not self.caps.deferred \
            and menus.menu_change(message) is not None

    async def send(self, address: str, message: Outbound) -> str | None:
        """Sends one message (several pieces when it is long); returns the last piece's id.
        Raises the channel's errors (`bot.channel`)."""
        message_id: str | None = None
        for piece in self.prepare(message):
            message_id = await self.channel.send(address, piece)
        if isinstance(message, Text) and message.track_job is not None and message_id \
                and self.caps.progress:
            await self.handlers.remember_status(message.track_job, channel=self.channel.name,
                                                address=address, message_id=message_id)
        change = None if self.caps.buttons or self.caps.deferred \
            else menus.menu_change(message)
        if change is not None and self.keep_menus:
            self.menu = change
        elif change is not None and self.engine is not None:
            await menus.remember(self.engine, self.channel.name, address, change)
        return message_id


class Answerer:
    """Answers inbound updates of one channel (see the module docstring)."""

    def __init__(self, *, engine: AsyncEngine | None, handlers: ChatHandlers,
                 channel: Channel, default_language: str, turns: Turns | None = None,
                 keep_menus: bool = False) -> None:
        """`engine` may be None only for a channel with buttons (no menu state) and `turns`
        without the lease (in-process order only, the default). `keep_menus`: the caller
        holds the turn and writes the menu itself (`sender.menu`, see the module doc)."""
        self.engine, self.handlers, self.channel = engine, handlers, channel
        self.default_language = default_language
        self.turns = turns or Turns(None, lease=False)
        self.sender = Sender(engine=engine, handlers=handlers, channel=channel,
                             keep_menus=keep_menus)
        self.answered = 0  # inbound updates answered (replies sent or dropped)

    async def answer(self, inbound: Inbound, *, held: str | None = None) -> None:
        """Handles one update in the user's turn and sends the answers. `held`: the caller
        holds the turn's lease already (`Turns.hold`)."""
        if held is not None:  # the caller holds the turn (`Turns.hold(held=…)` yields at once)
            await self._counted(inbound)
            return
        async with self.turns.hold(inbound.channel, inbound.address):
            await self._counted(inbound)

    async def _counted(self, inbound: Inbound) -> None:
        try:
            await self._answer(inbound)
        finally:
            self.answered += 1

    async def _answer(self, inbound: Inbound) -> None:
        lang = language_of(inbound.language, self.default_language)
        try:
            answers = await self.handlers.handle(inbound)
        except Exception as exc:  # handle() maps its own errors; this is a bug: an incident
            answers = [Text(text=error_text(lang, exc))]
        for message in answers:
            try:
                await self.sender.send(inbound.address, message)
            except ChannelError as exc:
                log.warning("reply to a %s user dropped: %s", inbound.channel,
                            type(exc).__name__)
                return
            except Exception as exc:  # an adapter fault: the user hears of it, once
                log.warning("sending a %s reply failed", inbound.channel)
                await self._incident(inbound.address, lang, exc)
                return

    async def _incident(self, address: str, lang: str, exc: Exception) -> None:
        try:
            await self.channel.send(address, Text(text=error_text(lang, exc)))
        except Exception:
            log.warning("the incident text could not be sent either")
