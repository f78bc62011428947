"""Memberships on Telegram, end to end through the stack `videofly run` builds and the real
python-telegram-bot against the fake Bot API: /plan → Plus → Telegram Stars →
createInvoiceLink with a 30-day `subscription_period` → pre-checkout → the first recurring
successful_payment (Plus, credits, the welcome message through the outbox) → a renewal (once,
even when redelivered) → Cancel renewal → editUserStarSubscription → the tier stays to the end
of the paid period, then the sweep ends it. And the admin's /tier and /user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from core.db import read
from handlers.messages import t
from tests.factories import TestDatabase
from tests.fakes.telegram import TelegramFake
from wallet.tables import users

from .conftest import service
from .test_telegram_stars import (
    ENV,
    SECRETS,
    WAIT,
    after,
    has_button,
    outbox_kinds,
    says,
    start,
    user_id,
)

BUYER, ADMIN = 5105, 9001
PLUS = {"credits": 300, "stars": 500}  # the shipped config.toml's Plus plan
MONTH = timedelta(seconds=2_592_000)


async def tier(svc: object, uid: int) -> str:
    async with read(svc.app.engine) as conn:  # type: ignore[attr-defined]
        return str((await conn.execute(select(users.c.tier).where(users.c.id == uid)))
                   .scalar_one())


async def test_a_stars_membership_from_link_to_cancel(database: TestDatabase, tmp_path: Path,
                                                      tg: TelegramFake) -> None:
    async with service(database, tmp_path, tg, env=ENV, secrets=SECRETS) as svc:
        buyer, admin = tg.user(BUYER), tg.user(ADMIN)
        await start(tg, buyer)
        await start(tg, admin)
        uid = await user_id(svc, BUYER)

        shown = await after(tg, lambda: buyer.says("/plan"), "sendMessage", BUYER,
                            has_button("plan:plus"))
        text = str(shown.params["text"])
        assert t("en", "plan.current_free") in text
        assert "Plus" in text
        assert "Pro" in text
        methods = await after(tg, lambda: buyer.presses("plan:plus"), "sendMessage", BUYER,
                              has_button("subscribe:plus:stars"))
        assert has_button("subscribe:plus:stripe")(methods)
        link = await after(tg, lambda: buyer.presses("subscribe:plus:stars"), "sendMessage",
                           BUYER, says("Subscribe here"))
        [made] = tg.invoice_links
        assert int(made["subscription_period"]) == 2_592_000
        assert made["currency"] == "XTR"
        assert [int(p["amount"]) for p in made["prices"]] == [PLUS["stars"]]
        assert (t("en", "plan.pay_stars", stars=500), made["link"]) in link.buttons()
        payload = str(made["payload"])

        # Pre-checkout: the subscription invoice passes at its price only.
        for total, ok in ((PLUS["stars"] - 1, "false"), (PLUS["stars"], "true")):
            query = buyer.checks_out(payload, total)["pre_checkout_query"]
            [answer] = await tg.wait_for(
                "answerPreCheckoutQuery", within=WAIT,
                where=lambda c, q=query: c.params["pre_checkout_query_id"] == q["id"])
            assert answer.params["ok"] == ok

        # The first period, then a renewal delivered twice.
        first_end = int((datetime.now(UTC) + MONTH).timestamp())
        await after(tg, lambda: buyer.pays(payload, PLUS["stars"], "stxSUB-1",
                                           subscription_expires=first_end, first=True),
                    "sendMessage", BUYER, says(t("en", "plan.paid")))
        await tg.wait_for("sendMessage", chat_id=BUYER, within=WAIT,
                          where=says("Welcome to Plus"))
        assert await tier(svc, uid) == "plus"
        assert (await svc.app.wallet.balance(uid)).available == 10 + PLUS["credits"]
        second_end = first_end + int(MONTH.total_seconds())
        for answer_key in ("plan.paid", "stars.already"):
            await after(tg, lambda: buyer.pays(payload, PLUS["stars"], "stxSUB-2",
                                               subscription_expires=second_end),
                        "sendMessage", BUYER, says(t("en", answer_key)))
        await tg.wait_for("sendMessage", chat_id=BUYER, within=WAIT,
                          where=says("Plus renewed"))
        assert (await svc.app.wallet.balance(uid)).available == 10 + 2 * PLUS["credits"]

        # /plan shows the membership; cancel asks first, then calls editUserStarSubscription.
        mine = await after(tg, lambda: buyer.says("/plan"), "sendMessage", BUYER,
                           has_button("plancancel"))
        assert "Your plan: Plus" in str(mine.params["text"])
        assert "This period: 300 credits." in str(mine.params["text"])
        await after(tg, lambda: buyer.presses("plancancel"), "sendMessage", BUYER,
                    has_button("plancancel:yes"))
        await after(tg, lambda: buyer.presses("plancancel:yes"), "sendMessage", BUYER,
                    says("will not renew"))
        assert tg.subscription_edits == [(BUYER, "stxSUB-1", True)]
        assert await tier(svc, uid) == "plus"  # to the end of the paid period
        assert await svc.app.payments.memberships.end_due(
            datetime.fromtimestamp(second_end, UTC)) == 1
        assert await tier(svc, uid) == "free"
        # (The sweep ran at the period's end, a month ahead: its message is due then.)
        assert (await outbox_kinds(svc, uid))[-1] == "membership.ended"
        assert not [x for x in tg.texts(BUYER) if "will not renew" in x and "Done" not in x]

        # The admin: /tier, then /user shows it; anyone else gets the unknown-command answer.
        done = await after(tg, lambda: admin.says(f"/tier #{uid} pro 7"), "sendMessage", ADMIN)
        assert f"User #{uid} has pro until" in str(done.params["text"])
        info = await after(tg, lambda: admin.says(f"/user #{uid}"), "sendMessage", ADMIN)
        assert "Membership: pro (plan -, admin, active)" in str(info.params["text"])
        refused = await after(tg, lambda: buyer.says(f"/tier #{uid} pro 7"), "sendMessage",
                              BUYER)
        assert refused.params["text"] == t("en", "unknown")
        assert await svc.app.wallet.audit() == []
