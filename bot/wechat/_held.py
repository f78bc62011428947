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

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import read_tx, write_tx
from handlers.types import Button, Media, Outbound, Picture, Text

from ._dedup import WORKING
from ._inbox_tables import wechat_held, wechat_inbound

__all__ = ["REPLY_BYTES", "deliver_held", "dump", "hold", "load", "pending", "reply_with_held",
           "split_text"]

REPLY_BYTES = 2048  # WeChat shows a passive text reply of up to 2048 bytes whole
FOOTER_BYTES = 160  # room kept for the "N more waiting" line
_GAP = "\n\n"

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
    async with write_tx(engine) as conn:
        await conn.execute(insert(wechat_held), [
            {"openid": openid, "body": dump(m), "created_at": now} for m in messages])


async def pending(engine: AsyncEngine, openid: str) -> int:
    async with read_tx(engine) as conn:
        rows = (await conn.execute(select(wechat_held.c.id)
                                   .where(wechat_held.c.openid == openid))).all()
    return len(rows)


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
                          footer: Callable[[int], Awaitable[str]], notice: str = "",
                          now: datetime, limit: int = REPLY_BYTES) -> str:
    """The passive reply to the message `key` (see the module doc), settled with the dedup row
    in the same transaction. `notice` (the answer is still being made) ends the reply;
    `footer(n)` is the line saying `n` messages are left (at most `FOOTER_BYTES`)."""
    tail_room = len(_GAP.encode()) * 2 + FOOTER_BYTES + len(notice.encode())
    room = max(limit - tail_room, 200)
    async with write_tx(engine) as conn:
        rows = (await conn.execute(
            select(wechat_held.c.id, wechat_held.c.body).where(wechat_held.c.openid == openid)
            .order_by(wechat_held.c.id).with_for_update())).all()
        queue: list[tuple[int | None, list[str]]] = [
            (row.id, split_text(await render(load(row.body)), room)) for row in rows]
        queue += [(None, split_text(await render(m), room)) for m in fresh]
        parts: list[str] = []
        left = 0
        for row_id, pieces in queue:
            taken = 0
            while taken < len(pieces) and left == 0 and \
                    _size([*parts, pieces[taken]]) <= room:
                parts.append(pieces[taken])
                taken += 1
            rest = pieces[taken:]
            if rest:
                left += 1
            if row_id is not None and not rest:
                await conn.execute(delete(wechat_held).where(wechat_held.c.id == row_id))
            elif row_id is not None and taken:
                await conn.execute(update(wechat_held).where(wechat_held.c.id == row_id)
                                   .values(body=dump(Text(text="\n".join(rest)))))
            elif row_id is None and rest:
                await conn.execute(insert(wechat_held).values(
                    openid=openid, created_at=now, body=dump(Text(text="\n".join(rest)))))
        if left:
            parts.append(await footer(left))
        if notice:
            parts.append(notice)
        text = _GAP.join(p for p in parts if p)
        await conn.execute(update(wechat_inbound)
                           .where(wechat_inbound.c.key == key,
                                  wechat_inbound.c.status == WORKING)
                           .values(status=status, reply=text))
    return text


async def deliver_held(engine: AsyncEngine, openid: str,
                       send: Callable[[Outbound], Awaitable[object]]) -> int:
    """Sends the user's held messages oldest first, deleting each once sent; returns how
    many went out. A failure stops it (the message and those after it stay held) and raises."""
    sent = 0
    while True:
        async with read_tx(engine) as conn:
            row = (await conn.execute(
                select(wechat_held.c.id, wechat_held.c.body)
                .where(wechat_held.c.openid == openid)
                .order_by(wechat_held.c.id).limit(1))).first()
        if row is None:
            return sent
        await send(load(row.body))
        async with write_tx(engine) as conn:
            await conn.execute(delete(wechat_held).where(wechat_held.c.id == row.id))
        sent += 1
