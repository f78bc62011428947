"""Telegram Stars end to end, through the stack `videofly run` builds (`service`: `build_app`,
the web server, the scheduler, `open_channels`, the outbox `Dispatcher`) and the real
python-telegram-bot against the fake Bot API: /topup → package → Stars → sendInvoice →
pre-checkout → successful_payment → credits (once) → admin /refund → refundStarPayment →
clawback. And the adapter's pre-checkout hook on its own: late or failing → refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core.db import read
from core.outbox import outbox
from handlers.messages import t, tn
from payments.tables import payments
from storage import LocalStorage
from tests.factories import TestDatabase
from tests.fakes.telegram import Call, FakeUser, TelegramFake
from wallet.tables import identities

from .conftest import FAST, ScriptedHandlers, Service, running_bot, service

BUYER, ADMIN = 5005, 9001
STARTER = {"credits": 100, "stars": 250}  # the shipped config.toml's first package
ENV = {"VIDEOFLY__TELEGRAM__ADMINS": f"[{ADMIN}]",
       # Stripe offered too, so the buyer picks Stars among two ways; never called here.
       "VIDEOFLY__PAYMENTS__STRIPE_API_BASE": "http://127.0.0.1:9"}
SECRETS = {"STRIPE_SECRET_KEY": "sk_test_" + "s" * 24,
           "STRIPE_WEBHOOK_SECRET": "whsec_" + "w" * 24}
WAIT = 15.0


async def after(tg: TelegramFake, act: Callable[[], Any], method: str, chat: int | None,
                where: Callable[[Call], bool] | None = None) -> Call:
    """Does `act` and returns the first `method` call to `chat` (matching `where`) after it."""
    mark = len(tg.calls)
    act()
    [call] = await tg.wait_for(method, chat_id=chat, after=mark, within=WAIT, where=where)
    return call


def says(text: str) -> Callable[[Call], bool]:
    return lambda c: text in str(c.params.get("text"))


def is_text(text: str) -> Callable[[Call], bool]:
    return lambda c: c.params.get("text") == text


def has_button(data: str) -> Callable[[Call], bool]:
    return lambda c: any(d == data for _, d in c.buttons())


async def user_id(svc: Service, telegram_id: int) -> int:
    async with read(svc.app.engine) as conn:
        return int((await conn.execute(select(identities.c.user_id).where(
            identities.c.channel == "telegram",
            identities.c.external_id == str(telegram_id)))).scalar_one())


async def outbox_kinds(svc: Service, uid: int) -> list[str]:
    async with read(svc.app.engine) as conn:
        return list((await conn.execute(select(outbox.c.kind).where(
            outbox.c.user_id == uid).order_by(outbox.c.id))).scalars())


async def order_state(svc: Service, charge_id: str) -> tuple[str, int]:
    async with read(svc.app.engine) as conn:
        row = (await conn.execute(select(payments.c.state, payments.c.refunded).where(
            payments.c.charge_id == charge_id))).one()
    return row.state, row.refunded


async def invoice_for_starter(tg: TelegramFake, buyer: FakeUser) -> Call:
    """/topup → the starter package → Telegram Stars; returns the sendInvoice call."""
    await after(tg, lambda: buyer.says("/topup"), "sendMessage", buyer.id,
                has_button("topup:starter"))
    methods = await after(tg, lambda: buyer.presses("p:starter"), "sendMessage", buyer.id,
                          has_button("pay:starter:stars"))
    assert has_button("pay:starter:stripe")(methods)  # two ways offered: the buyer picks one
    return await after(tg, lambda: buyer.presses("$:starter:stars"), "sendInvoice", buyer.id)


async def answer(tg: TelegramFake, buyer: FakeUser, payload: str, total: int,
                 currency: str = "XTR") -> Call:
    """A pre_checkout_query from `buyer`; returns the bot's answerPreCheckoutQuery to it."""
    asked: dict[str, Any] = {}

    def ask() -> None:
        asked.update(buyer.checks_out(payload, total, currency)["pre_checkout_query"])

    return await after(tg, ask, "answerPreCheckoutQuery", None,
                       lambda c: c.params["pre_checkout_query_id"] == asked["id"])


async def paid(tg: TelegramFake, buyer: FakeUser, payload: str, charge: str,
               answer: str) -> Call:
    """Telegram's successful_payment for `payload`; waits for the bot's `answer` to it (the
    outbox's own notices to the same chat may come before or after)."""
    return await after(tg, lambda: buyer.pays(payload, STARTER["stars"], charge),
                       "sendMessage", buyer.id, is_text(answer))


async def start(tg: TelegramFake, person: FakeUser) -> None:
    """/start, waiting for the whole answer (its last message is the main menu)."""
    await after(tg, lambda: person.says("/start"), "sendMessage", person.id,
                has_button("generate"))


async def test_stars_from_invoice_to_refund(database: TestDatabase, tmp_path: Path,
                                            tg: TelegramFake) -> None:
    async with service(database, tmp_path, tg, env=ENV, secrets=SECRETS) as svc:
        buyer, admin = tg.user(BUYER), tg.user(ADMIN)
        await start(tg, buyer)
        await start(tg, admin)
        assert t("en", "welcome") in tg.texts(BUYER)[0]
        uid = await user_id(svc, BUYER)

        invoice = await invoice_for_starter(tg, buyer)
        payload = str(invoice.params["payload"])
        assert invoice.params["currency"] == "XTR"
        assert not invoice.params.get("provider_token")
        assert [p["amount"] for p in invoice.params["prices"]] == [STARTER["stars"]]
        assert 1 <= len(payload.encode()) <= 128
        assert invoice.params["title"] == tn("en", "pay.item", STARTER["credits"])

        # Pre-checkout: Telegram asks before taking the Stars; only the invoice as sent passes.
        order, package = payload.rsplit(":", 1)
        assert package == "starter"
        unknown_order = f"vf1:vf_{'0' * 24}:starter"
        assert unknown_order != payload
        refused = t("en", "tg.checkout_refused")
        for bad in [(f"{order}:pro", STARTER["stars"], "XTR"),  # another package's name
                    (unknown_order, STARTER["stars"], "XTR"),  # an order we never made
                    (payload, STARTER["stars"] - 1, "XTR"),  # the amount changed
                    (payload, STARTER["stars"], "USD"),  # not Stars
                    ("hello", STARTER["stars"], "XTR")]:  # not ours at all
            no = await answer(tg, buyer, *bad)
            assert (no.params["ok"], no.params.get("error_message")) == ("false", refused), bad
        yes = await answer(tg, buyer, payload, STARTER["stars"])
        assert yes.params["ok"] == "true"
        assert "error_message" not in yes.params

        # The payment arrives twice (Telegram redelivers): credited once, told each time.
        charge = "stxTEST-charge-0001"
        await paid(tg, buyer, payload, charge, tn("en", "stars.thanks", 100, balance=110))
        await paid(tg, buyer, payload, charge, t("en", "stars.already"))
        credited = t("en", "pay.credited", credits="100 credits", balance=110)
        await tg.wait_for("sendMessage", chat_id=BUYER, within=WAIT, where=says(credited))
        assert (await svc.app.wallet.balance(uid)).available == 110
        assert await outbox_kinds(svc, uid) == ["payment.credited"]
        assert await order_state(svc, charge) == ("paid", 0)

        # The buyer spends most of it; then the admin refunds the payment.
        hold = await svc.app.wallet.hold(uid, 105, ref="e2e-videos")
        await svc.app.wallet.settle(hold.id)
        done = await after(tg, lambda: admin.says(f"/refund {charge}"), "sendMessage", ADMIN)
        assert done.params["text"] == t("en", "admin.refunded", credits="100 credits")
        assert tg.refunds == [(BUYER, charge)]
        [refund] = tg.of("refundStarPayment")
        assert (refund.params["user_id"], refund.params["telegram_payment_charge_id"]) == (
            str(BUYER), charge)
        # 5 credits were left to take back; the other 95 become debt, and the buyer is told.
        reversed_text = "\n".join([t("en", "pay.reversed_refund", credits="100 credits"),
                                   t("en", "pay.debt", debt="95 credits")])
        await tg.wait_for("sendMessage", chat_id=BUYER, within=WAIT, where=says(reversed_text))
        balance = await svc.app.wallet.balance(uid)
        assert (balance.available, balance.debt) == (-95, 95)
        assert tg.texts(BUYER).count(credited) == 1  # the redelivered payment told nothing
        assert await order_state(svc, charge) == ("refunded", 250)

        # A second /refund changes nothing and does not call Telegram again.
        again = await after(tg, lambda: admin.says(f"/refund {charge}"), "sendMessage", ADMIN)
        assert again.params["text"] == t("en", "admin.refunded", credits="0 credits")
        assert len(tg.of("refundStarPayment")) == 1

        # The next purchase pays the debt off first.
        invoice = await after(tg, lambda: buyer.presses("$:starter:stars"), "sendInvoice", BUYER)
        yes = await answer(tg, buyer, str(invoice.params["payload"]), STARTER["stars"])
        assert yes.params["ok"] == "true"
        await paid(tg, buyer, str(invoice.params["payload"]), "stxTEST-charge-0002",
                   tn("en", "stars.thanks", 100, balance=5))
        balance = await svc.app.wallet.balance(uid)
        assert (balance.available, balance.debt) == (5, 0)
        assert await outbox_kinds(svc, uid) == ["payment.credited", "payment.reversed",
                                                "payment.credited"]
        assert await svc.app.wallet.audit() == []


async def test_a_refund_telegram_refuses_claws_nothing_back(database: TestDatabase,
                                                            tmp_path: Path,
                                                            tg: TelegramFake) -> None:
    async with service(database, tmp_path, tg, env=ENV, secrets=SECRETS) as svc:
        buyer, admin = tg.user(BUYER), tg.user(ADMIN)
        await start(tg, buyer)
        await start(tg, admin)
        invoice = await invoice_for_starter(tg, buyer)
        charge = "stxTEST-charge-0003"
        await paid(tg, buyer, str(invoice.params["payload"]), charge,
                   tn("en", "stars.thanks", 100, balance=110))
        uid = await user_id(svc, BUYER)
        assert (await svc.app.wallet.balance(uid)).available == 110

        tg.script_next("refundStarPayment", tg.error(400, "Bad Request: CHARGE_NOT_FOUND"))
        told = await after(tg, lambda: admin.says(f"/refund {charge}"), "sendMessage", ADMIN)
        assert len(tg.of("refundStarPayment")) == 1
        text = str(told.params["text"])
        assert text == t("en", "err.refund_failed")
        assert "CHARGE_NOT_FOUND" not in text  # never the Bot API's own words
        assert tg.token not in text
        assert tg.refunds == []
        assert (await svc.app.wallet.balance(uid)).available == 110
        assert await order_state(svc, charge) == ("paid", 0)

        # Telegram takes it on the next try: now the credits go back, once.
        done = await after(tg, lambda: admin.says(f"/refund {charge}"), "sendMessage", ADMIN)
        assert done.params["text"] == t("en", "admin.refunded", credits="100 credits")
        assert tg.refunds == [(BUYER, charge)]
        assert (await svc.app.wallet.balance(uid)).available == 10
        assert await svc.app.wallet.audit() == []


async def test_a_late_or_failing_pre_checkout_hook_refuses(tg: TelegramFake,
                                                           storage: LocalStorage) -> None:
    release = asyncio.Event()

    async def slow(payload: str, *, total_amount: int, currency: str) -> bool:
        if payload == "boom":
            raise RuntimeError("database down")
        await release.wait()  # never set: stands in for a hung database
        return True

    async with running_bot(tg, ScriptedHandlers(), storage, pre_checkout=slow,
                           options=replace(FAST, pre_checkout_timeout=0.2)):
        buyer = tg.user(61, language_code="zh")
        buyer.checks_out("late", 10)
        buyer.checks_out("boom", 10)
        late, failed = await tg.wait_for("answerPreCheckoutQuery", count=2, within=WAIT)
    for answer in (late, failed):
        assert (answer.params["ok"], answer.params["error_message"]) == (
            "false", t("zh", "tg.checkout_refused"))
