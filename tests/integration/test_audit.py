"""The audit finds each kind of corruption: one targeted damage per invariant."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import funded_user
from wallet import Wallet
from wallet._audit import audit

DAMAGE = {
    "available = sum of grant remainders - debt":
        "UPDATE accounts SET available = available + 1",
    "held = sum of active holds":
        "UPDATE holds SET status = 'released', spent = 0 WHERE ref = 'open'",
    "counters not negative":
        "UPDATE accounts SET held = -1",
    "debt is paid before credits are kept":
        "UPDATE accounts SET debt = 1, available = available - 1",
    "grant remainder within 0..amount":
        "UPDATE grants SET remaining = amount",
    "a hold is the sum of its parts":
        "UPDATE hold_parts SET credits = credits + 1",
    "settled spends at most what it held":
        "UPDATE holds SET spent = credits + 1 WHERE ref = 'done'",
    "ledger balance-after is the running sum":
        "UPDATE ledger SET amount = amount + 1 WHERE id = (SELECT MIN(id) FROM ledger)",
    "ledger ends at the account's counters":
        "DELETE FROM ledger WHERE id = (SELECT MAX(id) FROM ledger)",
    "redeem code uses match redemptions":
        "UPDATE redeem_codes SET uses = 0",
}


async def _populate(wallet: Wallet) -> int:
    uid = await funded_user(wallet, 20)
    await wallet.hold(uid, 3, ref="open")
    await wallet.settle((await wallet.hold(uid, 4, ref="done")).id, 2)
    code = await wallet.create_code(2, max_uses=3)
    await wallet.redeem(uid, code.code)
    return uid


@pytest.mark.parametrize("rule", sorted(DAMAGE))
async def test_audit_reports_each_broken_invariant(engine: AsyncEngine, rule: str) -> None:
    wallet = Wallet(engine)
    uid = await _populate(wallet)
    assert await wallet.audit() == []
    # Damage, audit and roll back in one transaction: nothing broken outlives the test.
    async with engine.connect() as conn:
        async with conn.begin() as tx:
            if engine.dialect.name == "postgresql":
                await conn.execute(text(
                    "ALTER TABLE accounts DROP CONSTRAINT ck_accounts_held_non_negative"))
            else:
                await conn.execute(text("PRAGMA ignore_check_constraints = ON"))
            await conn.execute(text(DAMAGE[rule]))
            everyone = {v.rule for v in await audit(conn)}
            one_user = {v.rule for v in await audit(conn, uid)}
            await tx.rollback()
        if engine.dialect.name == "sqlite":
            await conn.execute(text("PRAGMA ignore_check_constraints = OFF"))
            await conn.commit()
    assert rule in everyone
    if rule != "redeem code uses match redemptions":  # codes are shared, not per user
        assert rule in one_user
    assert await wallet.audit() == []
