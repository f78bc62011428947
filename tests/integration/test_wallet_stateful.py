"""The wallet against a small in-memory model of its rules, driven by Hypothesis.

`Model` knows nothing of the wallet's tables or code: it keeps lots (grants), holds, debt,
clawbacks, check-ins and redeem codes as plain Python objects and applies the rules as the
design states them. `WalletMachine` makes the same call on both and, after every step, checks
that the audit finds nothing and that every user's balance is what the model predicts; after a
step that moves a user's credits it also compares that user's lots one by one. Two fixed walks
through the same machine pin down corners that random runs reach only now and then.

Each Hypothesis example gets an empty migrated database: a fresh copy of the pristine SQLite
file the `database` fixture handed us, or the fixture's PostgreSQL database truncated again.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import FakeClock, TestDatabase, sqlite_copy, truncate_all
from wallet import (
    AlreadyRedeemed,
    Balance,
    CodeExpired,
    CodeNotFound,
    CodeUsedUp,
    HoldNotFound,
    HoldStateError,
    HoldStatus,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidAmount,
    UnknownUser,
    Wallet,
    WalletError,
)

T = TypeVar("T")

SOON = timedelta(days=7)  # Balance.expiring_soon looks this far ahead
TZ = "Asia/Shanghai"
NEVER = datetime.max.replace(tzinfo=UTC)

# Grants are larger than holds and clawbacks, so that most examples get to spend something.
GRANT_CREDITS = st.integers(1, 60)
FUNDING_CREDITS = st.integers(1, 20)  # small first lots: holds often span several
HOLD_CREDITS = st.integers(1, 30)
CLAW_CREDITS = st.integers(1, 15)
GRANT_EXPIRY_HOURS = st.sampled_from([None, None, 1, 6, 24, 72, 24 * 6, 24 * 7, 24 * 8, 24 * 30])
HOLD_TTL_HOURS = st.sampled_from([None, None, 1, 6, 24])
ADVANCE_HOURS = st.sampled_from([0, 1, 5, 13, 24, 48, 24 * 7])


def lapsed(expires_at: datetime | None, now: datetime) -> bool:
    """The rule: a lot's credits (or a code) expire at `expires_at` exactly, never before."""
    return expires_at is not None and expires_at <= now


# --- the model -----------------------------------------------------------------------------


class Refused(Exception):
    """The model predicts that the wallet refuses the call with `error`, changing nothing."""

    def __init__(self, error: type[WalletError]) -> None:
        super().__init__(error.__name__)
        self.error = error


@dataclass
class Lot:
    seq: int  # creation order, which is the order of grant ids
    user: int
    amount: int
    remaining: int  # unheld, unspent, not yet swept as expired
    expires_at: datetime | None

    def order(self) -> tuple[datetime, int]:
        """Holds draw on lots expiring soonest first, then the oldest; never-expiring last."""
        return (self.expires_at or NEVER, self.seq)


@dataclass
class HoldM:
    id: int
    ref: str
    user: int
    credits: int
    expires_at: datetime | None
    parts: list[tuple[Lot, int]]  # in the order taken
    status: HoldStatus = HoldStatus.ACTIVE
    spent: int | None = None


@dataclass
class CodeM:
    credits: int
    max_uses: int
    expires_at: datetime | None
    credit_days: int | None
    redeemed_by: set[int] = field(default_factory=set)


@dataclass
class Model:
    debt: dict[int, int] = field(default_factory=dict)  # users the model knows -> debt
    lots: list[Lot] = field(default_factory=list)
    grant_keys: dict[str, Lot] = field(default_factory=dict)
    holds: dict[str, HoldM] = field(default_factory=dict)
    clawbacks: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    checkins: dict[tuple[int, date], int] = field(default_factory=dict)
    codes: dict[str, CodeM] = field(default_factory=dict)

    def live(self, user: int, now: datetime) -> list[Lot]:
        return [lot for lot in self.lots
                if lot.user == user and lot.remaining > 0 and not lapsed(lot.expires_at, now)]

    def usable(self, user: int, now: datetime) -> int:
        return sum(lot.remaining for lot in self.live(user, now)) - self.debt[user]

    def sweep(self, now: datetime, user: int | None = None) -> int:
        """Expires the unheld remainder of lapsed lots; returns the credits that expired."""
        gone = 0
        for lot in self.lots:
            if (user is None or lot.user == user) and lapsed(lot.expires_at, now):
                gone += lot.remaining
                lot.remaining = 0
        return gone

    def pay_debt(self, user: int, credits: int) -> int:
        """Credits coming to a user in debt pay it first; returns what is left of them."""
        paid = min(self.debt[user], credits)
        self.debt[user] -= paid
        return credits - paid

    def grant(self, user: int, credits: int, *, key: str, expires_at: datetime | None,
              now: datetime) -> tuple[Lot, bool]:
        """Returns the lot and whether this call created it."""
        if credits <= 0:
            raise Refused(InvalidAmount)
        if user not in self.debt:
            raise Refused(UnknownUser)
        if key in self.grant_keys:
            lot = self.grant_keys[key]
            if (lot.user, lot.amount) != (user, credits):
                raise Refused(IdempotencyConflict)
            return lot, False
        if lapsed(expires_at, now):
            raise Refused(InvalidAmount)
        lot = Lot(len(self.lots), user, credits, self.pay_debt(user, credits), expires_at)
        self.lots.append(lot)
        self.grant_keys[key] = lot
        return lot, True

    def hold(self, hold_id: int, user: int, credits: int, *, ref: str,
             ttl: timedelta | None, now: datetime) -> HoldM:
        """`hold_id` is the wallet's handle for the new hold (ids are the wallet's to choose)."""
        if credits <= 0:
            raise Refused(InvalidAmount)
        if ref in self.holds:
            h = self.holds[ref]
            if (h.user, h.credits) != (user, credits):
                raise Refused(IdempotencyConflict)
            return h
        if self.usable(user, now) < credits:
            raise Refused(InsufficientCredits)
        self.sweep(now, user)  # lots past expiry are gone, not drawn on
        parts, need = [], credits
        for lot in sorted(self.live(user, now), key=Lot.order):
            take = min(lot.remaining, need)
            lot.remaining -= take
            parts.append((lot, take))
            need -= take
            if not need:
                break
        h = HoldM(hold_id, ref, user, credits, now + ttl if ttl else None, parts)
        self.holds[ref] = h
        return h

    def finish(self, h: HoldM, spend: int | None, status: HoldStatus, now: datetime) -> bool:
        """Settles or releases `h`; returns whether anything changed."""
        if h.status == status and (spend is None or spend == h.spent):
            return False
        if h.status != HoldStatus.ACTIVE:
            raise Refused(HoldStateError)
        spent = h.credits if spend is None else spend
        if not 0 <= spent <= h.credits:
            raise Refused(InvalidAmount)
        to_spend = spent
        for lot, took in h.parts:  # spend what was taken first, return the rest
            from_here = min(took, to_spend)
            to_spend -= from_here
            back = took - from_here
            if back and not lapsed(lot.expires_at, now):  # else it expires on its way back
                lot.remaining += self.pay_debt(h.user, back)
        h.status, h.spent = status, spent
        return True

    def clawback(self, user: int, credits: int, *, key: str,
                 now: datetime) -> tuple[int, int]:
        """Returns (taken from lots, recorded as debt)."""
        if credits <= 0:
            raise Refused(InvalidAmount)
        if key in self.clawbacks:
            who, amount, taken, debt = self.clawbacks[key]
            if (who, amount) != (user, credits):
                raise Refused(IdempotencyConflict)
            return taken, debt
        self.sweep(now, user)
        taken = 0
        for lot in sorted(self.live(user, now), key=lambda lot: -lot.seq):  # newest first
            take = min(lot.remaining, credits - taken)
            lot.remaining -= take
            taken += take
        self.debt[user] += credits - taken
        self.clawbacks[key] = (user, credits, taken, credits - taken)
        return taken, credits - taken

    def checkin(self, user: int, credits: int, *, expires_days: int,
                now: datetime) -> tuple[bool, int, date]:
        day = now.astimezone(ZoneInfo(TZ)).date()
        if (user, day) in self.checkins:
            return False, self.checkins[(user, day)], day
        expires_at = now + timedelta(days=expires_days) if expires_days else None
        self.grant(user, credits, key=f"checkin {user} {day}", expires_at=expires_at, now=now)
        self.checkins[(user, day)] = credits
        return True, credits, day

    def redeem(self, user: int, code: str, now: datetime) -> Lot:
        c = self.codes.get(code)
        if c is not None and user in c.redeemed_by:
            raise Refused(AlreadyRedeemed)
        if c is None:
            raise Refused(CodeNotFound)
        if lapsed(c.expires_at, now):
            raise Refused(CodeExpired)
        if len(c.redeemed_by) >= c.max_uses:
            raise Refused(CodeUsedUp)
        expires_at = now + timedelta(days=c.credit_days) if c.credit_days else None
        lot, _ = self.grant(user, c.credits, key=f"redeem {code} {user}", expires_at=expires_at,
                            now=now)
        c.redeemed_by.add(user)
        return lot

    def balance(self, user: int, now: datetime) -> Balance:
        live = self.live(user, now)
        return Balance(
            available=sum(lot.remaining for lot in live) - self.debt[user],
            held=sum(h.credits for h in self.holds.values()
                     if h.user == user and h.status == HoldStatus.ACTIVE),
            debt=self.debt[user],
            expiring_soon=sum(lot.remaining for lot in live
                              if lot.expires_at is not None and lot.expires_at <= now + SOON),
            next_expiry=min((lot.expires_at for lot in live if lot.expires_at is not None),
                            default=None),
        )


# --- the machine ---------------------------------------------------------------------------


class FreshDatabases:
    """Hands each Hypothesis example an empty, migrated database of the fixture's kind."""

    def __init__(self, database: TestDatabase, tmp_path: Path) -> None:
        self.database = database
        self.tmp_path = tmp_path
        # The fixture's SQLite file is a pristine migrated copy nobody has opened: our template.
        self.template = Path(make_url(database.url).database or "")

    def take(self) -> TestDatabase:
        if self.database.kind == "sqlite":
            return sqlite_copy(self.template, self.tmp_path)
        return self.database

    async def empty(self, db: TestDatabase) -> AsyncEngine:
        engine = db.engine(pool_size=2, max_overflow=2)
        if db.kind != "sqlite":
            await truncate_all(engine)
        return engine

    def drop(self, db: TestDatabase) -> None:
        if db.kind == "sqlite":
            path = Path(make_url(db.url).database or "")
            for extra in ("", "-wal", "-shm"):
                Path(f"{path}{extra}").unlink(missing_ok=True)


class WalletMachine(RuleBasedStateMachine):
    databases: ClassVar[FreshDatabases]  # set by `machine_for`
    users = Bundle("users")

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.db = self.databases.take()
        self.engine = self.runner.run(self.databases.empty(self.db))
        self.clock = FakeClock()
        self.wallet = Wallet(self.engine, clock=self.clock)
        self.model = Model()
        self.identities: dict[str, int] = {}
        self.grant_keys: list[str] = []  # the keys this machine chose (not check-in's or codes')
        self.names = itertools.count(1)

    def teardown(self) -> None:
        try:
            self.runner.run(self.engine.dispose())
        finally:
            self.runner.close()
            self.databases.drop(self.db)

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(call)

    def refused(self, error: type[WalletError], call: Coroutine[Any, Any, object]) -> Exception:
        """Runs a call the model says the wallet refuses; returns the wallet's exception."""
        with pytest.raises(WalletError) as caught:
            self.run(call)
        assert type(caught.value) is error, f"expected {error.__name__}, got {caught.value!r}"
        return caught.value

    @property
    def now(self) -> datetime:
        return self.clock.now

    def name(self, prefix: str) -> str:
        return f"{prefix}-{next(self.names)}"

    def check_lots(self, user: int) -> None:
        """Compares the user's lots one by one (those under keys this machine chose): a
        repeated grant changes nothing and returns the lot with its current remainder."""
        lots = {key: self.model.grant_keys[key] for key in self.grant_keys
                if self.model.grant_keys[key].user == user}

        async def read() -> dict[str, int]:
            return {key: (await self.wallet.grant(user, lot.amount, source="test", key=key))
                    .remaining for key, lot in lots.items()}

        got = self.run(read())
        assert got == {key: lot.remaining for key, lot in lots.items()}, f"user {user}'s lots"

    # --- users ---

    def _open(self) -> int:
        identity = self.name("u")
        uid = self.run(self.wallet.open_account("test", identity))
        assert uid not in self.model.debt, "a new identity got an existing user"
        self.identities[identity] = uid
        self.model.debt[uid] = 0
        return uid

    @initialize(target=users, funding=st.lists(
        st.lists(st.tuples(FUNDING_CREDITS, GRANT_EXPIRY_HOURS), max_size=4),
        min_size=2, max_size=3), jobs=st.lists(
        st.tuples(st.integers(0, 2), HOLD_CREDITS, HOLD_TTL_HOURS), max_size=3),
        start_hour=st.integers(0, 23), welcome=st.booleans())
    def open_users(self, funding: list[list[tuple[int, int | None]]],
                   jobs: list[tuple[int, int, int | None]], start_hour: int,
                   welcome: bool) -> object:
        """Opens 2-3 users with a few lots, jobs running and perhaps a redeem code, at any
        hour of the day, so that every example moves credits (Hypothesis switches rules off
        at random per example: `grant` or `hold` may be off)."""
        self.clock.advance(hours=start_hour)
        if welcome:
            self.create_code(10, 1, None, None, True)
        uids = []
        for lots in funding:
            uids.append(self._open())
            for credits, hours in lots:
                self.grant(uids[-1], credits, hours)
        for who, credits, ttl_hours in jobs:
            self.hold(uids[who % len(uids)], credits, ttl_hours)
        return multiple(*uids)

    # --- grants ---

    @rule(user=users, credits=GRANT_CREDITS, hours=GRANT_EXPIRY_HOURS)
    def grant(self, user: int, credits: int, hours: int | None) -> None:
        key = self.name("g")
        expires_at = self.now + timedelta(hours=hours) if hours else None
        lot, _ = self.model.grant(user, credits, key=key, expires_at=expires_at, now=self.now)
        g = self.run(self.wallet.grant(user, credits, source="test", key=key,
                                       expires_at=expires_at))
        assert (g.created, g.credits, g.remaining, g.expires_at) == (
            True, credits, lot.remaining, expires_at)
        self.grant_keys.append(key)

    # --- holds ---

    @rule(user=users, credits=HOLD_CREDITS, ttl_hours=HOLD_TTL_HOURS)
    def hold(self, user: int, credits: int, ttl_hours: int | None) -> None:
        ref = self.name("job")
        ttl = timedelta(hours=ttl_hours) if ttl_hours else None
        usable = self.model.usable(user, self.now)
        call = self.wallet.hold(user, credits, ref=ref, ttl=ttl)
        if usable < credits:
            exc = self.refused(InsufficientCredits, call)
            assert isinstance(exc, InsufficientCredits)
            assert (exc.available, exc.needed) == (usable, credits)
            return
        h = self.run(call)
        assert (h.ref, h.user_id, h.credits, h.status, h.spent, h.expires_at) == (
            ref, user, credits, HoldStatus.ACTIVE, None, self.now + ttl if ttl else None)
        self.model.hold(h.id, user, credits, ref=ref, ttl=ttl, now=self.now)
        self.check_lots(user)

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data(), spend=st.integers(0, 1000), how=st.sampled_from(
        ["release", "settle all", "settle part", "settle part"]))
    def finish(self, data: st.DataObject, how: str, spend: int) -> None:
        """Settles or releases a hold, whatever state it is in; spends 0..credits+1 of it."""
        self.finish_hold(data.draw(st.sampled_from(list(self.model.holds)), label="ref"),
                         how, spend)

    def finish_hold(self, ref: str, how: str, spend: int) -> None:
        h = self.model.holds[ref]
        status = HoldStatus.RELEASED if how == "release" else HoldStatus.SETTLED
        amount = 0 if how == "release" else None if how == "settle all" else spend % (
            h.credits + 2)
        call = (self.wallet.release(h.id) if how == "release"
                else self.wallet.settle(h.id, amount))
        try:
            self.model.finish(h, amount, status, self.now)
        except Refused as r:
            self.refused(r.error, call)
            return
        got = self.run(call)
        assert (got.id, got.status, got.spent) == (h.id, h.status, h.spent)
        self.check_lots(h.user)

    # --- clawbacks ---

    @rule(user=users, credits=CLAW_CREDITS)
    def clawback(self, user: int, credits: int) -> None:
        key = self.name("refund")
        taken, debt = self.model.clawback(user, credits, key=key, now=self.now)
        c = self.run(self.wallet.clawback(user, credits, key=key))
        assert (c.user_id, c.credits, c.taken, c.debt) == (user, credits, taken, debt)
        self.check_lots(user)

    @precondition(lambda self: self.grant_keys or self.model.holds or self.model.clawbacks)
    @rule(data=st.data(), same=st.booleans(), user=users, credits=HOLD_CREDITS)
    def reuse_key(self, data: st.DataObject, same: bool, user: int, credits: int) -> None:
        """Repeats a grant, hold or clawback by its key: the same user and credits change
        nothing and return the first result as it is now; anything else conflicts."""
        kinds = [kind for kind, used in [("grant", self.grant_keys),
                                         ("hold", self.model.holds),
                                         ("clawback", self.model.clawbacks)] if used]
        kind = data.draw(st.sampled_from(kinds), label="kind")
        if kind == "grant":
            key = data.draw(st.sampled_from(self.grant_keys), label="key")
            lot = self.model.grant_keys[key]
            if same:
                user, credits = lot.user, lot.amount
            # A repeat ignores the expiry, even one already past.
            g_call = self.wallet.grant(user, credits, source="test", key=key, expires_at=self.now)
            try:
                self.model.grant(user, credits, key=key, expires_at=self.now, now=self.now)
            except Refused as r:
                self.refused(r.error, g_call)
                return
            g = self.run(g_call)
            assert (g.created, g.credits, g.remaining) == (False, lot.amount, lot.remaining)
        elif kind == "hold":
            ref = data.draw(st.sampled_from(list(self.model.holds)), label="ref")
            h = self.model.holds[ref]
            if same:
                user, credits = h.user, h.credits
            h_call = self.wallet.hold(user, credits, ref=ref)
            try:
                self.model.hold(-1, user, credits, ref=ref, ttl=None, now=self.now)
            except Refused as r:
                self.refused(r.error, h_call)
                return
            got = self.run(h_call)
            assert (got.id, got.status, got.spent) == (h.id, h.status, h.spent)
        else:
            key = data.draw(st.sampled_from(list(self.model.clawbacks)), label="key")
            if same:
                user, credits = self.model.clawbacks[key][:2]
            c_call = self.wallet.clawback(user, credits, key=key)
            try:
                taken, debt = self.model.clawback(user, credits, key=key, now=self.now)
            except Refused as r:
                self.refused(r.error, c_call)
                return
            c = self.run(c_call)
            assert (c.taken, c.debt) == (taken, debt)

    # --- time ---

    @rule(hours=ADVANCE_HOURS, then=st.sampled_from(["", "expire", "reap", "reap+expire"]))
    def time_passes(self, hours: int, then: str) -> None:
        """Moves the clock; then perhaps runs the scheduled reaper and expiry sweep."""
        self.clock.advance(hours=hours)
        if "reap" in then:
            self.reap()
        if "expire" in then:
            expected = self.model.sweep(self.now)
            assert self.run(self.wallet.expire(self.now)) == expected

    def reap(self) -> None:
        due = [h for h in self.model.holds.values()
               if h.status == HoldStatus.ACTIVE and lapsed(h.expires_at, self.now)]
        assert self.run(self.wallet.reap(self.now)) == len(due)
        # The rules leave open the order in which one user's due holds are released, and with
        # debt it matters (the first returned credits pay it); the ledger tells which it was.
        for user in {h.user for h in due}:
            mine = {h.ref: h for h in due if h.user == user}
            entries = self.run(self.wallet.history(user, limit=1000))
            order = [e.ref for e in reversed(entries) if e.kind == "release" and e.ref in mine]
            assert sorted(order) == sorted(mine), f"reap released {order}, due {list(mine)}"
            for ref in order:
                assert self.model.finish(mine[ref], 0, HoldStatus.RELEASED, self.now)
            self.check_lots(user)

    # --- check-in and redeem codes ---

    @rule(user=users, credits=st.integers(1, 10), expires_days=st.sampled_from([0, 0, 1, 7, 8]))
    def checkin(self, user: int, credits: int, expires_days: int) -> None:
        granted, paid, day = self.model.checkin(user, credits, expires_days=expires_days,
                                                now=self.now)
        got = self.run(self.wallet.checkin(user, credits=credits, tz=TZ,
                                           expires_days=expires_days))
        assert (got.granted, got.credits, got.day) == (granted, paid, day)

    @rule(credits=st.integers(1, 30), max_uses=st.integers(1, 2),
          hours=st.sampled_from([None, 1, 24, 72]), credit_days=st.sampled_from([None, 1, 7, 8]),
          named=st.booleans())
    def create_code(self, credits: int, max_uses: int, hours: int | None,
                    credit_days: int | None, named: bool) -> None:
        expires_at = self.now + timedelta(hours=hours) if hours else None
        code = self.run(self.wallet.create_code(
            credits, max_uses=max_uses, expires_at=expires_at, credit_days=credit_days,
            code=self.name("vf").upper() if named else None))
        assert code.code not in self.model.codes
        assert (code.credits, code.max_uses, code.uses, code.expires_at, code.credit_days) == (
            credits, max_uses, 0, expires_at, credit_days)
        self.model.codes[code.code] = CodeM(credits, max_uses, expires_at, credit_days)

    @precondition(lambda self: self.model.codes)
    @rule(data=st.data(), user=users, sloppy=st.booleans())
    def redeem(self, data: st.DataObject, user: int, sloppy: bool) -> None:
        self.redeem_code(user, data.draw(st.sampled_from(list(self.model.codes)), label="code"),
                         sloppy)

    def redeem_code(self, user: int, code: str, sloppy: bool) -> None:
        typed = f"  {code.lower()} " if sloppy else code  # read off a screen, typed by hand
        call = self.wallet.redeem(user, typed)
        try:
            lot = self.model.redeem(user, code, self.now)
        except Refused as r:
            self.refused(r.error, call)
            return
        g = self.run(call)
        assert (g.created, g.credits, g.remaining, g.expires_at) == (
            True, lot.amount, lot.remaining, lot.expires_at)

    # --- calls the wallet must refuse, or answer without a change ---

    @rule(user=users, what=st.sampled_from(
        ["grant0", "grant-past", "hold0", "claw-neg", "settle-404", "nobody", "code-404",
         "reopen", "code-again"]))
    def odd_call(self, user: int, what: str) -> None:
        w, key = self.wallet, self.name("odd")
        if what == "grant0":
            self.refused(InvalidAmount, w.grant(user, 0, source="test", key=key))
        elif what == "grant-past":
            self.refused(InvalidAmount, w.grant(user, 3, source="test", key=key,
                                                expires_at=self.now))
        elif what == "hold0":
            self.refused(InvalidAmount, w.hold(user, 0, ref=key))
        elif what == "claw-neg":
            self.refused(InvalidAmount, w.clawback(user, -2, key=key))
        elif what == "settle-404":
            self.refused(HoldNotFound, w.settle(10**9))
        elif what == "nobody":
            self.refused(UnknownUser, w.grant(10**9, 3, source="test", key=key))
        elif what == "code-404":
            self.refused(CodeNotFound, w.redeem(user, "NO-SUCH-CODE"))
        elif what == "code-again" and self.model.codes:
            code = min(self.model.codes).lower()
            self.refused(IdempotencyConflict, w.create_code(5, code=code))
        elif what == "reopen":
            identity = next(i for i, uid in self.identities.items() if uid == user)
            assert self.run(w.open_account("test", identity)) == user

    # --- after every step ---

    async def _observe(self) -> tuple[list[str], dict[int, Balance]]:
        violations = [str(v) for v in await self.wallet.audit()]
        return violations, {uid: await self.wallet.balance(uid) for uid in self.model.debt}

    @invariant()
    def agrees_with_model(self) -> None:
        violations, balances = self.run(self._observe())
        assert not violations, "\n".join(violations)
        for uid, got in balances.items():
            assert got == self.model.balance(uid, self.now), f"user {uid} at {self.now}"


def machine_for(database: TestDatabase, tmp_path: Path) -> type[WalletMachine]:
    class Machine(WalletMachine):
        databases = FreshDatabases(database, tmp_path)

    return Machine


def test_wallet_follows_its_rules(database: TestDatabase, tmp_path: Path) -> None:
    run_state_machine_as_test(
        machine_for(database, tmp_path),
        settings=settings(max_examples=40, stateful_step_count=30, deadline=None,
                          database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow]),
    )


def test_model_draws_soonest_first_and_spends_what_it_took_first() -> None:
    """The model itself, on a case worked by hand: a lax model would make a lax test."""
    model, now = Model(debt={1: 0}), datetime(2026, 3, 1, tzinfo=UTC)
    model.grant(1, 5, key="never", expires_at=None, now=now)
    model.grant(1, 5, key="late", expires_at=now + timedelta(days=30), now=now)
    model.grant(1, 5, key="soon", expires_at=now + timedelta(days=2), now=now)
    h = model.hold(1, 1, 7, ref="job", ttl=None, now=now)
    assert [(lot.seq, took) for lot, took in h.parts] == [(2, 5), (1, 2)]
    assert model.balance(1, now).expiring_soon == 0
    model.finish(h, 3, HoldStatus.SETTLED, now)  # spends the soonest, returns to the later
    assert [lot.remaining for lot in model.lots] == [5, 5, 2]
    assert model.balance(1, now) == Balance(12, 0, 0, 2, now + timedelta(days=2))
    with pytest.raises(Refused):
        model.hold(2, 1, 13, ref="job2", ttl=None, now=now)


def _reap_of_an_indebted_users_holds(m: WalletMachine) -> None:
    """Two holds of one user in debt lapse together: whichever the reaper releases first pays
    the debt, and the balance tells which lot got the rest. Then credits come back into a lot
    that has lapsed meanwhile, while the user is in debt again."""
    [user] = m.open_users(funding=[[(10, 24 * 7), (10, None)]], jobs=[(0, 8, 1), (0, 8, 1)],
                          start_hour=0, welcome=False).values
    steps: list[Callable[[], None]] = [
        lambda: m.clawback(user, 10),  # 4 from the never-expiring lot, 6 become debt
        lambda: m.time_passes(1, "reap"),
        lambda: m.hold(user, 9, None),  # job-7: the 7-day lot first
        lambda: m.clawback(user, 5),
        lambda: m.time_passes(24 * 7, ""),  # the 7-day lot lapses under the hold
        lambda: m.finish_hold("job-7", "settle part", 1),
        lambda: m.time_passes(0, "expire"),
    ]
    for step in steps:
        step()
        m.agrees_with_model()
    assert [h.status for h in m.model.holds.values()] == ["released", "released", "settled"]


def _local_midnight_and_a_used_up_code(m: WalletMachine) -> None:
    """Check-in days turn at midnight in Shanghai (16:00 UTC); a one-use code serves one user."""
    one, two = m.open_users(funding=[[], []], jobs=[], start_hour=3, welcome=True).values
    [code] = m.model.codes
    steps: list[Callable[[], None]] = [
        lambda: m.checkin(one, 2, 0),  # 23:00 in Shanghai
        lambda: m.time_passes(1, ""),
        lambda: m.checkin(one, 3, 1),  # 00:00, a new day
        lambda: m.checkin(one, 4, 0),  # the same day: nothing
        lambda: m.redeem_code(one, code, True),
        lambda: m.redeem_code(two, code, False),  # used up
        lambda: m.redeem_code(one, code, False),  # already redeemed
    ]
    for step in steps:
        step()
        m.agrees_with_model()
    assert sorted(m.model.checkins.values()) == [2, 3]
    assert m.model.codes[code].redeemed_by == {one}


@pytest.mark.parametrize("walk", [_reap_of_an_indebted_users_holds,
                                  _local_midnight_and_a_used_up_code])
def test_fixed_walks(walk: Callable[[WalletMachine], None], database: TestDatabase,
                     tmp_path: Path) -> None:
    """Corners that random runs reach only now and then, walked through the same machine."""
    m = machine_for(database, tmp_path)()
    try:
        m.agrees_with_model()
        walk(m)
    finally:
        m.teardown()
