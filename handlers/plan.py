"""/plan: the membership plans side by side, the user's own, and Subscribe / Upgrade / Cancel.

Over the `Plans` port (`payments/`) and `memberships` (reads). The view lists every tier with what
it unlocks (jobs at once, clothing photos per try-on, models) and each plan's price, then the
user's plan: its renewal (or end) date, a change waiting for the next renewal, and the credits
this period. Buttons (the typed codec): `plan:<id>` for each other plan (Subscribe when nothing
renews, Upgrade / Switch when a subscription runs), `plancancel` when one renews.

- `plan:<id>` with nothing renewing: the ways to pay (straight to the checkout when there is
  one); with a Stripe or Creem subscription: the change of plan, at the next renewal or (an
  upgrade under `upgrade_policy = "immediate"`) now; a Stars subscription cannot change price,
  so the user is told to cancel it and subscribe to the other plan.
- `subscribe:<plan>:<method>`: the payment page (Stripe, Creem) or Stars invoice link, as a
  button.
- `plancancel` asks first; `plancancel:yes` cancels: the tier stays to the end of the period.

Plan ids and methods travel in button data, so they are checked against the config and the
port again when pressed. `news` renders the memberships' outbox messages (kinds in
`memberships/__init__`), dates in the bot's time zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.config import PlanConfig, TierConfig
from memberships import Membership

from .account import local
from .choices import Choice, encode
from .deps import ChatDeps, Ctx
from .errors import error_text
from .messages import CATALOGUES, t, tn
from .types import Button, Outbound, StarsPayment, Text
from .ui import button, fits, main_menu, question

__all__ = ["cancel", "news", "pick", "stars_paid", "subscribe", "tier_name", "view"]

METHODS = ("stripe", "creem", "stars")
# Tiers named in the catalogue (`tier.<name>`; others show their config name); the outbox kinds
# of `memberships/` rendered by `news` (each a catalogue key of its own).
NAMED_TIERS = ("free", "plus", "pro")
NEWS = ("started", "renewed", "credited", "upgraded", "change_scheduled", "canceled", "manual",
        "resumed", "reminder", "ended")


def tier_name(lang: str, tier: str) -> str:
    """The tier's display name from the catalogue (`tier.<name>`), else the name itself."""
    key = f"tier.{tier}"
    return t(lang, key) if key in CATALOGUES["en"] else tier.title()


def _unlocks(deps: ChatDeps, lang: str, rules: TierConfig) -> str:
    if "*" in rules.models:
        models = t(lang, "plan.models_all")
    else:
        names = [m.name for m in deps.catalogue.offered() if rules.allows(m.id)]
        models = t(lang, "plan.models_some", models=", ".join(names) or "-")
    return t(lang, "plan.unlocks", jobs=tn(lang, "n.videos", rules.concurrency),
             clothes=tn(lang, "n.clothing_photos", rules.max_clothes), models=models)


def _price(lang: str, plan: PlanConfig, stars_here: bool) -> str:
    text = t(lang, "plan.price", price=plan.price, currency=plan.currency) if plan.price else ""
    if plan.stars and stars_here:  # Stars prices only where the channel takes invoices
        stars = t(lang, "plan.price_stars", stars=plan.stars)
        text = t(lang, "plan.price_or", a=text, b=stars) if text else stars
    return text


def _plan_line(deps: ChatDeps, ctx: Ctx, plan: PlanConfig) -> str:
    lang = ctx.lang
    return t(lang, "plan.line", name=tier_name(lang, plan.tier),
             credits=tn(lang, "n.credits", plan.credits),
             days=tn(lang, "n.days", plan.period_days),
             price=_price(lang, plan, ctx.caps.invoices),
             unlocks=_unlocks(deps, lang, deps.config.tier(plan.tier)))


async def _current(deps: ChatDeps, ctx: Ctx) -> Membership | None:
    return await deps.memberships.current(ctx.user_id) if deps.memberships else None


def _mine(deps: ChatDeps, ctx: Ctx, m: Membership | None) -> str:
    if m is None:
        return t(ctx.lang, "plan.current_free")
    name = tier_name(ctx.lang, m.tier)
    date = local(deps, m.period_end if m.renews else m.ends_at)
    when = t(ctx.lang, "plan.renews" if m.renews else "plan.ends", date=date)
    lines = [t(ctx.lang, "plan.current", name=name, when=when,
               credits=tn(ctx.lang, "n.credits", m.credits_this_period))
             if m.credits_this_period else t(ctx.lang, "plan.current_gift", name=name, when=when)]
    nxt = deps.config.plan(m.next_plan_id) if m.next_plan_id else None
    if nxt is not None:
        lines.append(t(ctx.lang, "plan.next", name=tier_name(ctx.lang, nxt.tier),
                       date=local(deps, m.period_end)))
    return "\n".join(lines)


async def view(deps: ChatDeps, ctx: Ctx) -> Text:
    """The plans side by side, the user's own, and what they can do about it."""
    lang, free = ctx.lang, deps.config.tier("free")
    m = await _current(deps, ctx)
    lines = [t(lang, "plan.title"),
             t(lang, "plan.free_line", name=tier_name(lang, "free"),
               unlocks=_unlocks(deps, lang, free)),
             *(_plan_line(deps, ctx, p) for p in deps.config.plans), "", _mine(deps, ctx, m)]
    if not deps.config.plans or deps.plans is None:
        lines.append(t(lang, "plan.none"))
        return Text(text="\n".join(lines), buttons=main_menu(lang))
    renewing = m is not None and m.renews
    tiers = list(deps.config.tiers)
    rows: list[tuple[Button, ...]] = []
    for p in deps.config.plans:
        if m is not None and p.id in (m.plan_id, m.next_plan_id) and renewing:
            continue
        if not fits(Choice("subscribe", (p.id, max(METHODS, key=len)))):
            continue
        if not renewing and not _methods(deps, ctx, p):
            continue  # not sold on this channel
        key = "btn.plan_subscribe"
        if renewing and m is not None:
            up = tiers.index(p.tier) > tiers.index(m.tier) if m.tier in tiers else True
            key = "btn.plan_upgrade" if up else "btn.plan_switch"
        rows.append((button(lang, key, Choice("plan", (p.id,)),
                            name=tier_name(lang, p.tier)),))
    if renewing:
        rows.append((button(lang, "btn.plan_cancel", Choice("plancancel")),))
    if not rows:
        lines.append(t(lang, "plan.none"))
        return Text(text="\n".join(lines), buttons=main_menu(lang))
    return question(lang, "\n".join(lines), tuple(rows))


def _methods(deps: ChatDeps, ctx: Ctx, plan: PlanConfig) -> list[str]:
    """The ways to pay for `plan` here; a Stars link only where the channel shows invoices."""
    if deps.plans is None:
        return []
    return [m for m in deps.plans.plan_methods(ctx.channel, plan)
            if m != "stars" or ctx.caps.invoices]


async def pick(deps: ChatDeps, ctx: Ctx, plan_id: str) -> list[Outbound]:
    """`plan:<id>` pressed: subscribe (the ways to pay), or change the running subscription."""
    plan = deps.config.plan(plan_id)
    if plan is None or deps.plans is None:
        return [Text(text=t(ctx.lang, "stale")), await view(deps, ctx)]
    name = tier_name(ctx.lang, plan.tier)
    m = await _current(deps, ctx)
    if m is not None and m.renews:
        if m.source == "stars":
            return [Text(text=t(ctx.lang, "plan.stars_fixed", name=name))]
        try:
            after = await deps.plans.change_plan(ctx.user_id, plan.id)
        except Exception as exc:
            return [Text(text=error_text(ctx.lang, exc))]
        if after.plan_id == plan.id:
            return [Text(text=t(ctx.lang, "plan.changed_now", name=name),
                         buttons=main_menu(ctx.lang))]
        return [Text(text=t(ctx.lang, "plan.changed_next", name=name,
                            date=local(deps, after.period_end)), buttons=main_menu(ctx.lang))]
    methods = _methods(deps, ctx, plan)
    if not methods:
        return [Text(text=t(ctx.lang, "plan.none"), buttons=main_menu(ctx.lang))]
    if len(methods) == 1:
        return await subscribe(deps, ctx, plan.id, methods[0])
    rows = tuple((Button(label=t(ctx.lang, f"method.{x}") if x in METHODS else x,
                         data=encode(Choice("subscribe", (plan.id, x)))),) for x in methods)
    return [question(ctx.lang, t(ctx.lang, "plan.method", name=name), rows)]


async def subscribe(deps: ChatDeps, ctx: Ctx, plan_id: str, method: str) -> list[Outbound]:
    """`subscribe:<plan>:<method>` pressed: the payment page or the Stars invoice link."""
    plan = deps.config.plan(plan_id)
    if plan is None or deps.plans is None or method not in _methods(deps, ctx, plan):
        return [Text(text=t(ctx.lang, "stale")), await view(deps, ctx)]
    name = tier_name(ctx.lang, plan.tier)
    try:
        url = await deps.plans.subscribe(
            user_id=ctx.user_id, channel=ctx.channel, plan_id=plan.id, method=method,
            title=t(ctx.lang, "plan.item", name=name),
            description=t(ctx.lang, "plan.item_description",
                          credits=tn(ctx.lang, "n.credits", plan.credits),
                          days=tn(ctx.lang, "n.days", plan.period_days)))
    except Exception as exc:
        return [Text(text=error_text(ctx.lang, exc))]
    label = (t(ctx.lang, "plan.pay_stars", stars=plan.stars) if method == "stars"
             else t(ctx.lang, "btn.pay", price=plan.price, currency=plan.currency))
    return [Text(text=t(ctx.lang, "plan.link", name=name,
                        credits=tn(ctx.lang, "n.credits", plan.credits),
                        days=tn(ctx.lang, "n.days", plan.period_days)),
                 buttons=((Button(label=label, url=url),),))]


async def cancel(deps: ChatDeps, ctx: Ctx, confirmed: bool) -> list[Outbound]:
    """`plancancel` asks; `plancancel:yes` stops the renewals (the tier stays to the end)."""
    m = await _current(deps, ctx)
    if m is None or not m.renews or deps.plans is None:
        return [Text(text=t(ctx.lang, "plan.not_subscribed"), buttons=main_menu(ctx.lang))]
    name, date = tier_name(ctx.lang, m.tier), local(deps, m.period_end)
    if not confirmed:
        yes = button(ctx.lang, "btn.plan_cancel_yes", Choice("plancancel", ("yes",)))
        return [question(ctx.lang, t(ctx.lang, "plan.cancel_ask", name=name, date=date),
                         ((yes,),))]
    try:
        after = await deps.plans.cancel_subscription(ctx.user_id)
    except Exception as exc:
        return [Text(text=error_text(ctx.lang, exc))]
    return [Text(text=t(ctx.lang, "plan.canceled", name=name, date=local(deps, after.ends_at)),
                 buttons=main_menu(ctx.lang))]


async def stars_paid(deps: ChatDeps, ctx: Ctx, payment: StarsPayment) -> Text:
    """A Stars subscription's period paid (the first or a renewal); the details follow as the
    membership's own message."""
    assert payment.subscription_expires is not None
    if deps.plans is None:
        return Text(text=error_text(ctx.lang, RuntimeError("Stars period without payments")))
    credits = await deps.plans.stars_subscription_paid(
        ctx.user_id, charge_id=payment.charge_id, payload=payment.payload,
        total_amount=payment.total_amount, currency=payment.currency,
        expires_at=payment.subscription_expires)
    return Text(text=t(ctx.lang, "plan.paid" if credits else "stars.already"))


def _date(deps: ChatDeps, value: Any) -> str:
    return local(deps, datetime.fromisoformat(str(value)))


def news(deps: ChatDeps, lang: str, kind: str, payload: dict[str, Any]) -> Text | None:
    """The memberships' outbox messages as text; None for a kind that is not theirs."""
    plan = deps.config.plan(str(payload.get("plan_id"))) if payload.get("plan_id") else None
    tier = str(payload.get("tier") or (plan.tier if plan else "free"))
    name = tier_name(lang, tier)
    credits = tn(lang, "n.credits", int(payload.get("credits") or 0))
    if kind in ("membership.started", "membership.renewed"):
        text = t(lang, kind, name=name, credits=credits, date=_date(deps, payload["renews_at"]))
    elif kind in ("membership.credited", "membership.upgraded"):
        text = t(lang, kind, name=name, credits=credits)
    elif kind in ("membership.change_scheduled",):
        text = t(lang, kind, name=name, date=_date(deps, payload["at"]))
    elif kind in ("membership.canceled", "membership.manual"):
        text = t(lang, kind, name=name, date=_date(deps, payload["ends_at"]))
    elif kind in ("membership.resumed", "membership.reminder"):
        text = t(lang, kind, name=name, date=_date(deps, payload["renews_at"]))
    elif kind == "membership.ended":
        text = t(lang, kind, name=name)
    elif kind == "membership.reversed":
        key = "pay.reversed_dispute" if payload["reason"] == "dispute" else "pay.reversed_refund"
        lines = [t(lang, key, credits=credits)]
        if int(payload.get("debt") or 0) > 0:
            lines.append(t(lang, "pay.debt", debt=tn(lang, "n.credits", int(payload["debt"]))))
        if payload.get("ended"):
            lines.append(t(lang, "membership.reversed_ended"))
        text = "\n".join(lines)
    else:
        return None
    return Text(text=text, buttons=main_menu(lang))
