"""/plan through the chat (channel-neutral `Handlers`, as the console and WeChat run it): the
plans side by side, Subscribe through Stripe (the local fake), the membership after the paid
invoice, Upgrade at the next cycle, Cancel renewal; the membership news; codes carrying
membership days; the tier refusals that offer /plan."""

from __future__ import annotations

from pathlib import Path

from generation import TierRequired, TooManyClothes
from handlers.errors import error_text
from handlers.messages import t
from tests.factories import TestDatabase
from tests.fakes import stripe as fake
from tests.integration._chat import buttons, chatting, choices, texts
from tests.integration._members import period, ts
from tests.integration.test_payments_stack import PayStack


async def test_plan_subscribe_upgrade_and_cancel_in_the_chat(
    database: TestDatabase, tmp_path: Path, pay: PayStack,
) -> None:
    async with chatting(database, tmp_path, plans=pay.payments) as h:
        user = h.user("700", channel="console")
        view = await user.send("/plan")
        text = texts(view)
        assert "💎 Plans" in text
        assert t("en", "plan.current_free") in text
        assert "up to 1 clothing photo per try-on" in text
        assert "up to 10 clothing photos" in text
        assert {"plan:plus", "plan:pro"} <= set(choices(view))
        assert "plancancel" not in choices(view)

        # One way to pay here (Stripe; Stars needs in-chat invoices): straight to the checkout.
        link = await user.press("plan:plus")
        assert "Subscribe here" in texts(link)
        assert texts(link) == texts(await user.press("subscribe:plus:stripe"))
        [pay_button] = buttons(link)
        assert pay_button.url is not None
        assert pay_button.url.startswith("https://checkout.stripe.com/")
        session = pay.stripe.sessions[pay_button.url.rsplit("/", 1)[1]]
        assert session["subscription_metadata"]["plan_id"] == "plus"

        uid = await user.id()
        sub = pay.stripe.subscribe(session)
        start, end = period(ts(pay.clock.now))
        status, body = await pay.stripe_event(fake.invoice_paid(
            sub, start=start, end=end, reason="subscription_create"))
        assert (status, body["outcome"]) == (200, "applied")
        [news] = await h.news(uid, "membership.started")
        assert "Welcome to Plus! 300 credits" in texts([news])

        mine = await user.send("/plan")
        assert "Your plan: Plus. Renews on" in texts(mine)
        assert "This period: 300 credits." in texts(mine)
        assert "plancancel" in choices(mine)
        assert "plan:plus" not in choices(mine)
        assert any(b.label == "Upgrade to Pro" for b in buttons(mine))

        moved = await user.press("plan:pro")
        assert "you move to Pro at your next renewal" in texts(moved)
        assert "It changes to Pro on" in texts(await user.send("/plan"))

        ask = await user.press("plancancel")
        assert "Stop renewing Plus?" in texts(ask)
        done = await user.press("plancancel:yes")
        assert "Plus will not renew" in texts(done)
        assert pay.stripe.subscription_calls[-1][1] == {"cancel_at_period_end": "true"}
        again = await user.press("plancancel:yes")
        assert t("en", "plan.not_subscribed") in texts(again)


async def test_without_a_payments_service_the_plans_are_shown_but_not_sold(
    database: TestDatabase, tmp_path: Path,
) -> None:
    async with chatting(database, tmp_path) as h:
        out = await h.user("701", channel="console").send("/plan")
        assert t("en", "plan.none") in texts(out)
        assert not [c for c in choices(out) if c.startswith("plan:")]


async def test_codes_with_membership_days_and_the_admins_tier(
    database: TestDatabase, tmp_path: Path,
) -> None:
    async with chatting(database, tmp_path) as h:
        admin, user = h.user("999"), h.user("702")
        await user.send("/start")
        await admin.send("/start")
        made = texts(await admin.send("/code 20 5 plus:7"))
        assert "It also gives plus for 7 days." in made
        code = made.split()[1].rstrip(":")
        got = texts(await user.send(f"/redeem {code}"))
        assert "…and Plus until" in got
        uid = await user.id()
        info = texts(await admin.send(f"/user #{uid}"))
        assert "Membership: plus (plan -, redeem, active)" in info
        assert "No tier 'gold'" in texts(await admin.send(f"/tier #{uid} gold 3"))
        assert f"User #{uid} is on the free plan now." in texts(
            await admin.send(f"/tier #{uid} free 0"))
        assert "Membership: none" in texts(await admin.send(f"/user #{uid}"))
        assert t("en", "unknown") == texts(await user.send(f"/tier #{uid} pro 3"))


def test_tier_refusals_offer_the_plans() -> None:
    assert "/plan" in error_text("en", TierRequired("cinema", ("pro",)))
    assert "Pro" in error_text("en", TierRequired("cinema", ("pro",)))
    assert "/plan" in error_text("zh", TooManyClothes(1))
    assert "1" in error_text("en", TooManyClothes(1))
