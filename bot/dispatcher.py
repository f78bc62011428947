"""The outbox dispatcher: delivers queued messages to users and keeps status messages current.

    dispatcher = Dispatcher(engine=engine, handlers=handlers, channels={"telegram": channel},
                            turns=app.turns)   # the users' turns the answer paths take
    await dispatcher.run_once()          # one batch, for tests and tools
    async with dispatcher:               # a background loop until the block ends
        dispatcher.notify()              # optional: something was queued, look now

How rows are claimed, and where a message can go out twice, is in `bot._dispatch_sql`.

Delivery of one row: `handlers.notification(user, kind, payload)` renders it in the user's
language (empty: nothing to say, the row is done); each part goes out through the shared sender
of the user's channel (`bot.answer.Sender`, as answers do: numbered menus and their state on a
channel without buttons, long texts split, a `Text(track_job=…)` part remembered as that job's
status message). The channels' declared `Capabilities` decide; no channel name is read.
Outcomes, by the channel's error (`bot.channel`):

- sent → 'sent'.
- `Blocked` → the row 'blocked', `chats.blocked_at` set: no later row of the user is claimed
  until they write again (the handlers clear it); those rows wait, and go out then.
- `RetryLater(s)` → back to 'pending', due in s seconds; this instance sends nothing more on
  that channel until then (a 429 is usually about the whole bot), and defers the other rows it
  holds for that channel to the same time.
- `Undeliverable` → 'failed' with the reason.
- `Held` → 'held' (never expires) until the channel's inbound side says the user wrote
  (`_dispatch_sql.release_held`); the user's later rows meet the same answer from the channel.
- any other `ChannelError` (network), an adapter bug, or a rendering error → back to 'pending'
  with exponential backoff and jitter, 'failed' after `max_attempts`.
- a user's later rows wait while an earlier one is pending retry (per-user order).

When a notification has several parts and fails after some went out, the number sent is kept in
the row's payload (`_sent_parts`) and the retry starts after them.

The user's turn (`bot.ordering.Turns`, the one the answer paths take: one user's messages one at
a time, across instances through the lease row). On a channel without buttons the numbered
menu a user was shown last is kept in `chats.menu`, and a reply "2" picks from it
(`handlers.menus`); an answer writes its menu before it gives the turn back. A notice that
wrote its menu outside the turn could land between an answer's send and its write (the chat
then keeps the answer's menu though the user saw the notice's last), or while a "2" is being
resolved. So each part that writes the menu (`Sender.changes_menu`: no buttons by the channel's
`Capabilities`, and choices or a free-text question) is sent, and its menu written, inside the
user's turn, keyed as the answer paths key it: (the row's channel, its address). Parts that
leave the menu alone (a video, a status line) go out without it, so a long upload never holds
up the user's next answer (WeChat's reply window is 4 s); channels with buttons never take it.
The turn is only ever taken when free (`Turns.attempt`): while an answer is being made the row
goes back to pending, due at once, with the parts already sent recorded as above (no attempt
counted), the user's later rows wait behind it, and the next pass tries again (within `idle`;
`videofly chat` calls `notify` after each answer). So no pass waits for one user, other users'
rows go on, and a notice is held back as long as the answer it waits for (by an instance that
died mid-turn: until that lease runs out, `Turns.lease_for`). Without `turns` (tools, older
tests) no turn is taken; the service passes one: `App.turns`, which WeChat's answer path takes
too (one in-process lock per user, and the lease row), and `videofly chat` its in-process one.

`last_error` holds the exception's type and a short text with URLs and token-like strings cut
out: a Bot API URL carries the bot token.

Users whose only identities are on channels this instance does not serve are left for an
instance that does (`videofly chat` on a shared database never touches Telegram rows); a row
nobody delivers within `max_age` is failed as expired by whichever instance sweeps first.

Rate limits are the channel adapter's business (Telegram: python-telegram-bot's
AIORateLimiter); the only waiting here is after `RetryLater`. Different users are served
concurrently (`concurrency` at a time); one user's rows strictly one after another.

Status messages: each pass looks at up to `status_batch` running jobs with a status message
(rotating through them by job id), asks `handlers.job_status`, and edits the message when the
shown key changed (`bot._dispatch_status`), on the channels that declare `progress`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncEngine

from core.crash import crash_point
from core.db import utcnow
from handlers.types import Outbound

from . import _dispatch_sql as sql
from ._dispatch_status import Renderer, sanitize_error, update_status
from .answer import Sender, capabilities
from .channel import Blocked, Channel, ChannelError, Held, RetryLater, Undeliverable
from .ordering import Turns

__all__ = ["DispatchPolicy", "Dispatcher", "Renderer", "sanitize_error"]

log = logging.getLogger("bot.dispatcher")

SENT_PARTS = "_sent_parts"  # payload key: parts of a multi-part notification already sent


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchPolicy:
    batch: int = 50  # rows claimed per pass
    concurrency: int = 8  # users served at once
    lease: timedelta = timedelta(minutes=10)  # longer than any send (a 2 GB upload included)
    max_attempts: int = 8
    backoff_base: float = 2.0  # seconds before the first retry; doubles each time
    backoff_cap: float = 600.0
    idle: float = 0.5  # seconds the loop sleeps when there is nothing to do
    status_batch: int = 50
    recover_every: timedelta = timedelta(seconds=30)
    max_age: timedelta = timedelta(days=3)
    retention: timedelta = timedelta(days=30)
    purge_every: timedelta = timedelta(hours=1)
    stop_grace: float = 30.0  # seconds stopping waits for messages in flight


class Dispatcher:
    """Delivers the outbox through `channels` (by channel name); see the module docstring."""

    def __init__(self, *, engine: AsyncEngine, handlers: Renderer,
                 channels: Mapping[str, Channel], clock: Callable[[], datetime] = utcnow,
                 policy: DispatchPolicy | None = None, rng: random.Random | None = None,
                 turns: Turns | None = None) -> None:
        """`turns`: the users' turns the answer paths take (the same object in one process;
        see the module doc); None takes no turn."""
        self.engine, self.handlers, self.clock = engine, handlers, clock
        self.turns = turns
        self.channels = dict(channels)
        self._senders = {name: Sender(engine=engine, handlers=handlers, channel=channel)
                         for name, channel in self.channels.items()}
        self.policy = policy or DispatchPolicy()
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        self._paused: dict[str, datetime] = {}  # channel → no sends before this time
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._last_recover: datetime | None = None
        self._last_purge: datetime | None = None
        self._status_after = 0

    # --- the loop ----------------------------------------------------------------------------

    def notify(self) -> None:
        """Wakes the loop now (something was queued)."""
        self._wake.set()

    async def __aenter__(self) -> Self:
        if self._task is not None:
            raise RuntimeError("the dispatcher is already running")
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name="outbox-dispatcher")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True  # checked before every send: what is in flight finishes
        self._wake.set()
        done, _ = await asyncio.wait({task}, timeout=self.policy.stop_grace)
        if not done:
            log.warning("dispatcher still sending after %.0fs: cancelled",
                        self.policy.stop_grace)
            task.cancel()
            await asyncio.wait({task}, timeout=5.0)

    async def _loop(self) -> None:
        while not self._stopping:
            busy = False
            try:
                busy = await self.run_once() >= self.policy.batch
                await self.update_statuses()
            except Exception:  # the database away for a moment: log, wait, go on
                log.exception("dispatcher pass failed; trying again")
            if busy or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.policy.idle)
            self._wake.clear()

    # --- the outbox ----------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claims one batch of due rows and delivers them; returns how many rows it handled."""
        now = self.clock()
        await self._housekeeping(now)
        serving = [name for name in self.channels if not self._is_paused(name, now)]
        # A little randomness in the lease end keeps the claim token unique per claim.
        token = now + self.policy.lease + timedelta(microseconds=self._rng.randrange(1000))
        rows = await sql.claim(self.engine, channels=serving, now=now, token=token,
                               limit=self.policy.batch)
        by_user: dict[int, list[sql.Claimed]] = defaultdict(list)
        for row in rows:
            by_user[row.user_id].append(row)
        gate = asyncio.Semaphore(self.policy.concurrency)

        async def serve(user_rows: list[sql.Claimed]) -> int:
            async with gate:
                return await self._serve_user(user_rows)

        return sum(await asyncio.gather(*(serve(r) for r in by_user.values())))

    async def _housekeeping(self, now: datetime) -> None:
        p = self.policy
        if self._last_recover is None or now - self._last_recover >= p.recover_every:
            self._last_recover = now
            recovered, expired = await sql.recover(self.engine, now=now,
                                                   max_attempts=p.max_attempts,
                                                   max_age=p.max_age)
            if recovered or expired:
                log.warning("outbox: %d message(s) taken back from a sender that died (they "
                            "may arrive twice), %d expired undelivered", recovered, expired)
        if self._last_purge is None or now - self._last_purge >= p.purge_every:
            self._last_purge = now
            await sql.purge(self.engine, before=now - p.retention)

    def _is_paused(self, channel: str, now: datetime) -> bool:
        until = self._paused.get(channel)
        return until is not None and now < until

    async def _serve_user(self, rows: list[sql.Claimed]) -> int:
        """Delivers one user's rows in order; stops at the first that must wait."""
        handled = 0
        for i, row in enumerate(rows):
            now = self.clock()
            if self._stopping or self._is_paused(row.channel, now):
                until = self._paused.get(row.channel, now) if not self._stopping else now
                await sql.release(self.engine, rows[i:], at=max(until, now))
                break
            over = await self._deliver(row)
            if over is not None:  # None: back for the next pass, the user's turn was taken
                handled += 1
            if not over:
                # Blocked, retrying or the turn taken: the rest of this user's rows wait (or
                # stay unclaimed).
                await sql.release(self.engine, rows[i + 1:], at=self.clock())
                break
        return handled

    async def _deliver(self, row: sql.Claimed) -> bool | None:
        """Sends one row; True when the row is over (sent or failed for good), False when it
        waits (a retry, the user blocked the bot or is held), None when the user's turn was
        taken (the row is back, due at once: see the module doc)."""
        sender = self._senders[row.channel]
        payload = {k: v for k, v in row.payload.items() if k != SENT_PARTS}
        done = int(row.payload.get(SENT_PARTS, 0) or 0)
        try:
            parts = await self.handlers.notification(row.user_id, row.kind, payload)
        except Exception as exc:
            log.exception("outbox %d (%s): rendering failed", row.id, row.kind)
            return await self._backoff(row, exc, done)
        for index in range(done, len(parts)):
            message = parts[index]
            crash_point("mid_send")
            try:
                async with self._turn(row, sender, message) as ours:
                    if ours:
                        await sender.send(row.address, message)
            except Blocked as exc:
                now = self.clock()
                await sql.mark_blocked(self.engine, row.user_id, now)
                await sql.finish(self.engine, row, state="blocked", now=now,
                                 error=sanitize_error(exc))
                log.info("outbox %d: user %d blocked the bot", row.id, row.user_id)
                return False
            except RetryLater as exc:
                self._pause(row.channel, exc.seconds)
                await sql.retry(self.engine, row, at=self._paused[row.channel],
                                attempts=row.attempts,
                                error=sanitize_error(exc), payload=self._progress(row, index))
                log.info("outbox %d: %s asked to wait %.1fs", row.id, row.channel,
                         exc.seconds)
                return False
            except Held as exc:
                await sql.hold(self.engine, row, error=sanitize_error(exc),
                               payload=self._progress(row, index))
                log.info("outbox %d: held until user %d writes again (%s)", row.id,
                         row.user_id, exc.reason)
                return False
            except Undeliverable as exc:
                await sql.finish(self.engine, row, state="failed", now=self.clock(),
                                 error=sanitize_error(exc))
                log.warning("outbox %d (%s) undeliverable: %s", row.id, row.kind,
                            sanitize_error(exc))
                return True
            except Exception as exc:  # ChannelError (network) or an adapter fault
                if not isinstance(exc, ChannelError):
                    log.exception("outbox %d: the %s adapter failed", row.id, row.channel)
                return await self._backoff(row, exc, index)
            if not ours:
                await self._turn_taken(row, index)
                return None
        if not await sql.finish(self.engine, row, state="sent", now=self.clock()):
            log.warning("outbox %d: sent after its lease ran out; another instance may send "
                        "it again", row.id)
        return True

    def _turn(self, row: sql.Claimed, sender: Sender,
              message: Outbound) -> contextlib.AbstractAsyncContextManager[bool]:
        """The user's turn, for a message that writes the chat's menu; True at once for any
        other (see the module doc)."""
        if self.turns is None or not sender.changes_menu(message):
            return contextlib.nullcontext(True)
        return self.turns.attempt(row.channel, row.address)

    async def _turn_taken(self, row: sql.Claimed, sent: int) -> None:
        """An answer holds the user's turn: the row goes back to pending, due at once, with
        the `sent` parts recorded, for the next pass."""
        progress = self._progress(row, sent)
        if progress is None:
            await sql.release(self.engine, [row], at=self.clock())
        else:
            await sql.retry(self.engine, row, at=self.clock(), attempts=row.attempts,
                            error=None, payload=progress)
        log.debug("outbox %d: user %d's turn is taken; next pass", row.id, row.user_id)

    def _progress(self, row: sql.Claimed, sent: int) -> dict[str, Any] | None:
        """The payload recording `sent` parts, or None when that is unchanged."""
        if sent == int(row.payload.get(SENT_PARTS, 0) or 0):
            return None
        return {**row.payload, SENT_PARTS: sent}

    async def _backoff(self, row: sql.Claimed, exc: Exception, sent: int) -> bool:
        attempts = row.attempts + 1
        now = self.clock()
        error = sanitize_error(exc)
        if attempts >= self.policy.max_attempts:
            await sql.finish(self.engine, row, state="failed", now=now, attempts=attempts,
                             error=f"gave up after {attempts} attempts: {error}"[:500])
            log.warning("outbox %d (%s): failed after %d attempts: %s", row.id, row.kind,
                        attempts, error)
            return True
        p = self.policy
        delay = min(p.backoff_cap, p.backoff_base * 2 ** (attempts - 1))
        delay *= self._rng.uniform(0.5, 1.0)  # jitter: instances and users spread out
        await sql.retry(self.engine, row, at=now + timedelta(seconds=delay), attempts=attempts,
                        error=error, payload=self._progress(row, sent))
        log.info("outbox %d: attempt %d failed (%s); again in %.1fs", row.id, attempts, error,
                 delay)
        return False

    def _pause(self, channel: str, seconds: float) -> None:
        """Sends nothing more on `channel` for `seconds` (the channel said RetryLater)."""
        until = self.clock() + timedelta(seconds=max(seconds, 0.0))
        self._paused[channel] = max(until, self._paused.get(channel, until))

    # --- status messages -------------------------------------------------------------------------

    async def update_statuses(self) -> int:
        """Edits status messages whose job moved on; returns how many it edited."""
        now = self.clock()
        serving = [name for name, channel in self.channels.items()
                   if capabilities(channel).progress and not self._is_paused(name, now)]
        if not serving:
            return 0
        rows = await sql.status_rows(self.engine, channels=serving, after=self._status_after,
                                     limit=self.policy.status_batch,
                                     ended_since=now - sql.FINAL_EDIT_WINDOW)
        # Rotate: the next pass starts after the last job seen, and wraps round at the end.
        self._status_after = rows[-1].job_id if len(rows) == self.policy.status_batch else 0
        edited = 0
        for row in rows:
            if self._stopping or self._is_paused(row.channel, self.clock()):
                break
            edited += await update_status(self.engine, self.handlers, self.channels[row.channel],
                                          row, clock=self.clock, pause=self._pause)
        return edited
