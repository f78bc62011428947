"""The wallet's rules, one behaviour per test, on SQLite or PostgreSQL (see conftest).

The `wallet` fixture audits the whole database after every test.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import FakeClock, funded_user
from wallet import (
    AlreadyRedeemed,
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
)
from wallet.tables import grants


async def remaining(engine: AsyncEngine, key: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(
            select(grants.c.remaining).where(grants.c.key == key))).scalar_one())


# --- accounts and grants ---------------------------------------------------------------------

async def test_open_account_is_idempotent_per_channel_identity(wallet: Wallet) -> None:
    a = await wallet.open_account("telegram", "100")
    assert await wallet.open_account("telegram", "100") == a
    assert await wallet.open_account("wechat", "100") != a
    assert (await wallet.balance(a)).available == 0


async def test_grant_is_idempotent_on_key(wallet: Wallet) -> None:
    uid = await funded_user(wallet, 0)
    first = await wallet.grant(uid, 7, source="purchase", key="order-1")
    again = await wallet.grant(uid, 7, source="purchase", key="order-1")
    assert (first.created, again.created, again.id) == (True, False, first.id)
    assert (await wallet.balance(uid)).available == 7
    assert len(await wallet.history(uid)) == 1


async def test_a_key_reused_with_other_arguments_is_refused(wallet: Wallet) -> None:
    uid, other = await funded_user(wallet, 0), await funded_user(wallet, 0)
    await wallet.grant(uid, 7, source="purchase", key="order-1")
    with pytest.raises(IdempotencyConflict):
        await wallet.grant(uid, 8, source="purchase", key="order-1")
    with pytest.raises(IdempotencyConflict):
        await wallet.grant(other, 7, source="purchase", key="order-1")
    assert (await wallet.balance(other)).available == 0


@pytest.mark.parametrize("bad", [0, -3, True, 1.5, "5"])
async def test_credits_must_be_positive_integers(wallet: Wallet, bad: object) -> None:
    uid = await funded_user(wallet, 5)
    with pytest.raises(InvalidAmount):
        await wallet.grant(uid, bad, source="x", key="bad")  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        await wallet.hold(uid, bad, ref="bad")  # type: ignore[arg-type]


async def test_unknown_user_and_past_expiry_are_refused(wallet: Wallet, clock: FakeClock) -> None:
    with pytest.raises(UnknownUser):
        await wallet.grant(9999, 1, source="x", key="k")
    uid = await funded_user(wallet, 0)
    with pytest.raises(InvalidAmount):
        await wallet.grant(uid, 1, source="x", key="k", expires_at=clock.now)


# --- holds -------------------------------------------------------------------------------------

async def test_hold_takes_soonest_expiry_first_then_oldest_never_expiring_last(
    wallet: Wallet, engine: AsyncEngine, clock: FakeClock,
) -> None:
    uid = await funded_user(wallet, 0)
    await wallet.grant(uid, 5, source="x", key="never-old")
    await wallet.grant(uid, 5, source="x", key="late", expires_at=clock.now + timedelta(days=9))
    await wallet.grant(uid, 5, source="x", key="soon", expires_at=clock.now + timedelta(days=2))
    await wallet.grant(uid, 5, source="x", key="never-new")
    await wallet.hold(uid, 13, ref="job")
    assert [await remaining(engine, k) for k in ("soon", "late", "never-old", "never-new")] == [
        0, 0, 2, 5]


async def test_insufficient_credits_says_how_many_and_changes_nothing(wallet: Wallet) -> None:
    uid = await funded_user(wallet, 4)
    before = await wallet.history(uid)
    with pytest.raises(InsufficientCredits) as err:
        await wallet.hold(uid, 10, ref="job")
    assert (err.value.available, err.value.needed, err.value.missing) == (4, 10, 6)
    assert await wallet.history(uid) == before
    assert (await wallet.balance(uid)).available == 4


async def test_same_ref_returns_the_existing_hold(wallet: Wallet) -> None:
    uid = await funded_user(wallet, 10)
    a = await wallet.hold(uid, 3, ref="job")
    b = await wallet.hold(uid, 3, ref="job")
    assert a.id == b.id
    assert (await wallet.balance(uid)).held == 3
    with pytest.raises(IdempotencyConflict):
        await wallet.hold(uid, 4, ref="job")


async def test_partial_settle_returns_the_rest_where_it_came_from(
    wallet: Wallet, engine: AsyncEngine, clock: FakeClock,
) -> None:
    uid = await funded_user(wallet, 0)
    await wallet.grant(uid, 4, source="x", key="soon", expires_at=clock.now + timedelta(days=1))
    await wallet.grant(uid, 10, source="x", key="never")
    h = await wallet.hold(uid, 8, ref="job")
    settled = await wallet.settle(h.id, 5)
    assert (settled.status, settled.spent) == (HoldStatus.SETTLED, 5)
    # Spent from the lot taken first (soon: 4, never: 1); 3 go back to `never`.
    assert (await remaining(engine, "soon"), await remaining(engine, "never")) == (0, 9)
    bal = await wallet.balance(uid)
    assert (bal.available, bal.held) == (9, 0)


async def test_settle_and_release_are_idempotent_and_exclusive(wallet: Wallet) -> None:
    uid = await funded_user(wallet, 10)
    h = await wallet.hold(uid, 6, ref="a")
    await wallet.settle(h.id)
    assert (await wallet.settle(h.id)).spent == 6
    with pytest.raises(HoldStateError):
        await wallet.settle(h.id, 2)
    with pytest.raises(HoldStateError):
        await wallet.release(h.id)
    r = await wallet.hold(uid, 2, ref="b")
    await wallet.release(r.id)
    await wallet.release(r.id)
    with pytest.raises(HoldStateError):
        await wallet.settle(r.id)
    with pytest.raises(HoldNotFound):
        await wallet.settle(123456)
    bal = await wallet.balance(uid)
    assert (bal.available, bal.held) == (4, 0)


async def test_cannot_settle_more_than_was_held(wallet: Wallet) -> None:
    uid = await funded_user(wallet, 10)
    h = await wallet.hold(uid, 3, ref="a")
    with pytest.raises(InvalidAmount):
        await wallet.settle(h.id, 4)
    assert (await wallet.get_hold(h.id)).status is HoldStatus.ACTIVE


async def test_reap_releases_holds_past_their_ttl(wallet: Wallet, clock: FakeClock) -> None:
    uid = await funded_user(wallet, 10)
    await wallet.hold(uid, 3, ref="short", ttl=timedelta(minutes=5))
    await wallet.hold(uid, 2, ref="long", ttl=timedelta(hours=5))
    await wallet.hold(uid, 1, ref="forever")
    assert await wallet.reap(clock.now + timedelta(minutes=4)) == 0
    assert await wallet.reap(clock.now + timedelta(minutes=5)) == 1
    assert await wallet.reap(clock.now + timedelta(minutes=6)) == 0
    bal = await wallet.balance(uid)
    assert (bal.available, bal.held) == (7, 3)


# --- expiry --------------------------------------------------------------------------------------

async def test_unheld_credits_expire_at_their_time_and_never_before(
    wallet: Wallet, clock: FakeClock,
) -> None:
    at = clock.now + timedelta(days=3)
    uid = await funded_user(wallet, 10, expires_at=at)
    assert await wallet.expire(at - timedelta(microseconds=1)) == 0
    clock.now = at - timedelta(microseconds=1)
    assert (await wallet.balance(uid)).available == 10
    await wallet.hold(uid, 10, ref="last-moment")  # still usable one microsecond before
    await wallet.release((await wallet.hold(uid, 10, ref="last-moment")).id)
    clock.now = at
    assert (await wallet.balance(uid)).available == 0  # lapsed even before the sweep runs
    with pytest.raises(InsufficientCredits):
        await wallet.hold(uid, 1, ref="too-late")
    assert await wallet.expire(at) == 10
    assert await wallet.expire(at) == 0
    assert [e.kind for e in await wallet.history(uid)][:1] == ["expire"]


async def test_held_credits_expire_only_when_their_hold_is_released(
    wallet: Wallet, clock: FakeClock,
) -> None:
    at = clock.now + timedelta(days=1)
    uid = await funded_user(wallet, 10, expires_at=at)
    h = await wallet.hold(uid, 4, ref="job")
    clock.now = at + timedelta(hours=1)
    assert await wallet.expire(clock.now) == 6
    bal = await wallet.balance(uid)
    assert (bal.available, bal.held) == (0, 4)
    await wallet.release(h.id)
    bal = await wallet.balance(uid)
    assert (bal.available, bal.held) == (0, 0)
    kinds = [e.kind for e in await wallet.history(uid)]
    assert kinds[:2] == ["expire", "release"]


async def test_settling_a_hold_whose_grant_expired_meanwhile_spends_correctly(
    wallet: Wallet, clock: FakeClock,
) -> None:
    at = clock.now + timedelta(days=1)
    uid = await funded_user(wallet, 10, expires_at=at)
    full = await wallet.hold(uid, 4, ref="full")
    part = await wallet.hold(uid, 4, ref="part")
    clock.now = at + timedelta(seconds=1)
    await wallet.expire(clock.now)
    assert (await wallet.settle(full.id)).spent == 4
    assert (await wallet.settle(part.id, 1)).spent == 1  # the 3 returned expire on the way back
    bal = await wallet.balance(uid)
    assert (bal.available, bal.held, bal.debt) == (0, 0, 0)
    spent = -sum(e.amount + e.held_delta for e in await wallet.history(uid, limit=100)
                 if e.kind in ("hold", "settle"))
    assert spent == 5


async def test_balance_reports_what_expires_within_seven_days(
    wallet: Wallet, clock: FakeClock,
) -> None:
    uid = await funded_user(wallet, 5)
    await wallet.grant(uid, 3, source="x", key="a", expires_at=clock.now + timedelta(days=2))
    await wallet.grant(uid, 4, source="x", key="b", expires_at=clock.now + timedelta(days=8))
    bal = await wallet.balance(uid)
    assert (bal.available, bal.expiring_soon) == (12, 3)
    assert bal.next_expiry == clock.now + timedelta(days=2)


# --- clawback and debt ---------------------------------------------------------------------------

async def test_clawback_with_shortfall_becomes_debt_paid_by_the_next_grant(
    wallet: Wallet,
) -> None:
    uid = await funded_user(wallet, 0)
    await wallet.grant(uid, 10, source="purchase", key="order-1")
    h = await wallet.hold(uid, 8, ref="job")
    await wallet.settle(h.id)
    claw = await wallet.clawback(uid, 10, key="refund:order-1")
    assert (claw.taken, claw.debt) == (2, 8)
    assert await wallet.clawback(uid, 10, key="refund:order-1") == claw
    bal = await wallet.balance(uid)
    assert (bal.available, bal.debt) == (-8, 8)
    with pytest.raises(InsufficientCredits):
        await wallet.hold(uid, 1, ref="job2")
    await wallet.grant(uid, 5, source="checkin", key="c1")
    assert (await wallet.balance(uid)).debt == 3
    await wallet.grant(uid, 5, source="checkin", key="c2")
    bal = await wallet.balance(uid)
    assert (bal.available, bal.debt) == (2, 0)
    entries = await wallet.history(uid)
    assert [(e.kind, e.amount, e.debt_delta) for e in entries[:3]] == [
        ("grant", 5, -3), ("grant", 5, -5), ("clawback", -10, 8)]


async def test_clawback_takes_newest_grants_first(wallet: Wallet, engine: AsyncEngine) -> None:
    uid = await funded_user(wallet, 0)
    await wallet.grant(uid, 5, source="x", key="old")
    await wallet.grant(uid, 5, source="x", key="new")
    await wallet.clawback(uid, 7, key="refund")
    assert (await remaining(engine, "old"), await remaining(engine, "new")) == (3, 0)


async def test_credits_released_to_a_user_in_debt_pay_the_debt(wallet: Wallet) -> None:
    uid = await funded_user(wallet, 10)
    h = await wallet.hold(uid, 6, ref="job")
    await wallet.clawback(uid, 8, key="refund")  # 4 unheld taken, 4 become debt
    assert (await wallet.balance(uid)).debt == 4
    await wallet.release(h.id)
    bal = await wallet.balance(uid)
    assert (bal.available, bal.held, bal.debt) == (2, 0, 0)


# --- history -------------------------------------------------------------------------------------

async def test_history_pages_newest_first(wallet: Wallet) -> None:
    uid = await funded_user(wallet, 0)
    for i in range(5):
        await wallet.grant(uid, i + 1, source="x", key=f"g{i}", note=f"n{i}", actor="admin:7")
    page1 = await wallet.history(uid, limit=2)
    page2 = await wallet.history(uid, limit=2, before_id=page1[-1].id)
    page3 = await wallet.history(uid, limit=2, before_id=page2[-1].id)
    assert [e.amount for e in page1 + page2 + page3] == [5, 4, 3, 2, 1]
    assert [e.balance_after for e in page1] == [15, 10]
    assert (page1[0].note, page1[0].actor) == ("n4", "admin:7")


# --- check-in and redeem codes -------------------------------------------------------------------

async def test_checkin_once_per_local_day(wallet: Wallet, clock: FakeClock) -> None:
    uid = await funded_user(wallet, 0)
    clock.now = clock.now.replace(hour=15, minute=59)  # 23:59 in Shanghai
    first = await wallet.checkin(uid, credits=2, tz="Asia/Shanghai")
    again = await wallet.checkin(uid, credits=2, tz="Asia/Shanghai")
    clock.advance(minutes=1)  # 00:00 next day in Shanghai, same UTC day
    next_day = await wallet.checkin(uid, credits=2, tz="Asia/Shanghai")
    assert (first.granted, again.granted, next_day.granted) == (True, False, True)
    assert next_day.day - first.day == timedelta(days=1)
    assert (await wallet.balance(uid)).available == 4


async def test_checkin_after_the_amount_changed_today_is_still_once(wallet: Wallet) -> None:
    uid = await funded_user(wallet, 0)
    await wallet.checkin(uid, credits=2, tz="UTC")
    assert not (await wallet.checkin(uid, credits=5, tz="UTC")).granted
    assert (await wallet.balance(uid)).available == 2


async def test_redeem_codes(wallet: Wallet, clock: FakeClock) -> None:
    a, b, c = [await funded_user(wallet, 0) for _ in range(3)]
    code = await wallet.create_code(5, max_uses=2, credit_days=10, created_by="admin:1")
    g = await wallet.redeem(a, f"  {code.code.lower()} ")
    assert (g.credits, g.expires_at) == (5, clock.now + timedelta(days=10))
    with pytest.raises(AlreadyRedeemed):
        await wallet.redeem(a, code.code)
    await wallet.redeem(b, code.code)
    with pytest.raises(CodeUsedUp):
        await wallet.redeem(c, code.code)
    with pytest.raises(CodeNotFound):
        await wallet.redeem(c, "NOSUCHCODE")
    soon = await wallet.create_code(3, code="promo-1", expires_at=clock.now + timedelta(hours=1))
    clock.advance(hours=1)
    with pytest.raises(CodeExpired):
        await wallet.redeem(c, soon.code)
    with pytest.raises(IdempotencyConflict):
        await wallet.create_code(3, code="PROMO-1")
    assert [(await wallet.balance(u)).available for u in (a, b, c)] == [5, 5, 0]
