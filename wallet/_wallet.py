"""`Wallet`: the public face of the credit wallet over an `AsyncEngine`.

Every changing call is one database transaction holding its ledger rows. A call given `conn=`
joins the caller's open write transaction instead (it runs through `conn.run_sync`), so a job or
payment can change money, its own rows and an outbox message atomically; the caller then owns
commit and rollback, and on PostgreSQL must roll back after any error.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, Select, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.db import new_id, prepare, read, utcnow, write

from . import _audit, _reads, _rewards
from . import _ops as ops
from ._exceptions import HoldNotFound, HoldStateError, StaleAccount
from ._types import (
    Balance,
    CheckinResult,
    Clawback,
    Grant,
    Hold,
    HoldStatus,
    LedgerEntry,
    RedeemCode,
    Violation,
)
from .tables import OPEN, accounts, grants, holds, identities, users

_ATTEMPTS = 20

T = TypeVar("T")
Clock = Callable[[], datetime]


class Wallet:
    """Credits of every user: grants, holds, settlement, expiry, clawback, audit."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = utcnow) -> None:
        prepare(engine)  # whoever made the engine: the writer queue and pragmas on SQLite
        self._engine = engine
        self._clock = clock

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def _write(self, op: Callable[[Connection], T], conn: AsyncConnection | None) -> T:
        """Runs a money operation, each a plain function over one synchronous connection.

        The operations are synchronous on purpose: SQLAlchemy's async bridge costs a hop per
        statement, and one crossing per operation made hold→settle several times faster
        (bench/wallet.py). A unique-key error means a concurrent call inserted the same key or
        ref first; running the operation once more finds that row and answers as for a repeat.
        `StaleAccount` (never seen on a prepared engine) means another writer changed the
        account between our read and our write: we run the operation again, a bounded number
        of times.
        """
        if conn is not None:
            return await conn.run_sync(op)
        for _ in range(_ATTEMPTS - 1):
            try:
                return await write(self._engine, op)
            except (IntegrityError, StaleAccount):
                continue
        return await write(self._engine, op)

    async def open_account(self, channel: str, external_id: str, *,
                           language: str | None = None) -> int:
        """Returns the user id of a channel identity, creating the user on first contact."""
        find = select(identities.c.user_id).where(
            identities.c.channel == channel, identities.c.external_id == str(external_id))
        async with read(self._engine) as conn:
            found = (await conn.execute(find)).scalar()
        if found is not None:
            return int(found)

        def create(c: Connection) -> int:
            existing = c.execute(find).scalar()
            if existing is not None:
                return int(existing)
            now = self._clock()
            uid = new_id(c.execute(insert(users).values(created_at=now, language=language)))
            c.execute(insert(accounts).values(user_id=uid))
            c.execute(insert(identities).values(
                channel=channel, external_id=str(external_id), user_id=uid, created_at=now))
            return uid

        return await self._write(create, None)

    async def grant(self, user_id: int, credits: int, *, source: str, key: str,
                    expires_at: datetime | None = None, note: str | None = None,
                    actor: str | None = None, conn: AsyncConnection | None = None) -> Grant:
        """Adds credits once per `key`; a repeated key returns the first grant unchanged."""
        return await self._write(lambda c: ops.grant(
            c, self._clock(), user_id, credits, source=source, key=key, expires_at=expires_at,
            note=note, actor=actor), conn)

    async def hold(self, user_id: int, credits: int, *, ref: str,
                   ttl: timedelta | None = None, conn: AsyncConnection | None = None) -> Hold:
        """Freezes credits for one job; the same `ref` returns the existing hold."""
        return await self._write(lambda c: ops.hold(
            c, self._clock(), user_id, credits, ref=ref, ttl=ttl), conn)

    async def settle(self, hold_id: int, credits: int | None = None, *,
                     conn: AsyncConnection | None = None) -> Hold:
        """Spends all or `credits` of a hold; the rest goes back to where it came from."""
        return (await self._write(lambda c: ops.finish(
            c, self._clock(), hold_id, credits, HoldStatus.SETTLED), conn))[0]

    async def release(self, hold_id: int, *, conn: AsyncConnection | None = None) -> Hold:
        """Gives a hold back in full."""
        return (await self._write(lambda c: ops.finish(
            c, self._clock(), hold_id, 0, HoldStatus.RELEASED), conn))[0]

    async def get_hold(self, hold_id: int) -> Hold:
        async with read(self._engine) as conn:
            row = (await conn.execute(select(holds).where(holds.c.id == hold_id))).first()
        if row is None:
            raise HoldNotFound(hold_id)
        return ops.hold_record(row)

    async def balance(self, user_id: int) -> Balance:
        async with read(self._engine) as conn:
            return await _reads.balance(conn, user_id, self._clock())

    def balance_on(self, conn: Connection, user_id: int) -> Balance:
        """`balance` inside the caller's synchronous read transaction (`core.db.read`),
        so a caller that reads more can read it all in one crossing to the driver."""
        return _reads.balance_on(conn, user_id, self._clock())

    @staticmethod
    def with_balance(query: Select[Any], user_id: ColumnElement[Any]) -> Select[Any]:
        """`query` that also reads the balance of the user `user_id` (a column of `query`), so
        a caller reads it in its own statement, one snapshot: execute it with
        `balance_params()`, then `balance_of(row, user_id)`."""
        return _reads.balance_join(query, user_id).add_columns(*_reads.balance_columns(user_id))

    def balance_params(self) -> dict[str, datetime]:
        """The parameters of a `with_balance` query (now, on this wallet's clock)."""
        return _reads.balance_params(self._clock())

    @staticmethod
    def balance_of(row: Any, user_id: int) -> Balance:
        """The balance from a row of a `with_balance` query (`balance` would read the same)."""
        return _reads.balance_of(row, user_id)

    async def history(self, user_id: int, *, limit: int = 20,
                      before_id: int | None = None) -> list[LedgerEntry]:
        """Ledger entries newest first; pass the last id seen as `before_id` for the next page."""
        async with read(self._engine) as conn:
            return await _reads.history(conn, user_id, limit=limit, before_id=before_id)

    async def expire(self, now: datetime | None = None) -> int:
        """Expires the unheld remainder of every lapsed grant; returns the credits expired."""
        now = now or self._clock()
        async with read(self._engine) as conn:
            due = (await conn.execute(select(grants.c.user_id).distinct().where(
                OPEN, grants.c.expires_at <= now)
                .order_by(grants.c.user_id))).scalars().all()
        total = 0
        for user_id in due:  # one short transaction per user
            total += await write(self._engine, partial(ops.expire_user, now=now,
                                                           user_id=user_id))
        return total

    async def reap(self, now: datetime | None = None) -> int:
        """Releases active holds past their ttl; returns how many this call released."""
        now = now or self._clock()
        async with read(self._engine) as conn:
            due = (await conn.execute(select(holds.c.id).where(
                holds.c.status == HoldStatus.ACTIVE, holds.c.expires_at <= now)
                .order_by(holds.c.id))).scalars().all()  # oldest first, on every database
        released = 0
        for hold_id in due:
            try:
                _, changed = await write(self._engine, partial(
                    ops.finish, now=now, hold_id=hold_id, spend=0, target=HoldStatus.RELEASED))
            except HoldStateError:
                continue  # settled since we looked, perhaps by another instance
            released += changed
        return released

    async def clawback(self, user_id: int, credits: int, *, key: str, note: str | None = None,
                       actor: str | None = None,
                       conn: AsyncConnection | None = None) -> Clawback:
        """Takes credits back, newest grants first; what is missing becomes debt."""
        return await self._write(lambda c: ops.clawback(
            c, self._clock(), user_id, credits, key=key, note=note, actor=actor), conn)

    async def audit(self, *, user_id: int | None = None) -> list[Violation]:
        """Every invariant over the whole database (or one user); empty when all hold."""
        async with read(self._engine) as conn:
            return await _audit.audit(conn, user_id)

    async def checkin(self, user_id: int, *, credits: int, tz: str | ZoneInfo,
                      expires_days: int = 0, conn: AsyncConnection | None = None,
                      ) -> CheckinResult:
        """Grants the daily reward once per local day in `tz`."""
        zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        return await self._write(lambda c: _rewards.checkin(
            c, self._clock(), user_id, credits=credits, zone=zone, expires_days=expires_days),
            conn)

    async def create_code(self, credits: int, *, max_uses: int = 1,
                          expires_at: datetime | None = None, credit_days: int | None = None,
                          created_by: str | None = None, code: str | None = None,
                          membership_tier: str | None = None,
                          membership_days: int | None = None) -> RedeemCode:
        """Makes a redeem code worth `credits`, usable by `max_uses` different users; it may
        carry `membership_days` of `membership_tier` too (memberships/ grants those)."""
        return await self._write(lambda c: _rewards.create_code(
            c, self._clock(), credits, max_uses=max_uses, expires_at=expires_at,
            credit_days=credit_days, created_by=created_by, code=code,
            membership_tier=membership_tier, membership_days=membership_days), None)

    async def code_info(self, code: str, *,
                        conn: AsyncConnection | None = None) -> RedeemCode | None:
        """A redeem code as stored (None if there is none), in the caller's transaction."""
        if conn is not None:
            return await conn.run_sync(lambda c: _rewards.code_info(c, code))
        async with read(self._engine) as rc:
            return await rc.run_sync(lambda c: _rewards.code_info(c, code))

    async def lock_tier(self, user_id: int, *, conn: AsyncConnection) -> str | None:
        """Locks the user's row in the caller's write transaction (FOR NO KEY UPDATE, as a job
        start does, so the lock order stays user then account) and returns their tier, or None
        when there is no such user."""
        tier = (await conn.execute(select(users.c.tier).where(users.c.id == user_id)
                                   .with_for_update(key_share=True))).scalar()
        return None if tier is None else str(tier)

    async def set_tier(self, user_id: int, tier: str, *, conn: AsyncConnection) -> str | None:
        """Sets the user's tier inside the caller's write transaction; returns the tier it
        replaced (None for no such user). memberships/ decides the tier; this only stores it."""
        old = await self.lock_tier(user_id, conn=conn)
        if old is not None and old != tier:
            await conn.execute(update(users).where(users.c.id == user_id).values(tier=tier))
        return old

    async def redeem(self, user_id: int, code: str, *,
                     conn: AsyncConnection | None = None) -> Grant:
        """Credits a code's value to the user, once per user and at most `max_uses` in all."""
        return await self._write(lambda c: _rewards.redeem(c, self._clock(), user_id, code), conn)
