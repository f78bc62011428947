"""Concurrent callers never break the wallet: in one process, and across OS processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from tests.factories import TestDatabase, funded_user
from wallet import CodeUsedUp, InsufficientCredits, Wallet

ROOT = Path(__file__).resolve().parents[2]


async def test_200_concurrent_holds_against_50_credits(wallet: Wallet) -> None:
    uid = await funded_user(wallet, 50)

    async def one(i: int) -> bool:
        try:
            await wallet.hold(uid, 1, ref=f"job-{i}")
            return True
        except InsufficientCredits:
            return False

    results = await asyncio.gather(*(one(i) for i in range(200)))
    assert sum(results) == 50
    bal = await wallet.balance(uid)
    assert (bal.available, bal.held) == (0, 50)


@pytest.mark.slow
@pytest.mark.parametrize("engines", ["core", "plain"])
async def test_holds_from_two_os_processes(engines: str, database: TestDatabase) -> None:
    """Each process on its own engine: `core.db.create_engine`'s, or SQLAlchemy's plain
    `create_async_engine` (then here too); then the holds end concurrently, half settled and
    half released."""
    engine = database.engine() if engines == "core" else create_async_engine(database.url)
    wallet = Wallet(engine)
    try:
        uid = await funded_user(wallet, 50)
        cmd = [sys.executable, "-m", "tests.integration._worker", "holds", database.url,
               str(uid), "100", *(["plain"] if engines == "plain" else [])]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [await asyncio.create_subprocess_exec(
            *cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)]
        outs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 120)
        assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
        counts = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outs]
        assert sum(c["ok"] for c in counts) == 50
        assert sum(c["short"] for c in counts) == 150
        bal = await wallet.balance(uid)
        assert (bal.available, bal.held) == (0, 50)
        assert await wallet.audit() == []

        ids = [i for c in counts for i in c["ids"]]
        await asyncio.gather(*(wallet.settle(h) if n % 2 else wallet.release(h)
                               for n, h in enumerate(ids)))
        bal = await wallet.balance(uid)
        assert (bal.available, bal.held) == (25, 0)
        assert await wallet.audit() == []
    finally:
        await engine.dispose()


async def test_concurrent_duplicate_grants_credit_once(wallet: Wallet) -> None:
    uid = await funded_user(wallet, 0)
    results = await asyncio.gather(*(
        wallet.grant(uid, 1, source="purchase", key="order-42") for _ in range(50)))
    assert sum(g.created for g in results) == 1
    assert len({g.id for g in results}) == 1
    assert (await wallet.balance(uid)).available == 1


async def test_concurrent_checkins_reward_once(wallet: Wallet) -> None:
    uid = await funded_user(wallet, 0)
    results = await asyncio.gather(*(
        wallet.checkin(uid, credits=3, tz="Asia/Shanghai") for _ in range(30)))
    assert sum(r.granted for r in results) == 1
    assert (await wallet.balance(uid)).available == 3


async def test_concurrent_redemptions_never_exceed_max_uses(wallet: Wallet) -> None:
    code = await wallet.create_code(4, max_uses=10)
    users = [await funded_user(wallet, 0) for _ in range(30)]

    async def one(uid: int) -> bool:
        try:
            await wallet.redeem(uid, code.code)
            return True
        except CodeUsedUp:
            return False

    results = await asyncio.gather(*(one(u) for u in users))
    assert sum(results) == 10
    balances = [(await wallet.balance(u)).available for u in users]
    assert sorted(balances) == [0] * 20 + [4] * 10


async def test_concurrent_opens_of_one_identity_make_one_user(wallet: Wallet) -> None:
    ids = await asyncio.gather(*(wallet.open_account("telegram", "777") for _ in range(20)))
    assert len(set(ids)) == 1
