"""The money rules, each a function over an open write transaction.

Invariant kept by every function here: available = Σ grant.remaining − debt, and debt > 0 only
while every remaining is 0 (credits that come back to a user in debt pay the debt first).
Nothing is written before every check that can refuse the call has passed, so a refusal leaves a
caller's surrounding transaction untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, update

from core.prepared import Prepared

from . import _book as book
from ._exceptions import (
    HoldStateError,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidAmount,
)
from ._types import Clawback, Grant, Hold, HoldStatus
from .tables import OPEN, clawbacks, grants, hold_parts, holds

_GRANT_BY_KEY = Prepared(select(grants).where(grants.c.key == bindparam("key")))
_OPEN_SOONEST_FIRST = Prepared(
    select(grants.c.id, grants.c.remaining, grants.c.expires_at)
    .where(grants.c.user_id == bindparam("uid"), OPEN)
    .order_by(grants.c.expires_at.asc().nulls_last(), grants.c.id)
)
_OPEN_NEWEST_FIRST = Prepared(
    select(grants.c.id, grants.c.remaining, grants.c.expires_at)
    .where(grants.c.user_id == bindparam("uid"), OPEN)
    .order_by(grants.c.id.desc())
)
_PARTS = Prepared(
    select(hold_parts.c.grant_id, hold_parts.c.credits, grants.c.remaining,
           grants.c.expires_at)
    .join(grants, grants.c.id == hold_parts.c.grant_id)
    .where(hold_parts.c.hold_id == bindparam("hid"))
    .order_by(grants.c.expires_at.asc().nulls_last(), grants.c.id)
)
_FINISH = Prepared(
    update(holds)
    .where(holds.c.id == bindparam("hid"))
    .values(status=bindparam("st"), spent=bindparam("sp"), finished_at=bindparam("at"))
)

def _insert(table: Table, *names: str, returning: bool = False) -> Prepared:
    stmt = insert(table).values({n: bindparam(n) for n in names})
    if returning:
        return Prepared(stmt.returning(table.c.id), columns=[table.c.id])
    return Prepared(stmt)


_INSERT_GRANT = _insert(grants, "user_id", "source", "key", "amount", "remaining",
                        "expires_at", "created_at", "note", returning=True)
_INSERT_HOLD = _insert(holds, "user_id", "ref", "credits", "status", "spent", "created_at",
                       "expires_at", returning=True)
_INSERT_PARTS = _insert(hold_parts, "hold_id", "grant_id", "credits")
_CLAWBACK_BY_KEY = Prepared(select(clawbacks).where(clawbacks.c.key == bindparam("key")))
_INSERT_CLAWBACK = _insert(clawbacks, "user_id", "key", "credits", "taken", "debt",
                           "created_at", returning=True)


def positive(credits: int) -> int:
    if not isinstance(credits, int) or isinstance(credits, bool) or credits <= 0:
        raise InvalidAmount(f"credits must be a positive integer, not {credits!r}")
    return credits


def grant_record(row: Any, *, created: bool) -> Grant:
    return Grant(row.id, row.user_id, row.source, row.key, row.amount, row.remaining,
                 row.expires_at, row.created_at, row.note, created)


def hold_record(row: Any) -> Hold:
    return Hold(row.id, row.user_id, row.ref, row.credits, HoldStatus(row.status), row.spent,
                row.created_at, row.expires_at)


def _expire_lapsed(
    acct: book.Account, rows: Sequence[Any], now: datetime,
) -> list[tuple[int, int]]:
    """Queues the expiry of lapsed grants among `rows`; returns their remaining changes."""
    changes = []
    for r in rows:
        if book.lapsed(r.expires_at, now):
            book.entry(acct, "expire", now, amount=-r.remaining, grant_id=r.id,
                       ref=f"grant:{r.id}")
            changes.append((r.id, 0))
    return changes


def grant(
    conn: Connection, now: datetime, user_id: int, credits: int, *, source: str, key: str,
    expires_at: datetime | None, note: str | None, actor: str | None,
) -> Grant:
    positive(credits)
    acct = book.lock(conn, user_id)
    row = _GRANT_BY_KEY.first(conn, key=key)
    if row is not None:
        if row.user_id != user_id or row.amount != credits:
            raise IdempotencyConflict(key)
        return grant_record(row, created=False)
    if expires_at is not None and expires_at <= now:
        raise InvalidAmount(f"grant {key!r} would expire at once ({expires_at.isoformat()})")
    paid = min(acct.debt, credits)
    values = {"user_id": user_id, "source": source, "key": key, "amount": credits,
              "remaining": credits - paid, "expires_at": expires_at, "created_at": now,
              "note": note}
    grant_id = _INSERT_GRANT.scalar(conn, **values)
    book.entry(acct, "grant", now, amount=credits, debt=-paid, ref=key, grant_id=grant_id,
               note=note, actor=actor)
    book.save(conn, acct)
    return Grant(grant_id, user_id, source, key, credits, credits - paid, expires_at, now,
                 note, True)


def hold(
    conn: Connection, now: datetime, user_id: int, credits: int, *, ref: str,
    ttl: timedelta | None,
) -> Hold:
    positive(credits)
    acct, row = book.lock_with_ref(conn, user_id, ref)
    if row is not None:
        if row.user_id != user_id or row.credits != credits:
            raise IdempotencyConflict(ref)
        return hold_record(row)
    rows = _OPEN_SOONEST_FIRST.all(conn, uid=user_id)
    live = [r for r in rows if not book.lapsed(r.expires_at, now)]
    usable = acct.available - sum(r.remaining for r in rows) + sum(r.remaining for r in live)
    if usable < credits:
        raise InsufficientCredits(available=usable, needed=credits)
    changes = _expire_lapsed(acct, rows, now)
    parts, need = [], credits
    for r in live:
        take = min(r.remaining, need)
        parts.append({"grant_id": r.id, "credits": take})
        changes.append((r.id, r.remaining - take))
        need -= take
        if not need:
            break
    expires_at = now + ttl if ttl is not None else None
    hold_id = _INSERT_HOLD.scalar(
        conn, user_id=user_id, ref=ref, credits=credits, status=HoldStatus.ACTIVE.value,
        spent=None, created_at=now, expires_at=expires_at)
    book.set_remaining(conn, changes)
    for p in parts:
        p["hold_id"] = hold_id
    _INSERT_PARTS.many(conn, parts)
    book.entry(acct, "hold", now, amount=-credits, held=credits, ref=ref, hold_id=hold_id)
    book.save(conn, acct)
    return Hold(hold_id, user_id, ref, credits, HoldStatus.ACTIVE, None, now, expires_at)


def finish(
    conn: Connection, now: datetime, hold_id: int, spend: int | None, target: HoldStatus,
) -> tuple[Hold, bool]:
    """Settles (spends `spend`, default all) or releases a hold; returns it and if it changed."""
    acct, row = book.lock_hold(conn, hold_id)
    wanted = "settle" if target is HoldStatus.SETTLED else "release"
    if row.status == target and (spend is None or spend == row.spent):
        return hold_record(row), False
    if row.status != HoldStatus.ACTIVE:
        raise HoldStateError(hold_id, row.status, wanted)
    spent = row.credits if spend is None else spend
    if isinstance(spent, bool) or not isinstance(spent, int) or not 0 <= spent <= row.credits:
        raise InvalidAmount(f"can spend 0..{row.credits} of hold {hold_id}, not {spend!r}")
    back = row.credits - spent
    paid = expired = 0
    if back:
        changes = []
        # Spend from the lots taken first; what is left goes back to the lots taken last.
        to_skip = spent
        for p in _PARTS.all(conn, hid=hold_id):
            ret = p.credits - min(p.credits, to_skip)
            to_skip -= p.credits - ret
            if not ret:
                continue
            if book.lapsed(p.expires_at, now):
                expired += ret
                continue
            pay = min(acct.debt - paid, ret)
            paid += pay
            changes.append((p.grant_id, p.remaining + ret - pay))
        book.set_remaining(conn, changes)
    _FINISH.run(conn, hid=hold_id, st=target.value, sp=spent, at=now)
    book.entry(acct, wanted, now, amount=back, held=-row.credits, debt=-paid, ref=row.ref,
               hold_id=hold_id)
    if expired:
        book.entry(acct, "expire", now, amount=-expired, ref=row.ref, hold_id=hold_id)
    book.save(conn, acct)
    return Hold(hold_id, row.user_id, row.ref, row.credits, target, spent, row.created_at,
                row.expires_at), True


def clawback(
    conn: Connection, now: datetime, user_id: int, credits: int, *, key: str,
    note: str | None, actor: str | None,
) -> Clawback:
    positive(credits)
    acct = book.lock(conn, user_id)
    row = _CLAWBACK_BY_KEY.first(conn, key=key)
    if row is not None:
        if row.user_id != user_id or row.credits != credits:
            raise IdempotencyConflict(key)
        return Clawback(row.id, user_id, key, credits, row.taken, row.debt)
    rows = _OPEN_NEWEST_FIRST.all(conn, uid=user_id)
    changes = _expire_lapsed(acct, rows, now)
    taken = 0
    for r in rows:
        if taken == credits or book.lapsed(r.expires_at, now):
            continue
        take = min(r.remaining, credits - taken)
        changes.append((r.id, r.remaining - take))
        taken += take
    book.set_remaining(conn, changes)
    shortfall = credits - taken
    claw_id = _INSERT_CLAWBACK.scalar(conn, user_id=user_id, key=key, credits=credits,
                                      taken=taken, debt=shortfall, created_at=now)
    book.entry(acct, "clawback", now, amount=-credits, debt=shortfall, ref=key, note=note,
               actor=actor)
    book.save(conn, acct)
    return Clawback(claw_id, user_id, key, credits, taken, shortfall)


def expire_user(conn: Connection, now: datetime, user_id: int) -> int:
    """Expires the unheld remainder of the user's lapsed grants; returns the credits expired."""
    acct = book.lock(conn, user_id)
    rows = _OPEN_SOONEST_FIRST.all(conn, uid=user_id)
    changes = _expire_lapsed(acct, rows, now)
    book.set_remaining(conn, changes)
    expired: int = -sum(e["amount"] for e in acct.entries)
    book.save(conn, acct)
    return expired
