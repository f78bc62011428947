"""The message catalogue: both languages have the same keys with the same placeholders, every key
the code uses exists, every key in the catalogue is used, and `t` fills texts in."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest
from babel import Locale

from handlers import account, errors, notify, plan, status, topup, videos
from handlers.generate import KINDS
from handlers.messages import CATALOGUES, LANGUAGES, language_of, plural_category, t, tn
from payments import tables as payment_tables

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("handlers", "bot", "payments", "webhooks", "generation", "core", "wallet",
            "providers", "storage")
# Calls that take a catalogue key, and at which position.
KEY_TAKERS = {"t": 1, "button": 1, "menu_text": 1, "Explained": 0, "PhotoRejected": 0,
              "_repeat": 3, "tn": 1}
# Keys made at run time, f"<prefix>{value}", and every value the code can put there.
FAMILIES: dict[str, tuple[str, ...]] = {
    "kind.": KINDS,
    "status.": status.FIXED,
    "state.": videos.JOB_STATES,
    "ledger.": account.LEDGER_KINDS,
    "method.": topup.METHODS,
    "lang.": LANGUAGES,
    "cmd.": account.USER_COMMANDS,
    "payment_state.": payment_tables.STATES,
    "tier.": plan.NAMED_TIERS,
    "membership.": plan.NEWS,
}


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def sources() -> list[Path]:
    return [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
            if "migrations" not in p.parts]


def used_keys() -> tuple[set[str], set[str], set[str]]:
    """(literal keys passed to key-taking calls, f-string prefixes there, every str literal)."""
    literal: set[str] = set()
    prefixes: set[str] = set()
    constants: set[str] = set()
    for path in sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                constants.add(node.value)
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else \
                func.attr if isinstance(func, ast.Attribute) else ""
            if name not in KEY_TAKERS or len(node.args) <= KEY_TAKERS[name]:
                continue
            arg = node.args[KEY_TAKERS[name]]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                literal.add(arg.value)
            elif isinstance(arg, ast.JoinedStr) and arg.values \
                    and isinstance(arg.values[0], ast.Constant):
                prefixes.add(str(arg.values[0].value))
    return literal, prefixes, constants


def bases(catalogue: dict[str, str]) -> set[str]:
    """The keys, a plural key ("n.credits#one") counted once by its base ("n.credits")."""
    return {key.split("#", 1)[0] for key in catalogue}


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    en, zh = CATALOGUES["en"], CATALOGUES["zh"]
    assert sorted(bases(en)) == sorted(bases(zh))
    for key in en.keys() & zh.keys():
        assert fields(en[key]) == fields(zh[key]), key
    for catalogue in (en, zh):
        for key, text in catalogue.items():
            assert text.strip(), key
            if "#" in key:  # every variant of a plural key has the same placeholders
                assert fields(text) == fields(catalogue[key.split("#")[0] + "#other"]), key


@pytest.mark.parametrize("lang", LANGUAGES)
def test_plural_keys_have_exactly_the_languages_categories(lang: str) -> None:
    categories = Locale.parse(lang).plural_form.tags | {"other"}
    catalogue = CATALOGUES[lang]
    plural = {key.split("#")[0] for key in catalogue if "#" in key}
    assert plural
    for base in plural:
        have = {key.split("#")[1] for key in catalogue if key.split("#")[0] == base}
        assert have == categories, (lang, base)
        assert base not in catalogue  # a plural key is only ever used through tn


def test_every_key_the_code_uses_exists() -> None:
    literal, prefixes, _ = used_keys()
    assert literal, "the scan found no keys: it is broken"
    known = set(CATALOGUES["en"]) | bases(CATALOGUES["en"])
    assert literal <= known, sorted(literal - known)
    assert prefixes <= set(FAMILIES), f"add run-time key families: {prefixes - set(FAMILIES)}"
    for prefix, values in FAMILIES.items():
        for value in values:
            assert f"{prefix}{value}" in CATALOGUES["en"], f"{prefix}{value}"
    mapped = {*notify.REASONS.values(), *account.SOURCES.values(),
              *(key for _, key in errors._PLAIN)}
    assert mapped <= set(CATALOGUES["en"]), sorted(mapped - set(CATALOGUES["en"]))


def test_every_key_in_the_catalogue_is_used() -> None:
    _, _, constants = used_keys()
    made = {f"{prefix}{value}" for prefix, values in FAMILIES.items() for value in values}
    unused = bases(CATALOGUES["en"]) - constants - made - {"reason.other"}
    assert not unused, sorted(unused)
    assert "reason.other" in constants  # the fallback reason


def test_t_fills_in_and_falls_back_to_english() -> None:
    assert t("en", "checkin.done", credits=tn("en", "n.credits", 2), balance=12) == \
        "Checked in: +2 credits. Balance: 12."
    assert t("zh", "checkin.done", credits=tn("zh", "n.credits", 2), balance=12) == \
        "签到成功：+2 积分。余额：12。"
    assert t("fr", "cancelled") == "Cancelled."
    with pytest.raises(KeyError):
        t("en", "checkin.done")  # a placeholder not given is a bug, not a blank
    with pytest.raises(KeyError):
        t("en", "no.such.key")


@pytest.mark.parametrize(("hint", "default", "expected"), [
    ("zh-hans", "en", "zh"), ("ZH", "en", "zh"), ("zh-TW", "en", "zh"), ("en-US", "zh", "zh"),
    (None, "en", "en"), ("", "zh", "zh"), ("de", "en", "en")])
def test_language_of_a_channel_hint(hint: str | None, default: str, expected: str) -> None:
    assert language_of(hint, default) == expected


@pytest.mark.parametrize(("lang", "count", "text"), [
    ("en", 1, "1 credit"), ("en", 0, "0 credits"), ("en", 2, "2 credits"),
    ("en", 21, "21 credits"), ("en", -1, "-1 credit"),
    ("zh", 1, "1 积分"), ("zh", 2, "2 积分"),
    ("fr", 1, "1 credit"),  # a language we do not have: English
])
def test_plural_forms_come_from_babel(lang: str, count: int, text: str) -> None:
    assert tn(lang, "n.credits", count) == text


def test_plural_categories_are_cldrs() -> None:
    assert [plural_category("en", n) for n in (0, 1, 2, 11)] == ["other", "one", "other",
                                                                 "other"]
    assert {plural_category("zh", n) for n in range(30)} == {"other"}
    assert plural_category("ru", 3) == "few"  # a third language would get its own forms
    assert tn("en", "status.elapsed", 1) == "1 minute so far"
    assert tn("en", "status.elapsed", 3) == "3 minutes so far"
    assert tn("zh", "status.elapsed", 1) == "已用 1 分钟"
