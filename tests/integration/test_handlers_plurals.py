"""Counts of one through the chat (issue 13), in English and Chinese: the 1-credit demo model,
a 1-credit code made and redeemed, an admin's grant and deduction of 1 credit, and a 1-credit,
1-day plan on /plan, its payment link and its welcome. "1 credit", never "1 credits"."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from core.config import PlanConfig
from memberships import Membership
from tests.factories import TestDatabase
from tests.integration._chat import PHOTO, User, buttons, chatting, texts


async def model_labels(user: User) -> list[str]:
    """The labels of the photo-to-video model menu."""
    await user.send("/generate")
    await user.press("k:image-to-video")
    await user.photo(PHOTO)
    out = await user.send("a slow pan over a gradient")
    labels = [b.label for b in buttons(out)]
    await user.send("/cancel")
    return labels


async def test_the_one_credit_model_and_a_one_credit_code(database: TestDatabase,
                                                          tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        admin, en, zh = h.user("999"), h.user("100"), h.user("200", language="zh")
        for who in (admin, en, zh):
            await who.send("/start")
        assert "Demo (offline, image to video) · 1 credit" in await model_labels(en)
        assert "Demo (offline, image to video) · 1 积分" in await model_labels(zh)

        made = texts(await admin.send("/code 1"))
        assert ": 1 credit, 1 use, no expiry." in made
        code = made.split()[1].rstrip(":")
        assert "Code redeemed: +1 credit. Balance: 11." in texts(await en.send(f"/redeem {code}"))
        made = texts(await admin.send("/code 1 2"))
        assert ": 1 credit, 2 uses, no expiry." in made
        code = made.split()[1].rstrip(":")
        assert "兑换成功：+1 积分。余额：11。" in texts(await zh.send(f"/redeem {code}"))
        assert "Available: 11 credits" in texts(await en.send("/balance"))
        assert not re.search(r"(?<![\d.])1 credits", made + texts(await admin.send("/user 100")))


async def test_an_admin_grants_and_takes_one_credit(database: TestDatabase,
                                                    tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        admin, user = h.user("999"), h.user("100", language="zh")
        await admin.send("/start")
        await user.send("/start")
        uid = await user.id()
        out = texts(await admin.send(f"/grant #{uid} 1"))
        assert f"Granted 1 credit to user #{uid}. Their balance: 11." in out
        assert "客服为你增加了 1 积分。余额：11。" in texts(await h.news(uid, "admin.granted"))
        assert "Took 10 credits" in texts(await admin.send(f"/deduct #{uid} 10"))
        refused = texts(await admin.send(f"/deduct #{uid} 2"))
        assert f"User #{uid} has only 1 credit available; nothing was taken." in refused
        assert f"Took 1 credit from user #{uid}. Their balance: 0." in texts(
            await admin.send(f"/deduct #{uid} 1"))
        assert "客服收回了 1 积分。余额：0。" in texts(await h.news(uid, "admin.deducted"))


@dataclass
class FakePlans:
    """The memberships port, by hand: one way to pay (Stripe); records the checkouts."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    def plan_methods(self, channel: str, plan: PlanConfig) -> list[str]:
        return ["stripe"]

    async def subscribe(self, *, user_id: int, channel: str, plan_id: str, method: str,
                        title: str, description: str) -> str:
        self.calls.append((title, description))
        return f"https://pay.example/{plan_id}"

    async def stars_subscription_paid(self, user_id: int, *, charge_id: str, payload: str,
                                      total_amount: int, currency: str,
                                      expires_at: datetime) -> int:
        raise AssertionError("not used here")

    async def cancel_subscription(self, user_id: int) -> Membership:
        raise AssertionError("not used here")

    async def change_plan(self, user_id: int, plan_id: str) -> Membership:
        raise AssertionError("not used here")


async def test_a_one_credit_one_day_plan(database: TestDatabase, tmp_path: Path) -> None:
    daily = PlanConfig(id="daily", tier="plus", credits=1, period_days=1, price=Decimal("0.99"))
    plans = FakePlans()
    async with chatting(database, tmp_path) as h:
        chat = h.with_deps(config=replace(h.app.config, plans=(daily,)), plans=plans)
        en, zh = h.user("100"), h.user("200", language="zh")
        for who in (en, zh):
            await who.send("/start")
        view = texts(await en.send("/plan", handlers=chat))
        assert "• Plus: 1 credit every 1 day, 0.99 USD" in view
        assert "Free: 3 videos at once · up to 1 clothing photo per try-on" in view
        link = texts(await en.press("plan:daily", handlers=chat))
        assert "Plus: 1 credit every 1 day, renewed until you cancel. Subscribe here:" in link
        assert plans.calls == [("VideoFly Plus", "1 credit every 1 day, renewed until you cancel")]

        view = texts(await zh.send("/plan", handlers=chat))
        assert "• Plus：每 1 天 1 积分，0.99 USD" in view
        assert "同时 3 个视频 · 每次换装最多 1 张服装照片" in view

        uid = await en.id()
        news = await chat.notification(uid, "membership.started", {
            "plan_id": "daily", "tier": "plus", "credits": 1,
            "renews_at": h.clock().isoformat()})
        assert "🎉 Welcome to Plus! 1 credit added; your plan renews on 2026-03-01." in \
            texts(news)
