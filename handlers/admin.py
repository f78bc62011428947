"""Admin commands: /grant, /deduct, /user, /code, /refund, /tier (and /stats in `stats`).

/tier USER TIER DAYS gives a manual membership (`memberships.manual`; TIER free or DAYS 0 ends
it); /user shows the membership; /code CREDITS [USES] [DAYS] [TIER:DAYS] makes a code that may
carry membership days of a tier as well.

Who is an admin is decided once per update (`deps.is_admin`); to anyone else these commands
answer exactly like an unknown command, so they do not reveal that they exist.

USER is resolved as: `#12` → internal user id 12; all digits → the Telegram user with that id if
one exists, otherwise internal id; anything else → a WeChat openid. Numbers must be whole, from 1
to a sane upper bound, so a typo cannot grant a billion credits.

Money: a grant or deduction is one transaction holding the wallet change (source "admin",
`actor="<channel>:<address>"`, the reason as note) and the user's outbox notice. /deduct takes
only what is available and refuses more (nothing changes): an admin correcting a balance should
not push a user into debt, which is reserved for refunded payments.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from core.db import read, write
from core.outbox import enqueue
from payments import recent_for_user
from wallet import queries

from .deps import ChatDeps, Ctx
from .errors import Explained
from .messages import t, tn
from .notify import model_name
from .types import Text

__all__ = ["MAX_CREDITS", "code", "deduct", "grant", "refund", "resolve_user", "tier",
           "user_info"]

MAX_CREDITS = 1_000_000
MAX_USES = 100_000
MAX_DAYS = 3650
MAX_REASON = 200


def number(value: str, most: int) -> int:
    if not value.isdigit() or len(value) > 12 or not 1 <= int(value) <= most:
        raise Explained("admin.bad_number", value=value[:20], max=most)
    return int(value)


async def resolve_user(deps: ChatDeps, who: str) -> int:
    """The internal id USER names; Explained("admin.no_user") when nobody matches."""
    async with read(deps.engine) as conn:
        found = await queries.lookup(conn, who)
    if found is None:
        raise Explained("admin.no_user", who=who[:40])
    return int(found)


async def grant(deps: ChatDeps, ctx: Ctx, args: list[str]) -> Text:
    return await _move(deps, ctx, args, giving=True)


async def deduct(deps: ChatDeps, ctx: Ctx, args: list[str]) -> Text:
    return await _move(deps, ctx, args, giving=False)


async def _move(deps: ChatDeps, ctx: Ctx, args: list[str], *, giving: bool) -> Text:
    """`/grant` or `/deduct` USER CREDITS [reason]: the wallet change, with the admin as actor
    and the reason as note, and the user's notice (outbox), in one transaction."""
    done = "admin.granted" if giving else "admin.deducted"  # the notice's kind and the answer
    if len(args) < 2:
        return Text(text=t(ctx.lang, "admin.usage_grant" if giving else "admin.usage_deduct"))
    uid, credits = await resolve_user(deps, args[0]), number(args[1], MAX_CREDITS)
    reason = " ".join(args[2:])[:MAX_REASON]
    key = f"admin:{uuid.uuid4().hex}"
    async with write(deps.engine) as conn:
        if giving:
            await deps.wallet.grant(uid, credits, source="admin", key=key, note=reason or None,
                                    actor=ctx.actor, conn=conn)
        else:
            # The account row, locked: nothing spends between this check and the clawback.
            available = await queries.available_locked(conn, uid)
            if credits > available:
                return Text(text=t(ctx.lang, "admin.deduct_refused", user_id=uid,
                                   available=tn(ctx.lang, "n.credits", available)))
            await deps.wallet.clawback(uid, credits, key=key, note=reason or None,
                                       actor=ctx.actor, conn=conn)
        await enqueue(conn, user_id=uid, kind=done, now=deps.clock(),
                      payload={"credits": credits, "reason": reason})
    available = (await deps.wallet.balance(uid)).available
    return Text(text=t(ctx.lang, done, credits=tn(ctx.lang, "n.credits", credits), user_id=uid,
                       balance=available))


async def user_info(deps: ChatDeps, ctx: Ctx, args: list[str]) -> Text:
    if len(args) != 1:
        return Text(text=t(ctx.lang, "admin.usage_user"))
    uid = await resolve_user(deps, args[0])
    async with read(deps.engine) as conn:
        user = await queries.user_row(conn, uid)
        names = [f"{channel}:{external_id}"
                 for channel, external_id in await queries.identities_of(conn, uid)]
    bal = await deps.wallet.balance(uid)
    lines = [t(ctx.lang, "admin.user", user_id=uid, tier=user.tier,
               language=user.language or "-", since=f"{user.created_at:%Y-%m-%d}",
               identities=", ".join(names) or "-", available=bal.available, held=bal.held,
               debt=bal.debt)]
    jobs = await deps.jobs.recent(uid, 5)
    lines.append(t(ctx.lang, "admin.user_jobs" if jobs else "admin.user_no_jobs"))
    lines += [t(ctx.lang, "admin.user_job", job_id=j.id, model=model_name(deps, j.model_id),
                state=t(ctx.lang, f"state.{j.state}"),
                credits=tn(ctx.lang, "n.credits", j.credits),
                date=f"{j.created_at:%Y-%m-%d %H:%M}") for j in jobs]
    lines.append(await _membership_line(deps, ctx, uid))
    async with read(deps.engine) as conn:
        orders = await recent_for_user(conn, uid, 5)
    lines.append(t(ctx.lang, "admin.user_payments" if orders else "admin.user_no_payments"))
    lines += [t(ctx.lang, "admin.user_payment", provider=o.provider, order_id=o.order_id,
                amount=f"{o.amount} {o.currency}", credits=tn(ctx.lang, "n.credits", o.credits),
                state=t(ctx.lang, f"payment_state.{o.state}"),
                date=f"{o.created_at:%Y-%m-%d %H:%M}") for o in orders]
    return Text(text="\n".join(lines))


async def code(deps: ChatDeps, ctx: Ctx, args: list[str]) -> Text:
    membership: tuple[str, int] | None = None
    if args and ":" in args[-1]:  # TIER:DAYS, last
        name, _, count = args[-1].partition(":")
        if name not in deps.config.tiers or name == "free":
            raise Explained("admin.bad_tier", tier=name[:32], tiers=_paid_tiers(deps))
        membership, args = (name, number(count, MAX_DAYS)), args[:-1]
    if not 1 <= len(args) <= 3:
        return Text(text=t(ctx.lang, "admin.usage_code"))
    credits = number(args[0], MAX_CREDITS)
    uses = number(args[1], MAX_USES) if len(args) > 1 else 1
    days = number(args[2], MAX_DAYS) if len(args) > 2 else None
    expires_at = deps.clock() + timedelta(days=days) if days else None
    made = await deps.wallet.create_code(
        credits, max_uses=uses, expires_at=expires_at, created_by=ctx.actor,
        membership_tier=membership[0] if membership else None,
        membership_days=membership[1] if membership else None)
    expiry = (t(ctx.lang, "admin.code_expires", date=f"{expires_at:%Y-%m-%d %H:%M} UTC")
              if expires_at else t(ctx.lang, "admin.code_forever"))
    lines = [t(ctx.lang, "admin.code", code=made.code,
               credits=tn(ctx.lang, "n.credits", made.credits),
               uses=tn(ctx.lang, "n.uses", made.max_uses), expiry=expiry)]
    if membership is not None:
        lines.append(t(ctx.lang, "admin.code_membership", tier=membership[0],
                       days=tn(ctx.lang, "n.days", membership[1])))
    return Text(text="\n".join(lines))


def _paid_tiers(deps: ChatDeps) -> str:
    return ", ".join(deps.config.tiers)


async def _membership_line(deps: ChatDeps, ctx: Ctx, uid: int) -> str:
    m = await deps.memberships.current(uid) if deps.memberships is not None else None
    if m is None:
        return t(ctx.lang, "admin.user_no_plan")
    return t(ctx.lang, "admin.user_plan", tier=m.tier, plan=m.plan_id or "-", source=m.source,
             state=m.state, date=f"{m.ends_at:%Y-%m-%d %H:%M} UTC")


async def tier(deps: ChatDeps, ctx: Ctx, args: list[str]) -> Text:
    """`/tier USER TIER DAYS`: a manual membership (TIER free, or 0 days, ends it)."""
    if len(args) != 3 or deps.memberships is None:
        return Text(text=t(ctx.lang, "admin.usage_tier", tiers=_paid_tiers(deps)))
    uid, name = await resolve_user(deps, args[0]), args[1]
    if name not in deps.config.tiers:
        raise Explained("admin.bad_tier", tier=name[:32], tiers=_paid_tiers(deps))
    days = 0 if args[2] == "0" else number(args[2], MAX_DAYS)
    m = await deps.memberships.manual(uid, name, days, actor=ctx.actor)
    if m is None:
        return Text(text=t(ctx.lang, "admin.tier_free", user_id=uid))
    return Text(text=t(ctx.lang, "admin.tier_set", user_id=uid, tier=m.tier,
                       date=f"{m.ends_at:%Y-%m-%d %H:%M} UTC"))


async def refund(deps: ChatDeps, ctx: Ctx, args: list[str]) -> Text:
    if len(args) != 1 or len(args[0]) > 128:
        return Text(text=t(ctx.lang, "admin.usage_refund"))
    if deps.topup is None:
        return Text(text=t(ctx.lang, "admin.refund_off"))
    credits = await deps.topup.refund_stars(args[0], actor=ctx.actor)
    return Text(text=t(ctx.lang, "admin.refunded", credits=tn(ctx.lang, "n.credits", credits)))
