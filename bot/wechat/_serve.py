"""The inbound side of WeChat: each message answered once, within WeChat's 5 seconds.

    inbox = WeChatInbox(engine=..., answer=..., send=..., render=..., words=..., photo=...,
                        mode="active", window=4.0)
    hook.attach(inbox)          # webhooks.wechat hands it every verified, parsed message

For a message (`on_message`):
1. `to_inbound`; what needs no answer (unsubscribe, VIEW) is answered `success` at once.
2. The first try claims the message's key (`_dedup.claim`), and in the same transaction
   takes the user's turn (`bot.ordering.Turns`: one user's messages one at a time, across
   replicas), which it gives back in the transaction that settles the answer: two writes a
   message instead of four. A retry, here or on another replica, waits for the first try's
   answer and gives the same one (`wait_settled`). When the turn is taken elsewhere, the
   answer path waits for it as usual. A retry that finds the message still `working` well
   past any live try's window (`STALE_MARGIN` past it) takes it over from the dead instance
   (`_dedup.take_over`) and handles it; the turn's holder id is the message's own
   (`_holder`), so the dead try's turn is taken over with it.
3. The first try runs `answer(inbound)` in a task of its own (it survives WeChat hanging up)
   and waits up to `window` seconds (4 in production; WeChat gives up at 5) from arrival:
   - `active` (a verified account; customer-service messages allowed):
     ready and all plain text that fits one reply → that text is the HTTP reply;
     otherwise → `success`, and the answers go out through `send` (customer-service messages)
     when ready; only then is their menu written and the user's turn given back (a third
     write), so the user's next message is answered after them and a notice cannot come
     between them and their menu. Messages held for the 48-hour window go out after this
     message's reply.
   - `passive` (an unverified account: replies only): ready → the reply carries the held
     messages oldest first, then the answers, as much as fits, and says how many are left;
     late → the reply carries what is held and says "send any message to get your result";
     the answers are held when ready (`_held`).
First tries are admitted a few at a time (`admit`, 8), in arrival order (`_admit`): under
load each message then waits once, in order, instead of at each of its steps, and a slow answer
gives its place up after `FAST_SECONDS`.
The reply is stored with the message's key in the same transaction that settles it, so a
retry of a reply lost on the way gets the same text (`_held.reply_with_held`). When the claim
took the user's turn, the answer path keeps the numbered menu it showed for that transaction
too (`Answered.finish`), which also gives the turn back: a message is two writes, the claim
and the settle. Both are batched (`core.db.write(…, batch=True)`): on SQLite the claims and
settles of the messages being handled at one moment commit in one transaction (group commit).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from wechatpy.messages import BaseMessage

from bot.ordering import Turns
from core.db import write
from handlers.types import Inbound, Outbound, Text

from . import _dedup, _held
from ._admit import ADMIT, FAST_SECONDS, Admission, Slot
from ._inbound import CHANNEL, IGNORE, UNSUPPORTED, WeChatPhoto, dedup_key, to_inbound

__all__ = ["GRACE_SECONDS", "Answered", "WeChatInbox", "Words"]

log = logging.getLogger("bot.wechat")

GRACE_SECONDS = 0.5  # a retry waits this much past its window for the first try's answer
STALE_MARGIN = 2.0  # a try `working` past its window and grace by this much has died
Finish = Callable[[Connection], object]


@dataclass(frozen=True, slots=True)
class Answered:
    """What the answer path made: the messages, and `finish`, what it left to write in the
    transaction that gives the user's turn back (the numbered menu it showed)."""

    messages: list[Outbound]
    finish: Finish | None = None


# answer(inbound, held): the answers; `held` is the lease id of the user's turn when the
# inbox took it with the message's claim (`bot.ordering.Turns.hold(held=…)`), else None.
Answer = Callable[[Inbound, str | None], Awaitable[Answered]]
Send = Callable[[str, Outbound], Awaitable[object]]
Say = Callable[..., str]  # say(key, **params): a catalogue text in the user's language


class Words(Protocol):
    """The catalogue in a user's language: `say = await words(openid)`; `say(key, **params)`."""

    async def __call__(self, openid: str) -> Say: ...


def _holder(key: str) -> str:
    """The turn's holder id for the message `key`: the same for every try of it."""
    return hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:16]


class WeChatInbox:
    """`on_message` for the `/wechat` route (see the module doc)."""

    def __init__(self, *, engine: AsyncEngine, answer: Answer, send: Send,
                 render: _held.Render, words: Words,
                 photo: Callable[[str, str], WeChatPhoto],
                 clock: Callable[[], datetime], mode: Literal["active", "passive"] = "active",
                 window: float = 4.0, language: str | None = "zh",
                 reply_bytes: int = _held.REPLY_BYTES,
                 on_inbound: Callable[[str], Awaitable[object]] | None = None,
                 turns: Turns | None = None, admit: int = ADMIT) -> None:
        self._engine, self._answer, self._send = engine, answer, send
        self._admission = Admission(admit)
        self._on_inbound, self._turns = on_inbound, turns
        self._render, self._words, self._photo = render, words, photo
        self._clock, self.mode, self.window = clock, mode, window
        self._language, self._reply_bytes = language, reply_bytes
        self._tasks: set[asyncio.Task[Any]] = set()
        self._settled: dict[str, asyncio.Event] = {}  # keys this instance is working on

    async def on_message(self, message: BaseMessage) -> str | None:
        """The passive reply's text, or None for `success`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.window
        inbound = to_inbound(message, photo=self._photo, language=self._language)
        if inbound is IGNORE:
            return None
        openid = str(message.source)
        key = dedup_key(message)
        holder = _holder(key)
        async with self._admission.slot() as slot:  # a few at a time, in arrival order
            seen, took = await _dedup.claim(self._engine, key, openid, now=self._clock(),
                                            also=self._take(openid, holder))
            if seen is None:
                return await self._first_try(key, openid, inbound, deadline,
                                             holder if took else None, slot)
        taken, seen, took = await self._retry_wait(openid, key, holder, seen,
                                                   deadline + GRACE_SECONDS)
        if taken:  # the first try's instance died: this try handles the message
            log.warning("wechat: a message left by a dead instance is handled again")
            return await self._first_try(key, openid, inbound, deadline,
                                         holder if took else None, None)
        return await self._retry_answer(openid, seen)

    def _take(self, openid: str, holder: str) -> Callable[[Connection], bool] | None:
        """Takes the user's turn inside the claim's transaction, under the message's own
        holder id (`_holder`): a try that takes the message over takes the dead try's turn
        too."""
        turns = self._turns if self._turns is not None and self._turns.lease else None
        if turns is None:
            return None
        return lambda conn: turns.take(conn, CHANNEL, openid, holder)

    async def _first_try(self, key: str, openid: str, inbound: Inbound | object,
                         deadline: float, holder: str | None, slot: Slot | None,
                         ) -> str | None:
        """`holder`: the turn's holder id when the claim took the user's turn."""
        if self._on_inbound is not None:  # the channel's 48-hour window and quota reopen
            await self._on_inbound(openid)
        event = self._settled[key] = asyncio.Event()
        try:
            return await self._first(key, openid, inbound, deadline, holder, slot)
        finally:
            event.set()
            del self._settled[key]

    def _give(self, openid: str, holder: str | None,
              finish: Finish | None = None) -> Finish | None:
        """Inside a transaction: what the answer left to write (`finish`), then the user's
        turn given back, when the claim took it."""
        turns = self._turns
        if turns is None or holder is None:
            return finish

        def give(conn: Connection) -> None:
            if finish is not None:
                finish(conn)
            turns.give(conn, CHANNEL, openid, holder)

        return give

    def _stale(self, seen: _dedup.Seen) -> bool:
        """Whether a `working` row was left by a try whose instance died: claimed longer ago
        than any live try stays `working` (its window and the retry's grace), with room for
        replicas' clocks to differ."""
        return seen.claimed_at is not None and seen.claimed_at < self._stale_before()

    def _stale_before(self) -> datetime:
        return self._clock() - timedelta(seconds=self.window + GRACE_SECONDS + STALE_MARGIN)

    async def _retry_wait(self, openid: str, key: str, holder: str, seen: _dedup.Seen,
                          deadline: float) -> tuple[bool, _dedup.Seen, bool]:
        """A retry waits for the first try's answer: (False, the row settled or as it is at
        `deadline`, False), or (True, …, whether the turn was taken) when it took the message
        over from a try whose instance died."""
        for _ in range(3):  # a take-over lost to another replica: look again, a bounded time
            if seen.status == _dedup.WORKING and not self._stale(seen):
                seen = await _dedup.wait_settled(self._engine, key, deadline,
                                                 self._settled.get(key), stale=self._stale)
            if seen.status != _dedup.WORKING or not self._stale(seen) \
                    or key in self._settled:  # settled, its deadline came, or ours
                return False, seen, False
            taken, took = await _dedup.take_over(
                self._engine, key, now=self._clock(), stale_before=self._stale_before(),
                also=self._take(openid, holder))
            if taken:
                return True, seen, took
            seen = await _dedup.peek(self._engine, key) or _dedup.Seen(_dedup.WORKING, None)
        return False, seen, False

    async def _retry_answer(self, openid: str, seen: _dedup.Seen) -> str | None:
        if seen.status != _dedup.WORKING:
            return seen.reply
        log.info("wechat: a retry found its message still being handled")
        if self.mode == "active":
            return None
        return (await self._words(openid))("wx.pending")

    async def _first(self, key: str, openid: str, inbound: Inbound | object,
                     deadline: float, holder: str | None, slot: Slot | None) -> str | None:
        work = self.spawn(self._handle(openid, inbound, holder))
        loop = asyncio.get_running_loop()
        fast = min(deadline, loop.time() + FAST_SECONDS)
        done, _ = await asyncio.wait({work}, timeout=max(fast - loop.time(), 0.0))
        if not done:  # a slow answer waits for the rest of its window without a slot
            if slot is not None:
                slot.release()
            done, _ = await asyncio.wait({work}, timeout=max(deadline - loop.time(), 0.0))
        # From here until add_done_callback, no await: the task cannot finish unnoticed.
        if work in done:
            answered: Answered = work.result()
            answers, give = answered.messages, self._give(openid, holder, answered.finish)
            if self.mode == "passive":
                return await self._passive(key, openid, answers, _dedup.REPLIED, give)
            return await self._active(key, openid, answers, give)
        work.add_done_callback(lambda t: self._late(openid, t, holder))
        if self.mode == "passive":
            return await self._passive(key, openid, [], _dedup.DEFERRED)
        await _dedup.settle(self._engine, key, _dedup.DEFERRED, None)
        return None

    async def _handle(self, openid: str, inbound: Inbound | object,
                      holder: str | None) -> Answered:
        if not isinstance(inbound, Inbound):  # UNSUPPORTED
            assert inbound is UNSUPPORTED
            return Answered([Text(text=(await self._words(openid))("wx.unsupported"))])
        try:
            return await self._answer(inbound, holder)
        except Exception:  # the answer path maps errors itself; this is a bug's last stop
            log.exception("wechat: answering %s failed", openid)
            return Answered([Text(text=(await self._words(openid))("wx.failed"))])

    async def _active(self, key: str, openid: str, answers: list[Outbound],
                      give: Finish | None) -> str | None:
        texts = [await self._render(a) for a in answers if isinstance(a, Text)]
        text = "\n\n".join(texts)
        if answers and len(texts) == len(answers) and len(text.encode()) <= self._reply_bytes:
            def settle(conn: Connection) -> bool:  # and whether messages wait for the user
                if give is not None:
                    give(conn)
                return _held.any_held(conn, openid)

            if await _dedup.settle(self._engine, key, _dedup.REPLIED, text, also=settle):
                self._later(self._deliver(openid, []))  # held ones, now the window is open
            return text
        await _dedup.settle(self._engine, key, _dedup.DEFERRED, None)
        self._later(self._deliver_then_give(openid, answers, give))
        return None

    async def _passive(self, key: str, openid: str, answers: list[Outbound],
                       status: str, give: Finish | None = None) -> str:
        """The passive reply: held messages, then `answers` (`_held.reply_with_held`)."""
        notice = (await self._words(openid))("wx.pending") if status == _dedup.DEFERRED else ""

        async def footer() -> Callable[[int], str]:
            say = await self._words(openid)
            return lambda count: say("wx.more", count=count)

        return await _held.reply_with_held(
            self._engine, key=key, openid=openid, fresh=answers, status=status,
            render=self._render, footer=footer, notice=notice, now=self._clock(),
            limit=self._reply_bytes, also=give)

    async def _deliver(self, openid: str, answers: list[Outbound]) -> None:
        """Active mode: held messages first, then `answers`, as customer-service messages;
        what cannot go out now is held for the user's next message."""
        try:
            await _held.deliver_held(self._engine, openid, lambda m: self._send(openid, m))
        except Exception as exc:
            log.warning("wechat: held messages for a user stay held: %s", type(exc).__name__)
            await _held.hold(self._engine, openid, answers, self._clock())
            return
        for index, answer in enumerate(answers):
            try:
                await self._send(openid, answer)
            except Exception as exc:
                log.warning("wechat: a late answer is held: %s", type(exc).__name__)
                await _held.hold(self._engine, openid, answers[index:], self._clock())
                return

    def _late(self, openid: str, work: asyncio.Task[Answered],
              holder: str | None) -> None:
        """Answers that missed the window: held (passive) or sent (active); the user's turn,
        when the claim took it, is given back now that they are made (active: with their
        menu, once sent)."""
        if work.cancelled():  # shutting down: only the turn to give back
            give = self._give(openid, holder)
            if give is not None:
                self._later(self._give_back(give))
            return
        answered = work.result()
        if self.mode == "passive":
            # Kept, then the turn given back, in one transaction: the user's next message
            # cannot be answered before these are there to go with it. Their menu is not on
            # screen until a reply carries them, and is stored then (`_held`): a number typed
            # meanwhile answers the menu the user sees.
            self._later(_held.hold(self._engine, openid, answered.messages, self._clock(),
                                   also=self._give(openid, holder)))
            return
        self._later(self._deliver_then_give(openid, answered.messages,
                                            self._give(openid, holder, answered.finish)))

    async def _deliver_then_give(self, openid: str, answers: list[Outbound],
                                 give: Finish | None) -> None:
        """Active mode, answers sent as customer-service messages: sent (or held), then the
        menu written and the user's turn given back. In that order, the user's next message
        is answered after these arrive, and a notice (sent in the user's turn) cannot come
        between them and the menu they wrote."""
        try:
            await self._deliver(openid, answers)
        finally:
            if give is not None:
                await self._give_back(give)

    async def _give_back(self, give: Finish) -> None:
        await write(self._engine, give)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A task kept until done (the loop holds tasks weakly); its error is logged."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _later(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.spawn(coro)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("wechat: background work failed", exc_info=task.exception())

    async def wait_idle(self, timeout: float) -> None:  # noqa: ASYNC109
        """Waits (bounded) for the answers still being made and sent: for shutdown, tests."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.wait(set(self._tasks))
