"""What a tier unlocks, where the limits are enforced (the job service), and the memberships
that set it without a payment: an admin's `/tier USER TIER DAYS` and redeem codes carrying
membership days. The wallet audit is clean after each test (the `wallet` fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Config, ModelConfig, TierConfig
from core.db import read
from core.outbox import outbox
from generation import Catalogue, JobService, TierRequired, TooManyClothes, TooManyJobs
from memberships import Memberships, UnknownTier
from providers import CallbackHint, TaskRequest, TaskState, TaskStatus
from storage import LocalStorage
from tests.factories import FakeClock, funded_user
from tests.fakes.image import PNG_1X1
from tests.integration.test_payments_stack import PLANS
from wallet import AlreadyRedeemed, InvalidAmount, Wallet
from wallet.tables import users

MODELS = (
    ModelConfig(id="demo-t2v", name="Demo", provider="demo", kind="text-to-video", credits=1),
    ModelConfig(id="demo-tryon", name="Try-on", provider="demo", kind="try-on", credits=1),
    ModelConfig(id="cinema", name="Cinema", provider="demo", kind="text-to-video", credits=1),
)
TIERS = {
    "free": TierConfig(concurrency=3, max_clothes=1, models=("demo-t2v", "demo-tryon")),
    "plus": TierConfig(concurrency=5, max_clothes=10, models=("demo-t2v", "demo-tryon")),
    "pro": TierConfig(concurrency=10, max_clothes=10, models=("*",)),
}
CONFIG = Config(models=MODELS, tiers=TIERS, plans=PLANS)


class Stuck:
    """A provider that accepts every task and never finishes, so jobs stay running."""

    name = "demo"

    def __init__(self) -> None:
        self.created: list[TaskRequest] = []

    async def create_task(self, req: TaskRequest) -> TaskStatus:
        self.created.append(req)
        return TaskStatus(f"task-{len(self.created)}", TaskState.RUNNING)

    async def query_task(self, task_id: str) -> TaskStatus:
        return TaskStatus(task_id, TaskState.RUNNING)

    def parse_callback(self, headers: object, body: bytes) -> CallbackHint:
        raise AssertionError("no callbacks in these tests")


@pytest.fixture
def members(engine: AsyncEngine, wallet: Wallet, clock: FakeClock) -> Memberships:
    return Memberships(engine=engine, wallet=wallet, config=CONFIG, clock=clock)


@pytest.fixture
def jobs(engine: AsyncEngine, wallet: Wallet, clock: FakeClock, http: httpx.AsyncClient,
         tmp_path: Path) -> JobService:
    storage = LocalStorage(tmp_path / "media", public_base="http://127.0.0.1:9",
                           link_secret="x" * 32)
    return JobService(engine=engine, wallet=wallet, catalogue=Catalogue(MODELS),
                      providers={"demo": Stuck()},
                      storage=storage, http=http, config=CONFIG.generation,
                      public_url="http://127.0.0.1:9", callback_secret="cb", clock=clock)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def tier_of(engine: AsyncEngine, user: int) -> str:
    async with read(engine) as conn:
        return str((await conn.execute(select(users.c.tier).where(users.c.id == user)))
                   .scalar_one())


async def test_the_config_hands_the_tier_rules_to_the_chat_and_the_jobs() -> None:
    assert CONFIG.chat.max_clothes("free") == 1
    assert CONFIG.chat.max_clothes("plus") == 10
    assert CONFIG.chat.max_clothes("retired-tier") == 1  # unknown tiers get free's rules
    assert CONFIG.generation.limit_for("pro") == 10


async def test_a_free_user_gets_one_clothing_photo_and_three_jobs_at_once(
    jobs: JobService, wallet: Wallet,
) -> None:
    user = await funded_user(wallet, 20)
    with pytest.raises(TooManyClothes) as err:
        await jobs.start(user, "demo-tryon", prompt="x", image_keys=["p", "c1", "c2"])
    assert err.value.limit == 1
    for i in range(3):
        await jobs.start(user, "demo-t2v", prompt=f"job {i}")
    with pytest.raises(TooManyJobs) as many:
        await jobs.start(user, "demo-t2v", prompt="one more")
    assert many.value.limit == 3
    assert (await wallet.balance(user)).held == 3


async def test_plus_gets_more_and_pro_models_stay_pro(
    jobs: JobService, wallet: Wallet, members: Memberships, engine: AsyncEngine,
) -> None:
    user = await funded_user(wallet, 20)
    with pytest.raises(TierRequired) as err:
        await jobs.start(user, "cinema", prompt="x")
    assert err.value.tiers == ("pro",)
    await members.manual(user, "plus", 30, actor="admin:1")
    assert await tier_of(engine, user) == "plus"
    with pytest.raises(TierRequired):
        await jobs.start(user, "cinema", prompt="x")
    for i in range(5):
        await jobs.start(user, "demo-t2v", prompt=f"job {i}")
    with pytest.raises(TooManyJobs):
        await jobs.start(user, "demo-t2v", prompt="six")
    await members.manual(user, "pro", 30, actor="admin:1")
    await jobs.start(user, "cinema", prompt="now allowed")
    assert (await wallet.balance(user)).held == 6


async def test_plus_may_send_up_to_ten_clothing_photos(
    jobs: JobService, wallet: Wallet, members: Memberships,
) -> None:
    user = await funded_user(wallet, 5)
    await members.manual(user, "plus", 7, actor="admin:1")
    keys = ["uploads/person.png"] + [f"uploads/c{i}.png" for i in range(10)]
    for key in keys:
        await jobs.storage.put(key, _one(PNG_1X1), content_type="image/png")
    job = await jobs.start(user, "demo-tryon", prompt="x", image_keys=keys)
    assert job.state == "generating"
    [request] = jobs.providers["demo"].created  # type: ignore[attr-defined]
    assert len(request.image_urls) == 11


async def test_a_manual_membership_ends_at_its_time_once(
    members: Memberships, wallet: Wallet, engine: AsyncEngine, clock: FakeClock,
) -> None:
    user = await funded_user(wallet, 0)
    m = await members.manual(user, "pro", 10, actor="admin:7")
    assert m is not None
    assert (m.tier, m.source, m.ends_at) == (
        "pro", "admin", clock.now + timedelta(days=10))
    assert not m.renews
    with pytest.raises(UnknownTier):
        await members.manual(user, "gold", 10, actor="admin:7")
    assert await members.remind_due(clock.now + timedelta(days=8)) == 0  # nothing renews
    assert await members.end_due(clock.now + timedelta(days=9)) == 0
    assert [await members.end_due(clock.now + timedelta(days=10)) for _ in range(2)] == [1, 0]
    assert await tier_of(engine, user) == "free"
    [event] = (await members.events(user))[1:]
    assert (event.kind, event.actor, event.to_tier) == ("manual", "admin:7", "pro")


async def test_tier_free_ends_a_manual_membership_now(
    members: Memberships, wallet: Wallet, engine: AsyncEngine,
) -> None:
    user = await funded_user(wallet, 0)
    await members.manual(user, "plus", 30, actor="admin:1")
    assert await members.manual(user, "free", 0, actor="admin:1") is None
    assert await tier_of(engine, user) == "free"
    assert await members.current(user) is None


async def test_two_sweeps_at_once_end_each_membership_once(
    members: Memberships, wallet: Wallet, engine: AsyncEngine, clock: FakeClock,
) -> None:
    import asyncio

    users_ = [await funded_user(wallet, 0) for _ in range(6)]
    for u in users_:
        await members.manual(u, "plus", 1, actor="admin:1")
    later = clock.now + timedelta(days=1)
    ended = await asyncio.gather(members.end_due(later), members.end_due(later))
    assert sum(ended) == 6
    async with read(engine) as conn:
        sent = (await conn.execute(select(outbox.c.user_id).where(
            outbox.c.kind == "membership.ended"))).scalars().all()
    assert sorted(sent) == sorted(users_)


async def test_a_redeem_code_carries_credits_and_membership_days(
    members: Memberships, wallet: Wallet, engine: AsyncEngine, clock: FakeClock,
) -> None:
    code = await wallet.create_code(50, max_uses=5, membership_tier="plus", membership_days=7)
    assert (code.membership_tier, code.membership_days) == ("plus", 7)
    user = await funded_user(wallet, 0)
    got = await members.redeem(user, code.code)
    assert (got.credits, got.tier, got.ends_at) == (50, "plus", clock.now + timedelta(days=7))
    assert await tier_of(engine, user) == "plus"
    with pytest.raises(AlreadyRedeemed):
        await members.redeem(user, code.code)
    second = await wallet.create_code(10, membership_tier="plus", membership_days=3)
    extended = await members.redeem(user, second.code)
    assert extended.ends_at == clock.now + timedelta(days=10)
    lower = await wallet.create_code(5, membership_tier="free", membership_days=3)
    assert (await members.redeem(user, lower.code)).tier is None  # plus runs: credits only
    assert (await wallet.balance(user)).available == 65
    with pytest.raises(InvalidAmount):
        await wallet.create_code(5, membership_days=3)


async def test_a_paid_subscription_takes_over_from_a_manual_membership(
    members: Memberships, wallet: Wallet, engine: AsyncEngine, clock: FakeClock,
) -> None:
    from core.db import write
    from memberships import SubscriptionEvent

    user = await funded_user(wallet, 0)
    await members.manual(user, "pro", 60, actor="admin:1")
    paid = SubscriptionEvent(kind="paid", source="stripe", subscription_id="sub_x",
                             user_id=user, plan_id="plus", starts_at=clock.now,
                             ends_at=clock.now + timedelta(days=30), payment_ref="pi_x")
    async with write(engine) as conn:
        outcome = await members.apply(conn, paid)
    assert outcome.outcome == "applied"
    current = await members.current(user)
    assert current is not None
    assert (current.tier, current.source) == ("plus", "stripe")
