"""Check-in and redeem codes: the two ways a chat user earns credits without paying.

Both reduce to an idempotent grant whose key says what it is for (`checkin:<user>:<local day>`,
`redeem:<code>:<user>`), so a double tap or a retried request can never pay twice. A code's
`uses` counter is raised with the code row locked (FOR UPDATE on PostgreSQL, the write lock on
SQLite), so concurrent redemptions never exceed `max_uses`.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, insert, select, update

from . import _book as book
from . import _ops as ops
from ._exceptions import (
    AlreadyRedeemed,
    CodeExpired,
    CodeNotFound,
    CodeUsedUp,
    IdempotencyConflict,
    InvalidAmount,
)
from ._types import CheckinResult, Grant, RedeemCode
from .tables import grants, redeem_codes, redemptions

# No 0/O or 1/I: codes are read off screens and typed by hand.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_CODE_SHAPE = re.compile(r"^[A-Z0-9][A-Z0-9-]{3,31}$")


def normalize_code(code: str) -> str:
    return code.strip().upper()


def new_code(length: int = 10) -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def checkin(
    conn: Connection, now: datetime, user_id: int, *, credits: int, zone: ZoneInfo,
    expires_days: int,
) -> CheckinResult:
    day = now.astimezone(zone).date()
    key = f"checkin:{user_id}:{day.isoformat()}"
    expires_at = now + timedelta(days=expires_days) if expires_days else None
    try:
        g = ops.grant(conn, now, user_id, credits, source="checkin", key=key,
                            expires_at=expires_at, note=None, actor=None)
    except IdempotencyConflict:
        # Checked in earlier today while the configured amount was different.
        row = conn.execute(select(grants).where(grants.c.key == key)).one()
        g = ops.grant_record(row, created=False)
    return CheckinResult(g.created, g.credits, day, g)


def create_code(
    conn: Connection, now: datetime, credits: int, *, max_uses: int,
    expires_at: datetime | None, credit_days: int | None, created_by: str | None,
    code: str | None,
) -> RedeemCode:
    ops.positive(credits)
    ops.positive(max_uses)
    if credit_days is not None:
        ops.positive(credit_days)
    if expires_at is not None and expires_at <= now:
        raise InvalidAmount("a redeem code must expire in the future")
    if code is None:
        code = new_code()
    else:
        code = normalize_code(code)
        if not _CODE_SHAPE.match(code):
            raise InvalidAmount("a code is 4-32 letters, digits or dashes")
    exists = conn.execute(
        select(redeem_codes.c.code).where(redeem_codes.c.code == code)).first()
    if exists is not None:
        raise IdempotencyConflict(code)
    conn.execute(insert(redeem_codes).values(
        code=code, credits=credits, max_uses=max_uses, uses=0, expires_at=expires_at,
        credit_days=credit_days, created_by=created_by, created_at=now,
    ))
    return RedeemCode(code, credits, max_uses, 0, expires_at, credit_days)


def redeem(conn: Connection, now: datetime, user_id: int, code: str) -> Grant:
    code = normalize_code(code)
    book.lock(conn, user_id)  # the user first, then the code: one lock order everywhere
    done = conn.execute(select(redemptions.c.user_id).where(
        redemptions.c.code == code, redemptions.c.user_id == user_id)).first()
    if done is not None:
        raise AlreadyRedeemed(code)
    row = conn.execute(
        select(redeem_codes).where(redeem_codes.c.code == code).with_for_update()).first()
    if row is None:
        raise CodeNotFound(code)
    if book.lapsed(row.expires_at, now):
        raise CodeExpired(code)
    # Guarded: a stale read of `uses` can never raise it past `max_uses`.
    if row.uses >= row.max_uses or conn.execute(
            update(redeem_codes)
            .where(redeem_codes.c.code == code, redeem_codes.c.uses < redeem_codes.c.max_uses)
            .values(uses=redeem_codes.c.uses + 1)).rowcount != 1:
        raise CodeUsedUp(code)
    expires_at = now + timedelta(days=row.credit_days) if row.credit_days else None
    g = ops.grant(conn, now, user_id, row.credits, source="redeem",
                        key=f"redeem:{code}:{user_id}", expires_at=expires_at,
                        note=f"code {code}", actor=None)
    conn.execute(insert(redemptions).values(
        code=code, user_id=user_id, grant_id=g.id, created_at=now))
    return g
