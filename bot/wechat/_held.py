"""Messages waiting until the user next writes (`wechat_held`), and the passive reply that
carries them.

Passive mode (an unverified account: no customer-service messages) holds every message that
misses the reply window, and every outbox message; active mode holds what WeChat refused for
the 48-hour window (45015). A held message is a serialised `Outbound` (`dump`/`load`).

`reply_with_held` builds the passive reply to a user's message in ONE transaction with the
dedup row: the held messages, oldest first, then this message's own answers, as many as one
reply holds (`REPLY_BYTES`), and a last line saying how many are left. What went into the reply
is deleted, a message only partly sent keeps its rest, and answers that did not fit are held;
the reply is stored with the dedup row, so WeChat's retry of a reply lost on the way gets the
same text and nothing is delivered twice or lost. Rows are locked (`FOR UPDATE`, nothing on
SQLite, where the write lock serialises) so two replicas cannot send the same held message.
Most messages find nothing held: the transaction looks, and only when it finds held messages
it has not rendered yet (rendering is async: a media link) does it end without a change, and
a second one, after rendering them, builds the reply.

`deliver_held` (active mode) sends held messages through the channel, oldest first, deleting
each once sent; it stops at the first failure and keeps the rest.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import read, write
from core.prepared import Prepared
from handlers.menus import menu_change, remember_in, shows_menu
from handlers.types import Button, Media, Outbound, Picture, Text

from ._dedup import SETTLE
from ._inbound import CHANNEL
from ._inbox_tables import wechat_held

__all__ = ["REPLY_BYTES", "any_held", "deliver_held", "dump", "hold", "load", "pending",
           "reply_with_held", "split_text"]

REPLY_BYTES = 2048  # WeChat shows a passive text reply of up to 2048 bytes whole
FOOTER_BYTES = 160  # room kept for the "N more waiting" line
_GAP = "\n\n"
_HELD = (select(wechat_held.c.id, wechat_held.c.body)
         .where(wechat_held.c.openid == bindparam("o")).order_by(wechat_held.c.id))
_HELD_LOCKED = Prepared(_HELD.with_for_update())  # Prepared: in every message's settle
_ANY_HELD = Prepared(select(wechat_held.c.id).where(wechat_held.c.openid == bindparam("o"))
                     .limit(1))
_TAKE = Prepared(delete(wechat_held).where(wechat_held.c.id == bindparam("i")))

Render = Callable[[Outbound], Awaitable[str]]


def dump(message: Outbound) -> dict[str, Any]:
    """A JSON-able form of `message` (`track_job` is dropped: WeChat cannot edit)."""
    if isinstance(message, Text):
        rows = [[{"label": b.label, "data": b.data, "url": b.url} for b in row]
                for row in message.buttons]
        body: dict[str, Any] = {"type": "text", "text": message.text, "buttons": rows}
        if message.free_text:  # a question answered by typing: it clears the numbered menu
            body["free_text"] = True
        if message.choices:  # numbered already (`handlers.menus.numbered`): its menu
            body["choices"] = list(message.choices)
        return body
    if isinstance(message, Media):
        return {"type": "media", "kind": message.kind, "key": message.key,
                "caption": message.caption, "thumbnail_key": message.thumbnail_key,
                "link_text": message.link_text}
    if isinstance(message, Picture):
        return {"type": "picture", "caption": message.caption, "filename": message.filename,
                "data": base64.b64encode(message.data).decode()}
    return {"type": "text", "text": message.title, "buttons": []}  # an Invoice: not on WeChat


def load(body: dict[str, Any]) -> Outbound:
    kind = body.get("type")
    if kind == "media":
        return Media(kind=body["kind"], key=body["key"], caption=body.get("caption", ""),
                     thumbnail_key=body.get("thumbnail_key"),
                     link_text=body.get("link_text", ""))
    if kind == "picture":
        return Picture(data=base64.b64decode(body.get("data", "")),
                       caption=body.get("caption", ""),
                       filename=body.get("filename", "chart.png"))
    rows = tuple(tuple(Button(label=b["label"], data=b.get("data", ""), url=b.get("url", ""))
                       for b in row) for row in body.get("buttons", []))
    return Text(text=str(body.get("text", "")), buttons=rows,
                free_text=bool(body.get("free_text", False)),
                choices=tuple(str(c) for c in body.get("choices", ())))


async def hold(engine: AsyncEngine, openid: str, messages: Sequence[Outbound],
               now: datetime, *, also: Callable[[Connection], object] | None = None) -> None:
    """Keeps `messages` (in order) until the user next writes; `also` runs in the same
    transaction (the user's turn given back once they are kept)."""
    rows = [{"openid": openid, "body": dump(m), "created_at": now} for m in messages]
    if not rows and also is None:
        return

    def op(conn: Connection) -> None:
        if rows:
            conn.execute(insert(wechat_held), rows)
        if also is not None:
            also(conn)

    await write(engine, op)


async def pending(engine: AsyncEngine, openid: str) -> int:
    return len(await _held(engine, openid))


async def _held(engine: AsyncEngine, openid: str) -> list[Any]:
    return await read(engine, lambda conn: list(conn.execute(_HELD, {"o": openid})))


def split_text(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` UTF-8 bytes, cut at line ends where possible."""
    pieces: list[str] = []
    rest = text
    while len(rest.encode()) > limit:
        cut = len(rest.encode()[:limit].decode("utf-8", "ignore"))
        line_end = rest.rfind("\n", 0, cut)
        if line_end > cut // 2:
            cut = line_end
        pieces.append(rest[:cut].rstrip("\n"))
        rest = rest[cut:].lstrip("\n")
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def _size(parts: list[str]) -> int:
    return len(_GAP.join(parts).encode())


@dataclass(frozen=True, slots=True)
class _Unrendered:
    """The settling transaction found held messages it had no text for: nothing changed."""

    rows: list[Any]


async def reply_with_held(engine: AsyncEngine, *, key: str, openid: str,
                          fresh: Sequence[Outbound], status: str, render: Render,
                          footer: Callable[[], Awaitable[Callable[[int], str]]],
                          notice: str = "", now: datetime, limit: int = REPLY_BYTES,
                          also: Callable[[Connection], object] | None = None) -> str:
    """The passive reply to the message `key` (see the module doc), settled with the dedup row
    in the same transaction. `notice` (the answer is still being made) ends the reply;
    `await footer()` gives the line saying `n` messages are left (at most `FOOTER_BYTES`),
    asked for only when not everything fits (it reads the user's language). `also` runs in
    the same transaction.

    The numbered menu stored is the one on screen after the reply: a held message's, when it
    went into the reply whole and no fresh answer shows a menu of its own (one that does is
    written by `also`, or is the one stored already: `Text.keep_menu`). A held message is not
    on screen until a reply carries it: a number typed meanwhile answers the menu the user
    sees (`bot.answer.Sender`, `Capabilities.deferred`).

    The transaction locks the user's held messages; those it has text for go in. The first
    one that finds some it has no text for changes nothing and returns them; they are rendered
    (a media link is made then) and a second transaction takes those still there: one taken
    meanwhile by a reply on another replica is not sent twice, and one held meanwhile waits
    for the next reply."""
    tail_room = len(_GAP.encode()) * 2 + FOOTER_BYTES + len(notice.encode())
    room = max(limit - tail_room, 200)
    new = [split_text(await render(m), room) for m in fresh]
    rendered: dict[int, list[str]] = {}

    async def tail() -> Callable[[int], str] | None:
        everything = [p for pieces in [*rendered.values(), *new] for p in pieces]
        return await footer() if _size(everything) > room else None

    more = await tail() if new else None
    for last in (False, True):
        outcome = await write(engine, partial(
            _settle_with_held, key=key, openid=openid, status=status, rendered=rendered,
            new=new, room=room, more=more, notice=notice, now=now, also=also, last=last,
            fresh_menu=any(shows_menu(m) for m in fresh)), batch=True)
        if not isinstance(outcome, _Unrendered):
            return outcome
        for row in outcome.rows:
            rendered[row.id] = split_text(await render(load(row.body)), room)
        more = more or await tail()
    raise AssertionError("the last try settles")


def _settle_with_held(conn: Connection, *, key: str, openid: str, status: str,
                      rendered: dict[int, list[str]], new: list[list[str]], room: int,
                      more: Callable[[int], str] | None, notice: str, now: datetime,
                      also: Callable[[Connection], object] | None, last: bool,
                      fresh_menu: bool = False) -> str | _Unrendered:
    """`reply_with_held`'s transaction: the reply, or (unless `last`) the held rows it has no
    text for, changing nothing."""
    rows = _HELD_LOCKED.all(conn, o=openid)
    unrendered = [row for row in rows if row.id not in rendered]
    if unrendered and not last:
        return _Unrendered(unrendered)
    queue: list[tuple[int | None, list[str]]] = [
        (row.id, rendered[row.id]) for row in rows if row.id in rendered]
    queue += [(None, pieces) for pieces in new]
    bodies = {row.id: row.body for row in rows}
    parts: list[str] = []
    left = 0
    shown: list[str] | None = None  # the last menu change of a held message shown whole
    for row_id, pieces in queue:
        taken = 0
        while taken < len(pieces) and left == 0 and _size([*parts, pieces[taken]]) <= room:
            parts.append(pieces[taken])
            taken += 1
        rest = pieces[taken:]
        left += 1 if rest else 0
        if row_id is not None and not rest:
            _TAKE.run(conn, i=row_id)
            change = menu_change(load(bodies[row_id]))
            shown = change if change is not None else shown
        elif row_id is not None and taken:
            conn.execute(update(wechat_held).where(wechat_held.c.id == row_id)
                         .values(body=dump(Text(text="\n".join(rest)))))
        elif row_id is None and rest:
            conn.execute(insert(wechat_held).values(
                openid=openid, created_at=now, body=dump(Text(text="\n".join(rest)))))
    # Rows held since the rendering wait for the next reply, and only the rows rendered
    # count as left: the footer was decided before.
    tail = more(left) if left and more is not None else ""
    text = _GAP.join(p for p in [*parts, tail, notice] if p)
    SETTLE.run(conn, k=key, new_status=status, new_reply=text)
    if shown is not None and not fresh_menu:  # a held message's menu is the one on screen
        remember_in(conn, CHANNEL, openid, shown)
    if also is not None:  # the user's turn given back with it (and the menu kept)
        also(conn)
    return text


def any_held(conn: Connection, openid: str) -> bool:
    """Whether the user has a held message (inside the caller's transaction)."""
    return _ANY_HELD.first(conn, o=openid) is not None


async def deliver_held(engine: AsyncEngine, openid: str,
                       send: Callable[[Outbound], Awaitable[object]]) -> int:
    """Sends the user's held messages oldest first, deleting each once sent; returns how
    many went out. A failure stops it (the message and those after it stay held) and raises."""
    sent = 0
    for row in await _held(engine, openid):
        await send(load(row.body))
        query = delete(wechat_held).where(wechat_held.c.id == row.id)
        await write(engine, lambda conn, q=query: conn.execute(q))  # type: ignore[misc]
        sent += 1
    return sent
