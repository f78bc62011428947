"""The chat entry point: `Handlers.handle(inbound) -> [Outbound]`, for every channel.

One update is handled in three parts:

1. *Who*: the channel identity's user, language and tier in one read. First contact opens the
   account (language from the channel's hint: "zh…" → Chinese, else `[app] default_language`),
   grants the new-user bonus once (key `bonus:<user id>`, expiring after
   `[credits] new_user_bonus_days`, 0 = never), creates the chat row and says welcome with the
   main menu. The instance that creates the chat row says welcome; a racing one does not.
2. *Where*: the conversation step and draft from the `chats` row (`state`). A conversation idle
   longer than `[chat] idle_minutes` is dropped first, with a short note, and the update is
   handled as if the user were at the main menu.
3. *What*: payments, commands, global buttons (menu, cancel, history pages, /videos actions,
   language, top-up), else the step of the generate conversation (`generate`). Button data are
   decoded once by `choices.decode` (readable names, and the old one-letter forms); data it
   does not know answer "this menu has expired" with the question the user is at.

A new state is saved with a conditional UPDATE on the row's version. When another instance
changed the row in between, the update is handled again on the fresh state (once; then the user
is asked to try again). Handling has no effects that must not repeat before that save: photos
are stored once per update (`Turn`), and a job starts only after its save (`Reply.after`).
Updates that change no state (commands such as /balance or /grant) are never re-run.

The hot path (measured by bench/telegram.py): a command that changes nothing, such as /balance, is
one read and no write. The identity, user, chat row (with the numbered menu last shown, on channels
without buttons: a reply "2" is resolved against it here, `menus.by_number`, with no read of its
own) and (for /balance, typed or pressed) the wallet balance are one SELECT (`Wallet.with_balance`:
the account row joined, the lapsing grants as correlated aggregates). It runs through
`core.db.read(engine, op)`: on SQLite with no thread hop; on PostgreSQL in autocommit, one round
trip with no BEGIN/COMMIT (a single statement reads one snapshot, so the balance is exactly what a
separate read would have shown). The chat row is then written only when `state.needs_touch` says so
(blocked, or `last_seen_at` a minute old). Before, /balance took four transactions: who, touch, and
two reads for the balance; then one read transaction of three statements (five round trips on
PostgreSQL). The SELECT is `Prepared` (`core.prepared`): SQLAlchemy's per-execution work (a cache
key over the whole statement, the execution context) cost more than SQLite running it
(bench/wechat.py profile).

Every error becomes text through `errors.error_text`: a known one a friendly text, anything else
an incident id, with the traceback in the log.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from core.db import read
from core.prepared import Prepared
from generation import JobNotFound
from wallet import Balance, queries

from . import account, admin, generate, menus, notify, plan, state, stats, topup, videos
from .choices import COMMANDS, VIDEO_ACTIONS, Choice, decode
from .deps import ChatDeps, Ctx, Reply, Turn, is_admin
from .errors import error_text
from .messages import language_of, t, tn
from .running import jobs_on_cancel
from .state import Chat, Draft, Step
from .status import status_key
from .tables import chats
from .types import Inbound, Outbound, Text, capabilities_of
from .ui import ask_text, menu_text

__all__ = ["ADMIN_COMMANDS", "ChatDeps", "Handlers"]

log = logging.getLogger("handlers")

ADMIN_COMMANDS = ("grant", "deduct", "user", "code", "stats", "refund", "tier")

# Who is talking, with their chat row (NULLs before the first contact's row exists).
_WHO = (queries.who()
        .add_columns(chats.c.user_id.label("chat"), chats.c.step, chats.c.draft,
                     chats.c.version, chats.c.updated_at, chats.c.last_seen_at,
                     chats.c.blocked_at, chats.c.menu)
        .outerjoin(chats, chats.c.user_id == queries.USER_ID))
_WHO_PREPARED = Prepared(_WHO)  # every update's first read (`core.prepared`)


class Handlers:
    """Every conversation and command, for every channel."""

    def __init__(self, deps: ChatDeps) -> None:
        self.deps = deps
        self._who_balance = Prepared(deps.wallet.with_balance(_WHO, queries.USER_ID))

    # --- the contract -------------------------------------------------------------------------

    async def handle(self, inbound: Inbound) -> list[Outbound]:
        """Answers one inbound update; the adapter sends the answers in order."""
        now = self.deps.clock()
        lang = language_of(inbound.language, self.deps.config.app.default_language)
        try:
            ctx, chat, welcome, balance, menu = await self._enter(inbound, now)
        except Exception as exc:
            return [Text(text=error_text(lang, exc))]
        if not ctx.caps.buttons:
            inbound = menus.by_number(inbound, menu)
        if welcome and _greeting_only(inbound):
            return welcome
        try:
            answers = [*welcome, *await self._converse(ctx, Turn(inbound, now, balance), chat)]
        except Exception as exc:
            return [*welcome, Text(text=error_text(ctx.lang, exc))]
        return answers if ctx.caps.buttons else menus.keep_stored(answers, menu)

    async def notification(self, user_id: int, kind: str,
                           payload: dict[str, Any]) -> list[Outbound]:
        """Renders one outbox message in the user's language (empty: nothing to send)."""
        return await notify.render(self.deps, user_id, kind, payload)

    async def job_status(self, job_id: int) -> tuple[str, Text] | None:
        """The job's status message now and a short key of what it shows ("making:40:m1",
        "delivered"), so a sender edits the message only when the key changed; None for a
        job that is gone."""
        return await notify.job_status(self.deps, job_id)

    async def remember_status(self, job_id: int, *, channel: str, address: str,
                              message_id: str) -> None:
        """Records the message a `Text(track_job=…)` became, to edit it later, with the key
        of what it shows now (it was rendered a moment ago)."""
        now = self.deps.clock()
        try:
            shown = status_key(await self.deps.jobs.get(job_id), now=now)
        except JobNotFound:
            shown = ""
        await notify.remember_status(self.deps.engine, job_id, channel=channel,
                                     address=address, message_id=message_id, now=now,
                                     shown=shown)

    def command_menu(self, language: str) -> list[tuple[str, str]]:
        """(command, description) pairs for the channel's command menu (set_my_commands)."""
        return account.command_menu(language)

    # --- who ----------------------------------------------------------------------------------

    async def _who(self, inbound: Inbound) -> tuple[Any, Balance | None]:
        """The identity's user and chat row (None: unknown identity) and, for an update that
        shows the balance and a user past first contact, the balance: one SELECT (on
        PostgreSQL one round trip, in autocommit: a single statement reads one snapshot)."""
        deps, with_balance = self.deps, _shows_balance(inbound)
        params: dict[str, Any] = {"channel": inbound.channel, "address": inbound.address}
        query = _WHO_PREPARED
        if with_balance:
            query = self._who_balance
            params.update(deps.wallet.balance_params())
        row = await read(deps.engine, lambda conn: query.first(conn, **params))
        # On first contact the bonus is granted after this read: no balance from here.
        if row is None or row.chat is None or not with_balance:
            return row, None
        return row, deps.wallet.balance_of(row, row.id)

    async def _enter(self, inbound: Inbound, now: datetime,
                     ) -> tuple[Ctx, Chat | None, list[Outbound], Balance | None, Any]:
        """The user (created on first contact), their chat row as read with it, a welcome,
        the balance if it was read with them (see `_who`), and the numbered menu they were
        last shown (`handlers.menus`; None on first contact)."""
        deps = self.deps
        hint = language_of(inbound.language, deps.config.app.default_language)
        row, balance = await self._who(inbound)
        if row is None:
            await deps.wallet.open_account(inbound.channel, inbound.address, language=hint)
            row, balance = await self._who(inbound)
        lang = row.language if row.language in ("en", "zh") else hint
        if row.language is None:
            await account.set_language(deps, row.id, lang)
        ctx = Ctx(user_id=row.id, lang=lang, channel=inbound.channel, address=inbound.address,
                  tier=row.tier or "default",
                  admin=is_admin(deps.config, inbound.channel, inbound.address),
                  caps=capabilities_of(inbound.channel))
        if row.chat is not None:
            return ctx, state.record(row.id, row.step, row.draft, row.version, row.updated_at,
                                     row.last_seen_at, row.blocked_at is not None), [], \
                balance, row.menu
        return ctx, None, await self._first_contact(ctx, now), None, None

    async def _first_contact(self, ctx: Ctx, now: datetime) -> list[Outbound]:
        cfg = self.deps.config.credits
        lines = [t(ctx.lang, "welcome")]
        if cfg.new_user_bonus > 0:
            expires = now + timedelta(days=cfg.new_user_bonus_days) \
                if cfg.new_user_bonus_days else None
            grant = await self.deps.wallet.grant(ctx.user_id, cfg.new_user_bonus,
                                                 source="bonus", key=f"bonus:{ctx.user_id}",
                                                 expires_at=expires)
            if grant.created and expires is not None:
                lines.append(t(ctx.lang, "welcome.bonus",
                               credits=tn(ctx.lang, "n.credits", grant.credits),
                               date=account.local(self.deps, expires)))
            elif grant.created:
                lines.append(t(ctx.lang, "welcome.bonus_forever",
                               credits=tn(ctx.lang, "n.credits", grant.credits)))
        if not await state.create(self.deps.engine, ctx.user_id, now):
            return []  # another instance is saying welcome
        return [Text(text="\n".join(lines)), menu_text(ctx.lang)]

    # --- where --------------------------------------------------------------------------------

    async def _converse(self, ctx: Ctx, turn: Turn, seen: Chat | None) -> list[Outbound]:
        """Handles the update on the conversation state `seen` (read with the user), and once
        more on a fresh read if another instance changed the conversation meanwhile."""
        engine, idle = self.deps.engine, timedelta(minutes=self.deps.config.chat.idle_minutes)
        for attempt in range(2):
            chat = seen if attempt == 0 and seen is not None else \
                await state.load(engine, ctx.user_id)
            if chat is None:  # deleted under us (user removed): start it again
                await state.create(engine, ctx.user_id, turn.now)
                continue
            lead: list[Outbound] = []
            view = chat
            if chat.step is not Step.IDLE and chat.updated_at is not None \
                    and turn.now - chat.updated_at > idle:
                lead = [Text(text=t(ctx.lang, "idle.reset"))]
                view = Chat(chat.user_id, Step.IDLE, Draft(), chat.version, chat.updated_at)
            reply = await self._route(ctx, view, turn)
            if reply.step is None:
                if view is chat:
                    if state.needs_touch(chat, turn.now):
                        await state.touch(engine, ctx.user_id, turn.now)
                else:  # only the timeout to record; losing that race changes nothing
                    await state.save(engine, chat, Step.IDLE, Draft(), turn.now)
                return [*lead, *reply.out]
            saved = await state.save(engine, chat, reply.step, reply.draft, turn.now)
            if saved is None:
                log.info("user %s: conversation changed meanwhile; handling again", ctx.user_id)
                continue
            after = await reply.after(saved) if reply.after is not None else []
            return [*lead, *reply.out, *after]
        return [Text(text=t(ctx.lang, "busy"))]

    # --- what ---------------------------------------------------------------------------------

    async def _route(self, ctx: Ctx, chat: Chat, turn: Turn) -> Reply:
        deps, inbound = self.deps, turn.inbound
        if inbound.payment is not None:
            if inbound.payment.subscription_expires is not None:
                return Reply([await plan.stars_paid(deps, ctx, inbound.payment)])
            return Reply([await topup.stars_paid(deps, ctx, inbound.payment)])
        command = inbound.command
        if command is not None and not inbound.photos:
            return await self._command(ctx, turn, *command, chat=chat)
        if inbound.choice is None:
            if chat.step is Step.REDEEM and inbound.text.strip() and not inbound.photos:
                return Reply([await account.redeem(deps, ctx, inbound.text.split())],
                             Step.IDLE)
            return await generate.on_update(deps, ctx, chat, turn)
        choice = decode(inbound.choice)
        if choice is None:  # data no codec form knows: an expired menu
            return await self._expired(ctx, chat)
        return await self._choice(ctx, chat, turn, choice)

    async def _choice(self, ctx: Ctx, chat: Chat, turn: Turn, choice: Choice) -> Reply:
        """A pressed button (or a number picked from a numbered menu)."""
        deps, name, value = self.deps, choice.name, choice.arg
        if name == "menu":
            return await self._command(ctx, turn, "start", [])
        if name in ("cancel", "generate") or (name in COMMANDS and not choice.args):
            return await self._command(ctx, turn, name, [], chat=chat)
        if name == "history" and value.isdigit() and len(value) < 19:
            return Reply([await account.history(deps, ctx, int(value))])
        if name == "lang" and value in ("en", "zh"):
            await account.set_language(deps, ctx.user_id, value)
            return Reply([menu_text(value, "lang.set")])
        if name == "video" and choice.args[0] in VIDEO_ACTIONS:
            act = {"resend": videos.resend, "retry": videos.retry,
                   "again": videos.again}[choice.args[0]]
            return await act(deps, ctx, choice.args[1])
        if name == "topup":
            return Reply(await topup.choose_method(deps, ctx, value))
        if name == "pay":
            return Reply(await topup.checkout(deps, ctx, *choice.args))
        if name == "plan":
            return Reply(await plan.pick(deps, ctx, value) if value else
                         [await plan.view(deps, ctx)])
        if name == "subscribe":
            return Reply(await plan.subscribe(deps, ctx, *choice.args))
        if name == "plancancel" and value in ("", "yes"):
            return Reply(await plan.cancel(deps, ctx, confirmed=value == "yes"))
        return await generate.on_update(deps, ctx, chat, turn)

    async def _expired(self, ctx: Ctx, chat: Chat) -> Reply:
        """"This menu has expired", then the question the user is at (or the main menu)."""
        current = await generate.ask(self.deps, ctx, chat.step, chat.draft)
        return Reply([Text(text=t(ctx.lang, "menu.expired")), current])

    async def _command(self, ctx: Ctx, turn: Turn, name: str, args: list[str],
                       chat: Chat | None = None) -> Reply:
        deps, lang = self.deps, ctx.lang
        if name == "start":
            return Reply([menu_text(lang)], Step.IDLE)
        if name == "cancel":
            return Reply([*await jobs_on_cancel(deps, ctx), Text(text=t(lang, "cancelled")),
                          menu_text(lang)], Step.IDLE)
        if name == "generate":
            return await generate.begin(deps, ctx)
        if name == "help":
            return Reply([account.help_text(ctx)])
        if name == "balance":
            return Reply([await account.balance(deps, ctx, turn.balance)])
        if name == "history":
            return Reply([await account.history(deps, ctx, None)])
        if name == "videos":
            return Reply([await videos.listing(deps, ctx)])
        if name == "checkin":
            done = await account.checkin(deps, ctx)
            if chat is not None and chat.step is Step.CONFIRM:  # short of credits a moment ago
                return Reply([Text(text=done.text),
                              await generate.ask(deps, ctx, Step.CONFIRM, chat.draft)])
            return Reply([done])
        if name == "redeem":
            if not args:  # the code comes next, as text
                return Reply([ask_text(lang, t(lang, "redeem.ask"), ctx.caps)], Step.REDEEM)
            return Reply([await account.redeem(deps, ctx, args)])
        if name == "topup":
            return Reply([topup.menu(deps, ctx)])
        if name == "plan":
            return Reply([await plan.view(deps, ctx)])
        if name == "language":
            return Reply([account.language_menu(ctx)])
        if ctx.admin and name in ADMIN_COMMANDS:
            return Reply(await self._admin(ctx, name, args))
        return Reply([Text(text=t(lang, "unknown"))])

    async def _admin(self, ctx: Ctx, name: str, args: list[str]) -> list[Outbound]:
        deps = self.deps
        if name == "stats":
            return [*await stats.stats(deps, ctx)]
        act = {"grant": admin.grant, "deduct": admin.deduct, "user": admin.user_info,
               "code": admin.code, "refund": admin.refund, "tier": admin.tier}[name]
        return [await act(deps, ctx, args)]


def _shows_balance(inbound: Inbound) -> bool:
    """/balance, typed or pressed (`_route`'s own tests, in its order): its balance is read
    with the user. On a channel without buttons, a number may pick Balance from the menu read
    in the same statement: read it too (a few µs more for the other numbers)."""
    if inbound.payment is not None or inbound.photos:
        return False
    command = inbound.command
    if command is not None:
        return command[0] == "balance"
    if inbound.choice is None:
        return menus.choice_number(inbound.text) is not None \
            and not capabilities_of(inbound.channel).buttons
    return decode(inbound.choice) == Choice("balance")


def _greeting_only(inbound: Inbound) -> bool:
    """On first contact, the welcome is the whole answer to /start or a plain hello."""
    command = inbound.command
    if command is not None:
        return command[0] == "start"
    return inbound.choice is None and not inbound.photos and inbound.payment is None
