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

`deliver_held` (active mode) sends held messages through the channel, oldest first, deleting
each once sent; it stops at the first failure and keeps the rest.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import read, write
from handlers.types import Button, Media, Outbound, Picture, Text

from ._dedup import SETTLE
from ._inbox_tables import wechat_held

__all__ = ["REPLY_BYTES", "deliver_held", "dump", "hold", "load", "pending", "reply_with_held",
           "split_text"]

REPLY_BYTES = 2048  # WeChat shows a passive text reply of up to 2048 bytes whole
FOOTER_BYTES = 160  # room kept for the "N more waiting" line
_GAP = "\n\n"
_HELD = (select(wechat_held.c.id, wechat_held.c.body)
         .where(wechat_held.c.openid == bindparam("o")).order_by(wechat_held.c.id))
_HELD_LOCKED = (select(wechat_held.c.id).where(wechat_held.c.openid == bindparam("o"))
                .order_by(wechat_held.c.id).with_for_update())

Render = Callable[[Outbound], Awaitable[str]]


def dump(message: Outbound) -> dict[str, Any]:
    """A JSON-able form of `message` (`track_job` is dropped: WeChat cannot edit)."""
    if isinstance(message, Text):
        rows = [[{"label": b.label, "data": b.data, "url": b.url} for b in row]
                for row in message.buttons]
        return {"type": "text", "text": message.text, "buttons": rows}
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
    return Text(text=str(body.get("text", "")), buttons=rows)


async def hold(engine: AsyncEngine, openid: str, messages: Sequence[Outbound],
               now: datetime) -> None:
    """Keeps `messages` (in order) until the user next writes."""
    if not messages:
        return
    rows = [{"openid": openid, "body": dump(m), "created_at": now} for m in messages]
    await write(engine, lambda conn: conn.execute(insert(wechat_held), rows))


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

    The held messages are read and rendered first (a media link is made then), and the
    transaction locks them again and takes only those still there: one taken meanwhile by a
    reply on another replica is not sent twice, and one held meanwhile waits for the next."""
    tail_room = len(_GAP.encode()) * 2 + FOOTER_BYTES + len(notice.encode())
    room = max(limit - tail_room, 200)
    rendered = {row.id: split_text(await render(load(row.body)), room)
                for row in await _held(engine, openid)}
    new = [split_text(await render(m), room) for m in fresh]
    everything = [p for pieces in [*rendered.values(), *new] for p in pieces]
    more = await footer() if _size(everything) > room else None

    def op(conn: Connection) -> str:
        ids = [row.id for row in conn.execute(_HELD_LOCKED, {"o": openid})]
        queue = [(i, rendered[i]) for i in ids if i in rendered]
        queue += [(None, pieces) for pieces in new]
        parts: list[str] = []
        left = 0
        for row_id, pieces in queue:
            taken = 0
            while taken < len(pieces) and left == 0 and _size([*parts, pieces[taken]]) <= room:
                parts.append(pieces[taken])
                taken += 1
            rest = pieces[taken:]
            left += 1 if rest else 0
            if row_id is not None and not rest:
                conn.execute(delete(wechat_held).where(wechat_held.c.id == row_id))
            elif row_id is not None and taken:
                conn.execute(update(wechat_held).where(wechat_held.c.id == row_id)
                             .values(body=dump(Text(text="\n".join(rest)))))
            elif row_id is None and rest:
                conn.execute(insert(wechat_held).values(
                    openid=openid, created_at=now, body=dump(Text(text="\n".join(rest)))))
        # Rows held since the read above wait for the next reply, and only the rows read
        # count as left: the footer was decided before.
        tail = more(left) if left and more is not None else ""
        text = _GAP.join(p for p in [*parts, tail, notice] if p)
        conn.execute(SETTLE, {"k": key, "new_status": status, "new_reply": text})
        if also is not None:  # the user's turn given back with it
            also(conn)
        return text

    return await write(engine, op)


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
