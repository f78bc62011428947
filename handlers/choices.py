"""Button data: one typed codec with readable names, and the old one-letter forms still in chats.

A choice is a name and its arguments, written `name[:arg[:arg]]`, at most 64 bytes (Telegram's
limit for callback data; WeChat and the console send it back from a numbered menu):

    menu   generate   cancel   done   confirm        the main menu, start, cancel, flow steps
    balance  checkin  videos  help  history  language  topup   a command from a menu button
    history:<ledger id>          a history page before that ledger entry
    kind:<kind>  model:<id>  duration:<seconds>  aspect:<w:h>    the generate flow
    lang:<code>                  set the language
    topup:<package>  pay:<package>:<method>       top-up: a package, then a way to pay
    video:<resend|retry|again>:<job id>           /videos actions

The last argument takes the rest of the data (an aspect ratio holds a colon). `decode` also
reads the forms buttons carried before (`g`, `x`, `go`, `c:balance`, `k:…`, `h:…`, `l:…`,
`p:…`, `$:…:…`, `vs:/vr:/va:…`): a message still in a chat keeps working, and means the same.
Data that is neither decodes to None, and the conversation answers "that menu has expired"
with the current question.
"""

from __future__ import annotations

from dataclasses import dataclass

from .types import MAX_CHOICE_BYTES

__all__ = ["COMMANDS", "VIDEO_ACTIONS", "Choice", "decode", "encode", "fits"]

# Commands a menu button may carry by name alone (the main menu's, /topup's "back", …).
COMMANDS = ("balance", "checkin", "videos", "help", "history", "language", "topup", "redeem")
VIDEO_ACTIONS = ("resend", "retry", "again")

# name → the numbers of arguments it takes
_ARITY: dict[str, tuple[int, ...]] = {
    "menu": (0,), "generate": (0,), "cancel": (0,), "done": (0,), "confirm": (0,),
    **{c: (0,) for c in COMMANDS},
    "history": (0, 1), "topup": (0, 1),
    "kind": (1,), "model": (1,), "duration": (1,), "aspect": (1,), "lang": (1,),
    "pay": (2,), "video": (2,),
}
_OLD_PLAIN = {"g": "generate", "x": "cancel", "go": "confirm", "done": "done"}
_OLD_HEAD = {"k": "kind", "m": "model", "d": "duration", "a": "aspect", "l": "lang",
             "p": "topup", "$": "pay", "h": "history"}
_OLD_VIDEO = {"vs": "resend", "vr": "retry", "va": "again"}


@dataclass(frozen=True, slots=True)
class Choice:
    name: str
    args: tuple[str, ...] = ()

    @property
    def arg(self) -> str:
        """The first argument ("" when there is none)."""
        return self.args[0] if self.args else ""

    def data(self) -> str:
        return encode(self)


def encode(choice: Choice) -> str:
    """The button data for `choice`; ValueError when it cannot be one (unknown name, wrong
    number of arguments, over 64 bytes)."""
    if len(choice.args) not in _ARITY.get(choice.name, ()):
        raise ValueError(f"not a choice: {choice!r}")
    if any(not a for a in choice.args) or any(":" in a for a in choice.args[:-1]):
        raise ValueError(f"bad choice argument: {choice!r}")
    data = ":".join((choice.name, *choice.args))
    if len(data.encode()) > MAX_CHOICE_BYTES:
        raise ValueError(f"choice over {MAX_CHOICE_BYTES} bytes: {data!r}")
    return data


def fits(choice: Choice) -> bool:
    """Whether `choice` can be button data."""
    try:
        encode(choice)
    except ValueError:
        return False
    return True


def decode(data: str | None) -> Choice | None:
    """The choice `data` stands for (new or old form); None when it is none of them."""
    if not data or len(data.encode()) > MAX_CHOICE_BYTES:
        return None
    head, sep, rest = data.partition(":")
    arity = _ARITY.get(head)
    if arity is not None:
        most = max(arity)
        args = tuple(rest.split(":", most - 1)) if sep and most else ()
        if sep and not most:
            return None
        return Choice(head, args) if len(args) in arity and all(args) else None
    return _old(data)


def _old(data: str) -> Choice | None:
    if data in _OLD_PLAIN:
        return Choice(_OLD_PLAIN[data])
    head, sep, value = data.partition(":")
    if not sep:
        return None
    if head == "c":  # a command button: c:balance, c:start, …
        if value == "start":
            return Choice("menu")
        if value in ("generate", "cancel"):
            return Choice(value)
        return Choice(value) if value in COMMANDS else None
    if head == "h":
        return Choice("history", (value,) if value else ())
    if head in _OLD_VIDEO:
        return Choice("video", (_OLD_VIDEO[head], value)) if value else None
    if head == "$":
        package, _, method = value.partition(":")
        return Choice("pay", (package, method)) if package and method else None
    name = _OLD_HEAD.get(head)
    return Choice(name, (value,)) if name is not None and value else None
