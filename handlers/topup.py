"""/topup and Telegram Stars payments, over the `TopUp` port that `payments/` implements.

Without a `TopUp` (payments not configured) /topup lists the packages and says how else to get
credits. With one: a button per package; then, when the channel offers several ways to pay, a
button per way; then the checkout: a payment page link (Stripe, Creem) or a Stars invoice.
Package ids and method names travel in button data, so they are checked against the config and
the port again when pressed. The port returns data; the words are written here, in the buyer's
language: the item's title and description go with the checkout (Stripe's payment page shows
them) and onto the Stars invoice.
"""

from __future__ import annotations

from core.config import PackageConfig

from .choices import Choice, encode
from .deps import ChatDeps, Ctx
from .errors import error_text
from .messages import t, tn
from .types import Button, Capabilities, Invoice, Outbound, StarsPayment, Text
from .ui import fits, main_menu, question

__all__ = ["METHODS", "choose_method", "menu", "stars_paid"]

METHODS = ("stripe", "creem", "stars")  # the ways to pay the catalogue names


def _line(lang: str, p: PackageConfig, caps: Capabilities) -> str:
    """A package and its prices; the Stars price only where Stars can be paid (a channel
    that shows in-chat invoices)."""
    if p.stars and caps.invoices:
        return t(lang, "topup.package_stars", credits=tn(lang, "n.credits", p.credits),
                 price=p.price, currency=p.currency, stars=p.stars)
    return t(lang, "topup.package", credits=tn(lang, "n.credits", p.credits), price=p.price,
             currency=p.currency)


def _methods(deps: ChatDeps, ctx: Ctx) -> list[str]:
    """The ways to pay on the user's channel; an in-chat invoice only where the channel says
    it shows one (its capabilities, not its name)."""
    if deps.topup is None:
        return []
    return [m for m in deps.topup.methods(ctx.channel) if m != "stars" or ctx.caps.invoices]


def menu(deps: ChatDeps, ctx: Ctx) -> Text:
    packages = deps.config.packages
    listing = [t(ctx.lang, "topup.title"), *(_line(ctx.lang, p, ctx.caps) for p in packages)]
    if not packages or not _methods(deps, ctx):
        return Text(text="\n".join([*(listing if packages else []), t(ctx.lang, "topup.none")]),
                    buttons=main_menu(ctx.lang))
    rows = tuple((Button(label=_line(ctx.lang, p, ctx.caps),
                         data=encode(Choice("topup", (p.id,)))),)
                 for p in packages if fits(Choice("pay", (p.id, max(METHODS, key=len)))))
    return question(ctx.lang, t(ctx.lang, "topup.choose"), rows)


def _item(lang: str, p: PackageConfig) -> tuple[str, str]:
    """The item's title and description, for the payment page and the Stars invoice."""
    credits = tn(lang, "n.credits", p.credits)
    if p.expires_days:
        text = t(lang, "pay.item_description", credits=credits,
                 days=tn(lang, "n.days", p.expires_days))
    else:
        text = t(lang, "pay.item_description_forever", credits=credits)
    return tn(lang, "pay.item", p.credits), text


def _package(deps: ChatDeps, package_id: str) -> PackageConfig | None:
    return next((p for p in deps.config.packages if p.id == package_id), None)


async def choose_method(deps: ChatDeps, ctx: Ctx, package_id: str) -> list[Outbound]:
    """`p:<package>` pressed: the ways to pay, or straight to the checkout if there is one."""
    package, methods = _package(deps, package_id), _methods(deps, ctx)
    if package is None or not methods:
        return [Text(text=t(ctx.lang, "stale")), menu(deps, ctx)]
    if len(methods) == 1:
        return await checkout(deps, ctx, package.id, methods[0])
    rows = tuple((Button(label=t(ctx.lang, f"method.{m}") if m in METHODS else m,
                         data=encode(Choice("pay", (package.id, m)))),) for m in methods)
    return [question(ctx.lang, t(ctx.lang, "topup.method"), rows)]


async def checkout(deps: ChatDeps, ctx: Ctx, package_id: str, method: str) -> list[Outbound]:
    """`$:<package>:<method>` pressed: a payment link or a Stars invoice."""
    package = _package(deps, package_id)
    if package is None or deps.topup is None or method not in _methods(deps, ctx):
        return [Text(text=t(ctx.lang, "stale")), menu(deps, ctx)]
    title, description = _item(ctx.lang, package)
    try:
        result = await deps.topup.checkout(user_id=ctx.user_id, channel=ctx.channel,
                                           package_id=package.id, method=method, title=title,
                                           description=description)
    except Exception as exc:
        return [Text(text=error_text(ctx.lang, exc))]
    if not isinstance(result, str):
        return [Invoice(title=title, description=description, payload=result.payload,
                        stars=result.stars)]
    pay = Button(label=t(ctx.lang, "btn.pay", price=package.price, currency=package.currency),
                 url=result)
    credits = tn(ctx.lang, "n.credits", package.credits)
    return [Text(text=t(ctx.lang, "topup.link", credits=credits), buttons=((pay,),))]


async def stars_paid(deps: ChatDeps, ctx: Ctx, payment: StarsPayment) -> Text:
    if deps.topup is None:  # cannot be: Stars invoices come from the TopUp
        return Text(text=error_text(ctx.lang, RuntimeError("Stars payment without payments")))
    credits = await deps.topup.stars_paid(ctx.user_id, payment)
    if credits == 0:
        return Text(text=t(ctx.lang, "stars.already"))
    available = (await deps.wallet.balance(ctx.user_id)).available
    return Text(text=tn(ctx.lang, "stars.thanks", credits, balance=available),
                buttons=main_menu(ctx.lang))
