"""The user's commands through `Handlers.handle`: /balance, /history paging, /checkin, /redeem
(every refusal), /language, /help, /topup with and without payments, Telegram Stars, and the
rendering of the outbox messages other packages write."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import pytest

from core.config import ChatConfig
from handlers import Invoice, StarsPayment, Text
from payments import StarsInvoice
from tests.factories import TestDatabase
from tests.integration._chat import buttons, chatting, choices, texts


async def test_balance_shows_held_and_what_expires_soon(database: TestDatabase,
                                                        tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        await user.send("/start")  # 10 credits until 2026-03-31
        uid = await user.id()
        await h.app.wallet.grant(uid, 5, source="test", key="soon",
                                 expires_at=h.clock() + timedelta(days=3))
        await h.app.wallet.hold(uid, 2, ref="test-hold")
        out = texts(await user.send("/balance"))
        assert "Available: 13 credits" in out
        assert "running jobs: 2" in out
        assert "3 of them expire by 2026-03-04" in out
        hold = await h.app.wallet.hold(uid, 2, ref="test-hold")
        await h.app.wallet.release(hold.id)


async def test_history_pages_back_and_forth(database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path,
                        chat=replace(ChatConfig(), history_page_size=2)) as h:
        user = h.user()
        await user.send("/start")
        uid = await user.id()
        for i in range(4):
            await h.app.wallet.grant(uid, i + 1, source="admin", key=f"admin:t{i}")
        first = await user.send("/history")  # newest first: +4 +3
        assert "+4" in texts(first)
        assert "+3" in texts(first)
        assert "+2" not in texts(first)
        assert "(from support)" in texts(first)
        [older] = choices(first)
        second = await user.press(older)
        assert "+2" in texts(second)
        assert "+1" in texts(second)
        assert [b.label for b in buttons(second)] == ["◀ Older", "Newer ▶"]
        third = await user.press(choices(second)[0])
        assert "(welcome bonus)" in texts(third)
        assert "+10" in texts(third)
        assert [b.label for b in buttons(third)] == ["Newer ▶"]
        back = await user.press(choices(third)[0])
        assert texts(back) == texts(second)
        newest = await user.press(choices(back)[1])
        assert texts(newest) == texts(first)


async def test_checkin_once_a_day(database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        await user.send("/start")
        assert "+2 credits. Balance: 12" in texts(await user.press("c:checkin"))
        again = texts(await user.send("/checkin"))
        assert "already checked in" in again
        assert "2026-03-02 00:00 (UTC)" in again
        h.clock.advance(hours=12)
        assert "Balance: 14" in texts(await user.send("/checkin"))


async def test_redeem_and_every_refusal(database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        wallet = h.app.wallet
        await wallet.create_code(7, max_uses=1, code="GIFT-ONE")
        await wallet.create_code(5, max_uses=5, code="LATE-CODE",
                                 expires_at=h.clock() + timedelta(hours=1))
        alice, bob = h.user("1"), h.user("2")
        await alice.send("/start")
        await bob.send("/start")
        assert "Send the code like this" in texts(await alice.send("/redeem"))
        assert "+7 credits. Balance: 17" in texts(await alice.send("/redeem gift-one"))
        assert "already redeemed" in texts(await alice.send("/redeem GIFT-ONE"))
        assert "used up" in texts(await bob.send("/redeem GIFT-ONE"))
        assert "does not exist" in texts(await bob.send("/redeem NOPE-NOPE"))
        h.clock.advance(hours=2)
        assert "expired" in texts(await bob.send("/redeem LATE-CODE"))


async def test_language_is_stored_and_used(database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        await user.send("/start")
        assert choices(await user.send("/language")) == ["lang:en", "lang:zh"]
        assert "语言已设置为中文" in texts(await user.press("l:zh"))
        assert "可用：10 积分" in texts(await user.send("/balance"))
        assert ("generate", "制作视频") in h.handlers.command_menu("zh")
        assert "generate" in dict(h.handlers.command_menu("en"))
        assert "grant" not in dict(h.handlers.command_menu("en"))


async def test_help_and_unknown_commands(database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user, admin = h.user(), h.user("999")
        await user.send("/start")
        await admin.send("/start")
        assert "/checkin" in texts(await user.send("/help"))
        assert "/grant" not in texts(await user.send("/help"))
        assert "/grant" in texts(await admin.send("/help"))
        assert "don't know that command" in texts(await user.send("/frobnicate"))
        assert "Choose from the menu" in texts(await user.send("hello there"))


async def test_topup_without_payments_says_how_to_get_credits(database: TestDatabase,
                                                              tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        await user.send("/start")
        out = texts(await user.send("/topup"))
        assert "100 credits · 4.99 USD or 250 ⭐" in out
        assert "/checkin" in out
        assert "/redeem" in out


@dataclass
class FakeTopUp:
    """The payments port, by hand: records the calls, answers what the test sets."""

    offered: list[str] = field(default_factory=lambda: ["stripe", "stars"])
    calls: list[tuple[str, ...]] = field(default_factory=list)
    paid: set[str] = field(default_factory=set)

    def methods(self, channel: str) -> list[str]:
        return self.offered if channel == "telegram" else ["stripe"]

    async def checkout(self, *, user_id: int, channel: str, package_id: str, method: str,
                       title: str, description: str) -> str | StarsInvoice:
        self.calls.append(("checkout", package_id, method, title, description))
        if method == "stars":
            return StarsInvoice(payload=f"{package_id}:1", stars=250, package_id=package_id)
        return f"https://pay.example/{package_id}"

    async def stars_paid(self, user_id: int, payment: StarsPayment) -> int:
        if payment.charge_id in self.paid:
            return 0
        self.paid.add(payment.charge_id)
        return 100

    async def refund_stars(self, charge_id: str, *, actor: str) -> int:
        self.calls.append(("refund", charge_id, actor))
        return 100


async def test_topup_with_payments(database: TestDatabase, tmp_path: Path) -> None:
    pay = FakeTopUp()
    async with chatting(database, tmp_path, topup=pay) as h:
        user = h.user()
        await user.send("/start")
        menu = await user.send("/topup")
        assert choices(menu) == ["topup:starter", "topup:pro", "cancel"]
        methods = await user.press("p:starter")
        assert choices(methods) == ["pay:starter:stripe", "pay:starter:stars", "cancel"]
        link = await user.press("$:starter:stripe")
        [paybutton] = buttons(link)
        assert paybutton.url == "https://pay.example/starter"
        assert paybutton.label == "Pay 4.99 USD"
        [invoice] = await user.press("$:starter:stars")
        assert isinstance(invoice, Invoice)
        assert invoice.stars == 250
        # The chat writes the item's words (payments returns data): on the invoice, and for
        # the payment page through the checkout call.
        assert invoice.title == "100 VideoFly credits"
        assert invoice.description == "100 credits for making videos, valid for 365 days."
        assert pay.calls[0] == ("checkout", "starter", "stripe", invoice.title,
                                invoice.description)
        assert "out of date" in texts(await user.press("$:starter:paypal"))
        assert "out of date" in texts(await user.press("p:nope"))
        pay.offered = ["stars"]  # one way to pay: straight to the checkout
        [direct] = await user.press("p:pro")
        assert isinstance(direct, Invoice)
        stars = StarsPayment(charge_id="ch-1", payload="starter:1", currency="XTR",
                             total_amount=250)
        assert "100 credits were added" in texts(await user.send(payment=stars))
        assert "already credited" in texts(await user.send(payment=stars))


async def test_outbox_messages_from_other_packages_render(database: TestDatabase,
                                                          tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        await user.send("/start")
        uid = await user.id()
        note = h.handlers.notification
        [credited] = await note(uid, "payment.credited",
                                {"credits": 100, "package_id": "starter", "provider": "stripe"})
        assert isinstance(credited, Text)
        assert "+100 credits. Balance: 10" in credited.text
        disputed = texts(await note(uid, "payment.reversed",
                                    {"credits": 100, "debt": 30, "reason": "dispute"}))
        assert "disputed" in disputed
        assert "owe 30" in disputed
        refund = texts(await note(uid, "payment.reversed",
                                  {"credits": 5, "debt": 0, "reason": "refund"}))
        assert "refunded" in refund
        assert "owe" not in refund
        dispute = texts(await note(uid, "admin.dispute", {"provider": "stripe",
                                                          "order_id": "cs_1", "user_id": 7,
                                                          "credits": 100}))
        assert "order cs_1, user #7" in dispute
        assert await note(uid, "no.such.kind", {}) == []
        assert await note(uid, "payment.credited", {"nope": 1}) == []
        assert await note(uid, "job.completed", {"job_id": 12345, "credits": 1,
                                                 "keys": [], "thumbnail": None}) == []


class BrokenTopUp(FakeTopUp):
    async def checkout(self, *, user_id: int, channel: str, package_id: str, method: str,
                       title: str, description: str) -> str | StarsInvoice:
        raise RuntimeError("stripe said no: sk_live_SECRET")


async def test_an_unexpected_error_shows_an_incident_id_and_logs_it(
        database: TestDatabase, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with chatting(database, tmp_path, topup=BrokenTopUp()) as h:
        user = h.user()
        await user.send("/start")
        out = texts(await user.press("$:starter:stripe"))
        assert "incident" in out
        assert "SECRET" not in out
        incident = out.split("incident ", 1)[1].split(")", 1)[0]
        [record] = [r for r in caplog.records if incident in r.getMessage()]
        assert record.exc_info is not None
        assert "sk_live_SECRET" in str(record.exc_info[1])
