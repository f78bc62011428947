"""Plural forms in the catalogue (issue 13): no English template puts a bare number next to a
countable noun, and every text that counts reads right for 0, 1 and 2 in both languages
("1 credit", never "1 credits"; Chinese "1 积分", no plural), filled as the handlers fill it."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from bot.wechat._open import say_in
from handlers.messages import CATALOGUES, t, tn

# A number field, then (maybe a word such as "clothing" or "more") a noun that has a plural.
NOUNS = ("credits?", "days?", "photos?", "uses?", r"uses?\(s\)", "jobs?", "seconds?", "videos?",
         "messages?", "minutes?", "users?", "stars?", "codes?", "payments?")
MODIFIERS = ("new", "clothing", "more", "extra", "free", "VideoFly", "of")
BARE = re.compile(r"\{(\w+)\}\)? (?:(?:" + "|".join(MODIFIERS) + r") )?(?:" + "|".join(NOUNS)
                  + r")\b", re.IGNORECASE)


def bare_counts(key: str, template: str) -> list[str]:
    """The places in `template` where a number field stands before a countable noun; a plural
    variant's own `{count}` is what the variants exist for."""
    return [m.group(0) for m in BARE.finditer(template)
            if not ("#" in key and m.group(1) == "count")]


def test_the_check_finds_the_old_templates() -> None:
    for old in ("{name} · {credits} credits", "Code {code}: {credits} credits, {uses} use(s)",
                "It also gives {tier} for {days} days.", "up to {clothes} clothing photos",
                "{count} more messages waiting", "Today: {today_users} new users",
                "{jobs} videos at once", "{title}: {stars} Stars."):
        assert bare_counts("some.key", old), old
    assert not bare_counts("n.credits#other", "{count} credits")
    assert bare_counts("x#other", "{count} of {max} clothing photos")


def test_no_english_template_has_a_bare_count_before_a_noun() -> None:
    found = {key: hits for key, text in CATALOGUES["en"].items()
             if (hits := bare_counts(key, text))}
    assert not found, found


def credits(lang: str, n: int) -> str:
    return tn(lang, "n.credits", n)


Render = Callable[[str, int], str]
# key: how the handlers fill it, for a count n; the English texts for 1 and 2 (and 0 where the
# text can show 0: `None` where it cannot).
CASES: dict[str, tuple[Render, str, str, str | None]] = {
    "model.flat": (lambda lang, n: t(lang, "model.flat", name="Demo", credits=credits(lang, n)),
                   "Demo · 1 credit", "Demo · 2 credits", None),
    "model.from": (lambda lang, n: t(lang, "model.from", name="Kling", credits=credits(lang, n)),
                   "Kling · from 1 credit", "Kling · from 2 credits", None),
    "duration.label": (lambda lang, n: t(lang, "duration.label", seconds=5,
                                         credits=credits(lang, n)),
                       "5 s · 1 credit", "5 s · 2 credits", None),
    "gen.clothes": (lambda lang, n: tn(lang, "gen.clothes", n),
                    "Now send 1 photo of the clothes.",
                    "Now send up to 2 photos of clothes (several at once is fine).", None),
    "err.tier_clothes": (lambda lang, n: t(lang, "err.tier_clothes",
                                           limit=tn(lang, "n.clothing_photos", n)),
                         "Your plan takes up to 1 clothing photo per try-on. /plan shows plans "
                         "that take more.",
                         "Your plan takes up to 2 clothing photos per try-on. /plan shows plans "
                         "that take more.", None),
    "balance.expiring": (lambda lang, n: tn(lang, "balance.expiring", n, date="2026-03-04"),
                         "1 of them expires by 2026-03-04.", "2 of them expire by 2026-03-04.",
                         None),
    "balance.debt": (lambda lang, n: t(lang, "balance.debt", debt=credits(lang, n)),
                     "You owe 1 credit, which is taken from your next credits.",
                     "You owe 2 credits, which is taken from your next credits.", None),
    "redeem.done": (lambda lang, n: t(lang, "redeem.done", credits=credits(lang, n), balance=11),
                    "Code redeemed: +1 credit. Balance: 11.",
                    "Code redeemed: +2 credits. Balance: 11.", None),
    "topup.package": (lambda lang, n: t(lang, "topup.package", credits=credits(lang, n),
                                        price="0.99", currency="USD"),
                      "1 credit · 0.99 USD", "2 credits · 0.99 USD", None),
    "topup.package_stars": (lambda lang, n: t(lang, "topup.package_stars",
                                              credits=credits(lang, n), price="0.99",
                                              currency="USD", stars=50),
                            "1 credit · 0.99 USD or 50 ⭐", "2 credits · 0.99 USD or 50 ⭐", None),
    "topup.link": (lambda lang, n: t(lang, "topup.link", credits=credits(lang, n)),
                   "Pay for 1 credit here; your balance is topped up as soon as the payment is "
                   "done.",
                   "Pay for 2 credits here; your balance is topped up as soon as the payment is "
                   "done.", None),
    "stars.thanks": (lambda lang, n: tn(lang, "stars.thanks", n, balance=11),
                     "Thank you! 1 credit was added. Balance: 11.",
                     "Thank you! 2 credits were added. Balance: 11.", None),
    "pay.credited": (lambda lang, n: t(lang, "pay.credited", credits=credits(lang, n),
                                       balance=11),
                     "Payment received: +1 credit. Balance: 11.",
                     "Payment received: +2 credits. Balance: 11.", None),
    "pay.reversed_refund": (lambda lang, n: t(lang, "pay.reversed_refund",
                                              credits=credits(lang, n)),
                            "Your payment was refunded, so we took back 1 credit.",
                            "Your payment was refunded, so we took back 2 credits.", None),
    "pay.reversed_dispute": (lambda lang, n: t(lang, "pay.reversed_dispute",
                                               credits=credits(lang, n)),
                             "Your payment is disputed, so we took back 1 credit.",
                             "Your payment is disputed, so we took back 2 credits.", None),
    "pay.debt": (lambda lang, n: t(lang, "pay.debt", debt=credits(lang, n)),
                 "You now owe 1 credit, which is taken from your next credits.",
                 "You now owe 2 credits, which is taken from your next credits.", None),
    "pay.item": (lambda lang, n: tn(lang, "pay.item", n),
                 "1 VideoFly credit", "2 VideoFly credits", None),
    "pay.item_description": (lambda lang, n: t(lang, "pay.item_description",
                                               credits=credits(lang, n),
                                               days=tn(lang, "n.days", n)),
                             "1 credit for making videos, valid for 1 day.",
                             "2 credits for making videos, valid for 2 days.", None),
    "pay.item_description_forever": (lambda lang, n: t(lang, "pay.item_description_forever",
                                                       credits=credits(lang, n)),
                                     "1 credit for making videos, with no expiry.",
                                     "2 credits for making videos, with no expiry.", None),
    "note.admin_dispute": (lambda lang, n: t(lang, "note.admin_dispute", provider="stripe",
                                             order_id="cs_1", user_id=7,
                                             credits=credits(lang, n)),
                           "Dispute at stripe: order cs_1, user #7, 1 credit.",
                           "Dispute at stripe: order cs_1, user #7, 2 credits.", None),
    "admin.granted": (lambda lang, n: t(lang, "admin.granted", credits=credits(lang, n),
                                        user_id=7, balance=11),
                      "Granted 1 credit to user #7. Their balance: 11.",
                      "Granted 2 credits to user #7. Their balance: 11.", None),
    "admin.deducted": (lambda lang, n: t(lang, "admin.deducted", credits=credits(lang, n),
                                         user_id=7, balance=11),
                       "Took 1 credit from user #7. Their balance: 11.",
                       "Took 2 credits from user #7. Their balance: 11.", None),
    "admin.deduct_refused": (lambda lang, n: t(lang, "admin.deduct_refused", user_id=7,
                                               available=credits(lang, n)),
                             "User #7 has only 1 credit available; nothing was taken.",
                             "User #7 has only 2 credits available; nothing was taken.",
                             "User #7 has only 0 credits available; nothing was taken."),
    "admin.user_job": (lambda lang, n: t(lang, "admin.user_job", job_id=3, model="Demo",
                                         state="done", credits=credits(lang, n),
                                         date="2026-03-01 12:00"),
                       "#3 Demo · done · 1 credit · 2026-03-01 12:00",
                       "#3 Demo · done · 2 credits · 2026-03-01 12:00", None),
    "admin.user_payment": (lambda lang, n: t(lang, "admin.user_payment", provider="stars",
                                             order_id="o1", amount="50 XTR",
                                             credits=credits(lang, n), state="paid",
                                             date="2026-03-01 12:00"),
                           "stars o1 · 50 XTR · 1 credit · paid · 2026-03-01 12:00",
                           "stars o1 · 50 XTR · 2 credits · paid · 2026-03-01 12:00", None),
    "admin.code": (lambda lang, n: t(lang, "admin.code", code="GIFT", credits=credits(lang, n),
                                     uses=tn(lang, "n.uses", n), expiry="no expiry"),
                   "Code GIFT: 1 credit, 1 use, no expiry.",
                   "Code GIFT: 2 credits, 2 uses, no expiry.", None),
    "admin.code_membership": (lambda lang, n: t(lang, "admin.code_membership", tier="plus",
                                                days=tn(lang, "n.days", n)),
                              "It also gives plus for 1 day.", "It also gives plus for 2 days.",
                              None),
    "admin.refunded": (lambda lang, n: t(lang, "admin.refunded", credits=credits(lang, n)),
                       "Refunded; 1 credit taken back.", "Refunded; 2 credits taken back.",
                       "Refunded; 0 credits taken back."),
    "stats.text": (lambda lang, n: t(lang, "stats.text", **{
        f"{span}_{name}": tn(lang, key, n) if key else n
        for span in ("today", "month")
        for name, key in (("users", "n.new_users"), ("done", "n.jobs"), ("failed", ""),
                          ("granted", "n.credits"), ("spent", "n.credits"), ("paid", ""),
                          ("revenue", ""))}).split("\n")[0],
                   "Today: 1 new user, 1 job done, 1 failed, 1 credit granted, 1 credit spent.",
                   "Today: 2 new users, 2 jobs done, 2 failed, 2 credits granted, "
                   "2 credits spent.",
                   "Today: 0 new users, 0 jobs done, 0 failed, 0 credits granted, "
                   "0 credits spent."),
    "err.insufficient": (lambda lang, n: t(lang, "err.insufficient", needed=credits(lang, n),
                                           available=credits(lang, n - 1), missing=1),
                         "You need 1 credit but have 0 credits: 1 more. Get credits with "
                         "/checkin, /redeem CODE or /topup.",
                         "You need 2 credits but have 1 credit: 1 more. Get credits with "
                         "/checkin, /redeem CODE or /topup.", None),
    "console.stars": (lambda lang, n: t(lang, "console.stars", title="Starter",
                                        stars=tn(lang, "n.stars", n)),
                      "Starter: 1 Star. Telegram Stars can only be paid inside Telegram.",
                      "Starter: 2 Stars. Telegram Stars can only be paid inside Telegram.",
                      None),
    "plan.line": (lambda lang, n: t(lang, "plan.line", name="Plus", credits=credits(lang, n),
                                    days=tn(lang, "n.days", n), price="0.99 USD",
                                    unlocks="…"),
                  "• Plus: 1 credit every 1 day, 0.99 USD\n  …",
                  "• Plus: 2 credits every 2 days, 0.99 USD\n  …", None),
    "plan.unlocks": (lambda lang, n: t(lang, "plan.unlocks", jobs=tn(lang, "n.videos", n),
                                       clothes=tn(lang, "n.clothing_photos", n),
                                       models="every model"),
                     "1 video at once · up to 1 clothing photo per try-on · every model",
                     "2 videos at once · up to 2 clothing photos per try-on · every model",
                     None),
    "plan.current": (lambda lang, n: t(lang, "plan.current", name="Plus", when="Renews on x",
                                       credits=credits(lang, n)),
                     "Your plan: Plus. Renews on x. This period: 1 credit.",
                     "Your plan: Plus. Renews on x. This period: 2 credits.", None),
    "plan.item_description": (lambda lang, n: t(lang, "plan.item_description",
                                                credits=credits(lang, n),
                                                days=tn(lang, "n.days", n)),
                              "1 credit every 1 day, renewed until you cancel",
                              "2 credits every 2 days, renewed until you cancel", None),
    "plan.link": (lambda lang, n: t(lang, "plan.link", name="Plus", credits=credits(lang, n),
                                    days=tn(lang, "n.days", n)),
                  "Plus: 1 credit every 1 day, renewed until you cancel. Subscribe here:",
                  "Plus: 2 credits every 2 days, renewed until you cancel. Subscribe here:",
                  None),
    "membership.started": (lambda lang, n: t(lang, "membership.started", name="Plus",
                                             credits=credits(lang, n), date="2026-04-01"),
                           "🎉 Welcome to Plus! 1 credit added; your plan renews on 2026-04-01.",
                           "🎉 Welcome to Plus! 2 credits added; your plan renews on "
                           "2026-04-01.", None),
    "membership.renewed": (lambda lang, n: t(lang, "membership.renewed", name="Plus",
                                             credits=credits(lang, n), date="2026-04-01"),
                           "🔁 Plus renewed: 1 credit added. Next renewal: 2026-04-01.",
                           "🔁 Plus renewed: 2 credits added. Next renewal: 2026-04-01.", None),
    "membership.credited": (lambda lang, n: t(lang, "membership.credited", name="Plus",
                                              credits=credits(lang, n)),
                            "Your Plus plan added 1 credit.", "Your Plus plan added 2 credits.",
                            None),
    "membership.upgraded": (lambda lang, n: t(lang, "membership.upgraded", name="Pro",
                                              credits=credits(lang, n)),
                            "⬆️ You are on Pro now, with 1 credit extra for the rest of this "
                            "period.",
                            "⬆️ You are on Pro now, with 2 credits extra for the rest of this "
                            "period.", None),
    "cancel.job_stopped": (lambda lang, n: tn(lang, "cancel.job_stopped", n, job_id=3),
                           "#3 was not started yet, so it is cancelled: your 1 credit is back.",
                           "#3 was not started yet, so it is cancelled: your 2 credits are "
                           "back.", None),
    "wx.more": (lambda lang, n: say_in(lang)("wx.more", count=n),
                "1 more message waiting: send any message to see it.",
                "2 more messages waiting: send any message to see them.", None),
}
# The Chinese counted phrase each text shows for n (the noun without a plural).
ZH_NOUN = {"gen.clothes": "{n} 张", "err.tier_clothes": "{n} 张服装照片",
           "admin.code_membership": "{n} 天", "console.stars": "{n} 颗星",
           "plan.unlocks": "{n} 个视频", "stats.text": "新用户 {n} 人", "wx.more": "{n} 条消息",
           "pay.item": "{n} VideoFly 积分"}
WRONG = re.compile(r"(?<![\d.])1 (?:[a-z]+ )?(?:credit|day|photo|use|job|second|video|message|"
                   r"minute|user|Star)s\b")


@pytest.mark.parametrize("key", sorted(CASES))
def test_each_counted_text_in_english(key: str) -> None:
    render, one, two, zero = CASES[key]
    assert render("en", 1) == one
    assert render("en", 2) == two
    if zero is not None:
        assert render("en", 0) == zero
    assert not WRONG.search(one), one


@pytest.mark.parametrize("key", sorted(CASES))
def test_each_counted_text_in_chinese(key: str) -> None:
    render = CASES[key][0]
    for n in (1, 2):
        text = render("zh", n)
        assert ZH_NOUN.get(key, "{n} 积分").format(n=n) in text, text
        assert text != CASES[key][0]("en", n)


def test_the_cases_cover_every_plural_and_every_counted_phrase_sentence() -> None:
    plural = {key.split("#")[0] for key in CATALOGUES["en"] if "#" in key}
    assert plural - set(CASES) == {
        "n.credits", "n.days", "n.uses", "n.videos", "n.clothing_photos", "n.jobs",
        "n.new_users", "n.stars",  # the phrases themselves
        "status.elapsed", "status.estimate", "gen.short", "fail.back"}  # tested where they show


@pytest.mark.parametrize(("lang", "key", "texts"), [
    ("en", "n.days", ("0 days", "1 day", "2 days")),
    ("en", "n.uses", ("0 uses", "1 use", "2 uses")),
    ("en", "n.videos", ("0 videos", "1 video", "2 videos")),
    ("en", "n.clothing_photos", ("0 clothing photos", "1 clothing photo", "2 clothing photos")),
    ("en", "n.jobs", ("0 jobs", "1 job", "2 jobs")),
    ("en", "n.new_users", ("0 new users", "1 new user", "2 new users")),
    ("en", "n.stars", ("0 Stars", "1 Star", "2 Stars")),
    ("zh", "n.days", ("0 天", "1 天", "2 天")),
    ("zh", "n.uses", ("0 次", "1 次", "2 次")),
    ("zh", "n.clothing_photos", ("0 张服装照片", "1 张服装照片", "2 张服装照片")),
    ("zh", "n.credits", ("0 积分", "1 积分", "2 积分")),
])
def test_counted_phrases(lang: str, key: str, texts: tuple[str, str, str]) -> None:
    assert tuple(tn(lang, key, n) for n in (0, 1, 2)) == texts


def test_wechat_words_fill_plain_and_plural_keys() -> None:
    assert say_in("zh")("wx.pending") == t("zh", "wx.pending")
    assert say_in("zh")("wx.more", count=1) == "还有 1 条消息待查看：发送任意消息即可查看。"
    assert say_in("en")("wx.more", count=3) == \
        "3 more messages waiting: send any message to see them."
