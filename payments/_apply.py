"""One verified event applied to its order, inside the caller's write transaction.

The order row is found (our order id first, then the provider's ids) and locked, so events for
one order are applied one after the other even when they arrive together. What an event does:

- paid: grants the order's credits once (wallet key `payment:<provider>:<order>`, expiring after
  the order's `expires_days`), marks it paid and queues `payment.credited`. An order we never
  made (a payment link, a lost checkout row) is created from the event when its user exists, its
  package exists and the price paid is the package's; otherwise nothing is credited and the
  event is recorded with a note ("problem"). A second payment event for a paid order credits
  nothing. A Stars payment for an invoice already paid, or paid by someone else, becomes an order
  of its own: the payer paid real Stars and Telegram refunds them, not the invoice's owner.
- refund: raises the cumulative amount refunded (Stripe sends the total, Creem each refund).
- dispute: marks the order disputed and tells every admin (`admin.dispute`), once.

After each of these the credits taken back are brought to what the refunds and disputes so far
call for (`clawback_target`), with the wallet's clawback (debt where spent) and a
`payment.reversed` message. Refunds and disputes that arrive before the payment are kept on the
order and acted on when it is paid, so order of arrival does not change the end state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.config import PackageConfig
from core.outbox import enqueue
from wallet import Wallet, queries

from ._events import PaymentEvent
from ._money import STARS_CURRENCY, clawback_target, new_order_id, to_minor
from .tables import payments

__all__ = ["Context", "Outcome", "apply", "grant_key"]

MAX_EVENT_IDS = 50  # event ids kept on an order row; more are only in payment_events
P = payments.c


@dataclass(frozen=True, slots=True)
class Outcome:
    outcome: str  # applied | ignored | problem | duplicate
    order_id: str | None = None
    credited: int = 0
    clawed: int = 0
    note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    wallet: Wallet
    packages: Mapping[str, PackageConfig]
    admins: Sequence[int]  # user ids told of disputes
    now: datetime
    actor: str | None = None


def grant_key(provider: str, order_id: str) -> str:
    return f"payment:{provider}:{order_id}"


async def apply(conn: AsyncConnection, ctx: Context, ev: PaymentEvent) -> Outcome:
    row = await _find(conn, ev)
    if ev.action == "ignore":
        return Outcome("ignored", row.order_id if row is not None else None)
    if ev.action == "paid":
        outcome = await _paid(conn, ctx, ev, row)
    elif row is None:
        return Outcome("problem", note="no order of ours matches this event")
    elif ev.action == "refund":
        outcome = await _refund(conn, ctx, ev, row)
    else:
        outcome = await _dispute(conn, ctx, ev, row)
    if outcome.order_id is not None:
        await _remember(conn, outcome.order_id, ev.event_id)
    return outcome


async def _find(conn: AsyncConnection, ev: PaymentEvent) -> Any:
    tries = [(P.order_id, ev.order_id), (P.checkout_id, ev.checkout_id),
             (P.charge_id, ev.charge_id), (P.payment_ref, ev.payment_ref)]
    for column, value in tries:
        if value is None:
            continue
        row = (await conn.execute(select(payments).where(
            and_(P.provider == ev.provider, column == value))
            .order_by(P.id).limit(1).with_for_update())).first()
        if row is not None:
            return row
    return None


async def _update(conn: AsyncConnection, row: Any, now: datetime, **values: Any) -> Any:
    await conn.execute(update(payments).where(P.id == row.id).values(updated_at=now, **values))
    return (await conn.execute(select(payments).where(P.id == row.id))).one()


async def _remember(conn: AsyncConnection, order_id: str, event_id: str) -> None:
    seen = (await conn.execute(select(P.event_ids).where(P.order_id == order_id))).scalar()
    if seen is None or event_id in seen or len(seen) >= MAX_EVENT_IDS:
        return
    await conn.execute(update(payments).where(P.order_id == order_id)
                       .values(event_ids=[*seen, event_id]))


def _ids(ev: PaymentEvent, row: Any) -> dict[str, Any]:
    """The provider ids the row lacks and the event brings."""
    return {name: getattr(ev, name) for name in ("checkout_id", "payment_ref", "charge_id")
            if getattr(ev, name) is not None and getattr(row, name) is None}


def _mismatch(ev: PaymentEvent, *, amount: int | None, currency: str | None,
              product: str | None) -> str | None:
    """Why a payment event does not pay for what was sold, or None. Creem charges the price of
    its own product (tax included, as set up there): the product is what must match."""
    if ev.provider == "creem":
        if product is None or ev.product_id == product:
            return None
        return f"product {ev.product_id!r} paid, expected {product!r}"
    if (ev.amount, ev.currency) != (amount, currency):
        return f"paid {ev.amount} {ev.currency}, expected {amount} {currency}"
    return None


async def _new_order(conn: AsyncConnection, ctx: Context, ev: PaymentEvent,
                     order_id: str) -> tuple[Any, str | None]:
    """An order made from a paid event we have no row for, or the reason it cannot be."""
    if ev.user_id is None or not await queries.user_exists(conn, ev.user_id):
        return None, f"unknown user {ev.user_id}"
    pkg = ctx.packages.get(ev.package_id or "")
    if pkg is None:
        return None, f"unknown package {ev.package_id!r}"
    if ev.credits is not None and ev.credits != pkg.credits:
        return None, f"{ev.credits} credits named, package {pkg.id!r} has {pkg.credits}"
    if ev.provider == "stars":
        amount, currency = pkg.stars, STARS_CURRENCY
    else:
        amount, currency = to_minor(pkg.price, pkg.currency), pkg.currency
    problem = _mismatch(ev, amount=amount, currency=currency, product=pkg.creem_product_id)
    if problem is not None:
        return None, problem
    new_id = (await conn.execute(insert(payments).values(
        order_id=order_id, provider=ev.provider, user_id=ev.user_id, package_id=pkg.id,
        credits=pkg.credits, expires_days=pkg.expires_days, amount=ev.amount or amount,
        currency=ev.currency or currency, event_ids=[], created_at=ctx.now,
        updated_at=ctx.now))).inserted_primary_key
    assert new_id is not None
    return (await conn.execute(select(payments).where(P.id == new_id[0]))).one(), None


async def _paid(conn: AsyncConnection, ctx: Context, ev: PaymentEvent, row: Any) -> Outcome:
    order_id = ev.order_id or new_order_id()
    if row is not None and ev.provider == "stars" and (
            row.state != "pending" or row.user_id != ev.user_id):
        row, order_id = None, new_order_id()
    if row is None:
        taken = await conn.execute(select(P.id).where(P.order_id == order_id))
        if taken.first() is not None:  # our order id, but another provider's order
            order_id = new_order_id()
        row, problem = await _new_order(conn, ctx, ev, order_id)
        if problem is not None:
            return Outcome("problem", note=problem)
    else:
        # A package edited or gone since checkout: the order stands as it was sold.
        pkg = ctx.packages.get(row.package_id)
        problem = _mismatch(ev, amount=row.amount, currency=row.currency,
                            product=pkg.creem_product_id if pkg and pkg.creem_product_id
                            else None)
        if problem is not None:
            await _update(conn, row, ctx.now, problem=problem[:500], **_ids(ev, row))
            return Outcome("problem", row.order_id, note=problem)
    if row.state != "pending":
        await _update(conn, row, ctx.now, **_ids(ev, row))
        return Outcome("duplicate", row.order_id, note="order already paid")
    expires = ctx.now + timedelta(days=row.expires_days) if row.expires_days else None
    grant = await ctx.wallet.grant(
        row.user_id, row.credits, source="purchase", key=grant_key(row.provider, row.order_id),
        expires_at=expires, note=f"{row.provider} {row.package_id}", conn=conn)
    paid = {"amount": ev.amount, "currency": ev.currency} if ev.provider == "creem" and \
        ev.amount is not None and ev.currency else {}
    row = await _update(conn, row, ctx.now, state="paid", paid_at=ctx.now, problem=None,
                        **paid, **_ids(ev, row))
    await enqueue(conn, user_id=row.user_id, kind="payment.credited", now=ctx.now, payload={
        "credits": row.credits, "package_id": row.package_id, "provider": row.provider})
    clawed = await _reconcile(conn, ctx, row)
    return Outcome("applied", row.order_id, credited=row.credits if grant.created else 0,
                   clawed=clawed)


async def _refund(conn: AsyncConnection, ctx: Context, ev: PaymentEvent, row: Any) -> Outcome:
    if ev.refund_total is not None:
        refunded = max(row.refunded, ev.refund_total)
    elif ev.refund_amount is not None:
        refunded = row.refunded + ev.refund_amount
    else:  # a refund that does not say how much: the conservative reading is all of it
        refunded = row.amount
    row = await _update(conn, row, ctx.now, refunded=min(refunded, row.amount), **_ids(ev, row))
    clawed = await _reconcile(conn, ctx, row)
    note = "refund kept until the payment arrives" if row.state == "pending" else None
    return Outcome("applied", row.order_id, clawed=clawed, note=note)


async def _dispute(conn: AsyncConnection, ctx: Context, ev: PaymentEvent, row: Any) -> Outcome:
    first = row.disputed_at is None
    row = await _update(conn, row, ctx.now, disputed_at=row.disputed_at or ctx.now,
                        **_ids(ev, row))
    clawed = await _reconcile(conn, ctx, row)
    if first:
        for admin in ctx.admins:
            await enqueue(conn, user_id=admin, kind="admin.dispute", now=ctx.now, payload={
                "provider": row.provider, "order_id": row.order_id, "user_id": row.user_id,
                "credits": row.credits})
    return Outcome("applied", row.order_id, clawed=clawed)


async def _reconcile(conn: AsyncConnection, ctx: Context, row: Any) -> int:
    """Takes back what the order's refunds and disputes call for and has not been taken."""
    if row.state == "pending":
        return 0
    disputed = row.disputed_at is not None
    target = clawback_target(credits=row.credits, amount=row.amount, refunded=row.refunded,
                             disputed=disputed)
    delta = target - row.clawed
    if delta > 0:
        reason = "dispute" if disputed else "refund"
        taken = await ctx.wallet.clawback(
            row.user_id, delta, key=f"{grant_key(row.provider, row.order_id)}:clawback:{target}",
            note=f"{reason} of {row.provider} order {row.order_id}", actor=ctx.actor, conn=conn)
        await enqueue(conn, user_id=row.user_id, kind="payment.reversed", now=ctx.now,
                      payload={"credits": delta, "debt": taken.debt, "reason": reason})
    state = "disputed" if disputed else "refunded" if row.refunded > 0 else "paid"
    await _update(conn, row, ctx.now, state=state, clawed=max(target, row.clawed))
    return max(int(delta), 0)
