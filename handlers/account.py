"""The user's own commands: /help, /balance, /history, /checkin, /redeem, /language.

Times are shown in `[credits] timezone`, the zone that also decides when a check-in day starts.
History pages go newest first; the buttons carry the ledger id to page from, so any instance can
serve the next page and an old page's buttons keep working.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from core.db import read, write
from wallet import Balance, LedgerEntry, WalletError, queries

from .choices import Choice
from .deps import ChatDeps, Ctx
from .errors import error_text
from .messages import CATALOGUES, LANGUAGES, t, tn
from .types import Button, Text
from .ui import Rows, button, main_menu, menu_text

__all__ = ["LEDGER_KINDS", "SOURCES", "USER_COMMANDS", "balance", "checkin", "command_menu",
           "help_text", "history", "language_menu", "redeem", "set_language"]

USER_COMMANDS = ("start", "generate", "balance", "history", "videos", "checkin", "redeem",
                 "topup", "plan", "language", "cancel", "help")
LEDGER_KINDS = ("grant", "hold", "settle", "release", "expire", "clawback")
# Where a grant came from, by the first part of its key (purchases: the payment providers).
SOURCES = {"bonus": "source.bonus", "checkin": "source.checkin", "redeem": "source.redeem",
           "admin": "source.admin", "stripe": "source.purchase", "creem": "source.purchase",
           "stars": "source.purchase", "purchase": "source.purchase",
           "membership": "source.subscription"}


def command_menu(lang: str) -> list[tuple[str, str]]:
    return [(c, t(lang, f"cmd.{c}")) for c in USER_COMMANDS]


def help_text(ctx: Ctx) -> Text:
    lines = [t(ctx.lang, "help.title"),
             *(f"/{c} — {d}" for c, d in command_menu(ctx.lang))]
    if ctx.admin:
        lines += ["", t(ctx.lang, "help.admin")]
    return Text(text="\n".join(lines), buttons=main_menu(ctx.lang))


def local(deps: ChatDeps, when: datetime, fmt: str = "%Y-%m-%d") -> str:
    return when.astimezone(deps.config.credits.zone).strftime(fmt)


async def balance(deps: ChatDeps, ctx: Ctx, known: Balance | None = None) -> Text:
    """The balance text; `known`: the balance as already read with the user (same snapshot)."""
    b = known if known is not None else await deps.wallet.balance(ctx.user_id)
    lines = [t(ctx.lang, "balance.text", available=tn(ctx.lang, "n.credits", b.available),
               held=tn(ctx.lang, "n.credits", b.held))]
    if b.expiring_soon and b.next_expiry is not None:
        lines.append(tn(ctx.lang, "balance.expiring", b.expiring_soon,
                        date=local(deps, b.next_expiry)))
    if b.debt:
        lines.append(t(ctx.lang, "balance.debt", debt=tn(ctx.lang, "n.credits", b.debt)))
    return Text(text="\n".join(lines), buttons=main_menu(ctx.lang))


def _label(lang: str, entry: LedgerEntry) -> str:
    label = t(lang, f"ledger.{entry.kind}") if entry.kind in LEDGER_KINDS else entry.kind
    ref = entry.ref or ""
    if entry.kind == "grant":
        source = SOURCES.get(ref.split(":", 1)[0])
        if source:
            label += f" ({t(lang, source)})"
    elif ref.startswith("job:"):
        label += f" #{ref.split(':')[1]}"
    return label


def _amount(entry: LedgerEntry) -> str:
    if entry.kind == "settle":  # available does not move: the held credits are spent
        return str(-entry.held_delta - entry.amount)
    return f"{entry.amount:+d}"


def _line(deps: ChatDeps, lang: str, e: LedgerEntry) -> str:
    """One ledger entry. A job's credits are reserved when it starts (available goes down)
    and spent when it is delivered (available does not move again): that second line says
    what was spent, not a second amount beside the first."""
    date = local(deps, e.created_at, "%m-%d %H:%M")
    ref = e.ref or ""
    if e.kind == "settle" and ref.startswith("job:"):
        return t(lang, "history.settled", date=date, job_id=ref.split(":")[1],
                 credits=tn(lang, "n.credits", -e.held_delta - e.amount), balance=e.balance_after)
    return t(lang, "history.line", date=date, label=_label(lang, e), amount=_amount(e),
             balance=e.balance_after)


async def history(deps: ChatDeps, ctx: Ctx, before: int | None) -> Text:
    size = deps.config.chat.history_page_size
    entries = await deps.wallet.history(ctx.user_id, limit=size + 1, before_id=before)
    older, entries = len(entries) > size, entries[:size]
    if not entries:
        return Text(text=t(ctx.lang, "history.empty"), buttons=main_menu(ctx.lang))
    lines = [t(ctx.lang, "history.title")] + [_line(deps, ctx.lang, e) for e in entries]
    nav: list[Button] = []
    if older:
        nav.append(button(ctx.lang, "btn.older", Choice("history", (str(entries[-1].id),))))
    if before is not None:
        async with read(deps.engine) as conn:
            newer = await queries.newer_entries(conn, ctx.user_id, entries[0].id, size + 1)
        if newer:
            # The newer page ends just above the current one; if it is the newest, "h:".
            page = Choice("history") if len(newer) <= size else \
                Choice("history", (str(newer[size - 1] + 1),))
            nav.append(button(ctx.lang, "btn.newer", page))
    return Text(text="\n".join(lines), buttons=(tuple(nav),) if nav else ())


async def checkin(deps: ChatDeps, ctx: Ctx) -> Text:
    cfg = deps.config.credits
    if cfg.checkin_amount <= 0:
        return menu_text(ctx.lang, "checkin.off")
    result = await deps.wallet.checkin(ctx.user_id, credits=cfg.checkin_amount, tz=cfg.zone,
                                       expires_days=cfg.checkin_expires_days)
    if not result.granted:
        nxt = datetime.combine(result.day + timedelta(days=1), time(0), tzinfo=cfg.zone)
        when = f"{nxt:%Y-%m-%d %H:%M} ({cfg.timezone})"
        return Text(text=t(ctx.lang, "checkin.already", when=when), buttons=main_menu(ctx.lang))
    available = (await deps.wallet.balance(ctx.user_id)).available
    return Text(text=t(ctx.lang, "checkin.done",
                          credits=tn(ctx.lang, "n.credits", result.credits), balance=available),
                buttons=main_menu(ctx.lang))


async def redeem(deps: ChatDeps, ctx: Ctx, args: list[str]) -> Text:
    if len(args) != 1 or len(args[0]) > 64:
        return Text(text=t(ctx.lang, "redeem.usage"))
    tier, ends_at = None, None
    try:
        if deps.memberships is not None:  # a code may carry membership days as well
            got = await deps.memberships.redeem(ctx.user_id, args[0])
            credits, tier, ends_at = got.credits, got.tier, got.ends_at
        else:
            credits = (await deps.wallet.redeem(ctx.user_id, args[0])).credits
    except WalletError as exc:
        return Text(text=error_text(ctx.lang, exc))
    available = (await deps.wallet.balance(ctx.user_id)).available
    lines = [t(ctx.lang, "redeem.done", credits=tn(ctx.lang, "n.credits", credits),
               balance=available)]
    if tier is not None and ends_at is not None:
        lines.append(t(ctx.lang, "redeem.membership", name=t(ctx.lang, f"tier.{tier}")
                       if f"tier.{tier}" in CATALOGUES["en"] else tier.title(),
                       date=local(deps, ends_at)))
    return Text(text="\n".join(lines), buttons=main_menu(ctx.lang))


def language_menu(ctx: Ctx) -> Text:
    rows: Rows = (tuple(button(ctx.lang, f"lang.{code}", Choice("lang", (code,)))
                        for code in LANGUAGES),)
    return Text(text=t(ctx.lang, "lang.choose"), buttons=rows)


async def set_language(deps: ChatDeps, user_id: int, lang: str) -> None:
    async with write(deps.engine) as conn:
        await queries.set_language(conn, user_id, lang)
