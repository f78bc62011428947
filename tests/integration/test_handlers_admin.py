"""Admin commands through `Handlers.handle`: /grant and /deduct in the ledger with the admin as
actor and the user told through the outbox, /user, /code, /stats with its PNG chart, /refund,
USER resolution, number checks, and non-admins getting the unknown-command answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from core.config import Secrets
from handlers import Inbound, Picture, StarsPayment, Text
from payments import Payments, StarsInvoice
from tests.factories import TestDatabase
from tests.integration._chat import chatting, texts
from tests.integration.test_handlers_commands import FakeTopUp
from tests.integration.test_handlers_generate import confirm, to_confirm
from wallet.tables import ledger


async def test_grant_and_deduct_are_in_the_ledger_and_told_to_the_user(
        database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        admin, user = h.user("999"), h.user("100")
        await admin.send("/start")
        await user.send("/start")
        uid = await user.id()
        out = texts(await admin.send(f"/grant #{uid} 25 goodwill for the outage"))
        assert f"Granted 25 credits to user #{uid}. Their balance: 35." in out
        [(kind, payload)] = await h.outbox(uid)
        assert (kind, payload) == ("admin.granted", {"credits": 25,
                                                     "reason": "goodwill for the outage"})
        told = texts(await h.news(uid, "admin.granted"))
        assert "Support added 25 credits. Balance: 35." in told
        assert "goodwill" in told

        refused = texts(await admin.send("/deduct 100 36"))  # 100: the Telegram id
        assert "only 35 credits available; nothing was taken" in refused
        assert "Took 5 credits" in texts(await admin.send("/deduct 100 5 duplicate"))
        assert "took back 5 credits. Balance: 30" in texts(await h.news(uid, "admin.deducted"))
        async with h.app.engine.connect() as conn:
            rows = (await conn.execute(select(ledger.c.kind, ledger.c.amount, ledger.c.actor,
                                              ledger.c.note).where(
                ledger.c.user_id == uid, ledger.c.actor.is_not(None)).order_by(
                ledger.c.id))).all()
        assert [tuple(r) for r in rows] == [
            ("grant", 25, "telegram:999", "goodwill for the outage"),
            ("clawback", -5, "telegram:999", "duplicate")]


async def test_user_resolution_and_bad_numbers(database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        admin = h.user("999")
        await admin.send("/start")
        wechat = h.user("oPENid-abc", channel="wechat")
        await wechat.send("/start")
        wid = await wechat.id()
        info = texts(await admin.send("/user oPENid-abc"))
        assert f"User #{wid}" in info
        assert "wechat:oPENid-abc" in info
        assert "No jobs." in info
        assert f"User #{wid}" in texts(await admin.send(f"/user {wid}"))  # no such Telegram id
        assert "No user nobody" in texts(await admin.send("/user nobody"))
        assert "No user #4242" in texts(await admin.send("/grant #4242 5"))
        for bad in ("0", "-5", "abc", "1000001", "99999999999999999999"):
            out = texts(await admin.send(f"/grant #{wid} {bad}"))
            assert "is not a whole number from 1 to 1000000" in out, bad
        assert "Usage: /grant" in texts(await admin.send("/grant"))
        assert await wechat.available() == 10


async def test_user_shows_recent_jobs(database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        admin, user = h.user("999"), h.user("100")
        await to_confirm(user)
        job_id = await confirm(user)
        await h.finished(job_id)
        info = texts(await admin.send("/user 100"))
        assert f"#{job_id} Demo (offline, image to video) · done · 1 credit ·" in info
        assert "Available 9, reserved 0, debt 0" in info


async def test_codes_made_by_an_admin_can_be_redeemed(database: TestDatabase,
                                                      tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        admin, user = h.user("999"), h.user("100")
        out = texts(await admin.send("/code 15 2 7"))
        assert "15 credits, 2 uses, valid until 2026-03-08 12:00 UTC" in out
        code = out.split("Code ", 1)[1].split(":", 1)[0]
        await user.send("/start")
        assert "+15 credits" in texts(await user.send(f"/redeem {code}"))
        assert "no expiry" in texts(await admin.send("/code 3"))
        assert "not a whole number" in texts(await admin.send("/code 3 0"))


async def test_stats_numbers_and_chart(database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        admin, user = h.user("999"), h.user("100")
        await to_confirm(user)
        job_id = await confirm(user)
        await h.finished(job_id)
        h.clock.advance(days=1)
        await admin.send("/start")
        out = await admin.send("/stats")
        text, picture = out
        assert isinstance(text, Text)
        assert isinstance(picture, Picture)
        assert text.text.startswith("Today: 1 new user, 0 jobs done")  # the admin, today
        assert "Last 30 days: 2 new users, 1 job done, 0 failed, 20 credits granted, " \
               "1 credit spent" in text.text
        assert picture.data.startswith(b"\x89PNG")


async def test_refund_goes_through_payments(database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        assert "not set up" in texts(await h.user("999").send("/refund ch-1"))
    pay = FakeTopUp()
    async with chatting(database, tmp_path, topup=pay) as h:
        assert "100 credits taken back" in texts(await h.user("999").send("/refund ch-1"))
        assert pay.calls == [("refund", "ch-1", "telegram:999")]


@pytest.mark.parametrize("command", ["/grant 100 5", "/deduct 100 1", "/user 100", "/code 5",
                                     "/stats", "/refund ch-1"])
async def test_non_admins_get_the_unknown_command_answer(database: TestDatabase,
                                                         tmp_path: Path, command: str) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user("100")
        await user.send("/start")
        unknown = await user.send("/nosuchcommand")
        assert await user.send(command) == unknown
        assert await h.user("oX", channel="wechat").send(command) != unknown  # its welcome
        assert await h.user("oX", channel="wechat").send(command) == unknown
        assert await user.available() == 10


async def test_user_and_stats_show_payments(database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        admin, user = h.user("999"), h.user("100")
        await admin.send("/start")
        await user.send("/start")
        assert "No payments." in texts(await admin.send("/user 100"))
        pay = Payments(engine=h.app.engine, wallet=h.app.wallet, config=h.app.config,
                       secrets=Secrets({}), http=h.app.http, clock=h.clock)
        user_pay = h.with_deps(topup=pay)
        invoice = await pay.checkout(user_id=await user.id(), channel="telegram",
                                     package_id="starter", method="stars", title="100 credits",
                                     description="d")
        assert isinstance(invoice, StarsInvoice)
        paid = StarsPayment(charge_id="tg-charge-1", payload=invoice.payload, currency="XTR",
                            total_amount=invoice.stars)
        out = await user_pay.handle(Inbound(channel="telegram", address="100", payment=paid))
        assert "100" in texts(out)
        info = texts(await admin.send("/user 100"))
        assert "Recent payments:" in info
        assert f"stars {invoice.payload.split(':')[1]} · 250 XTR · 100 credits · paid" in info
        text = texts(await admin.send("/stats"))
        assert "Payments today: 1 (250 XTR); last 30 days: 1 (250 XTR)." in text
