"""The message catalogue: both languages have the same keys with the same placeholders, every key
the code uses exists, every key in the catalogue is used, and `t` fills texts in."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest

from handlers import account, errors, notify, plan, topup, videos
from handlers.generate import KINDS
from handlers.messages import CATALOGUES, LANGUAGES, language_of, t
from payments import tables as payment_tables

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("handlers", "bot", "payments", "webhooks", "generation", "core", "wallet",
            "providers", "storage")
# Calls that take a catalogue key, and at which position.
KEY_TAKERS = {"t": 1, "button": 1, "menu_text": 1, "Explained": 0, "PhotoRejected": 0,
              "_repeat": 3}
# Keys made at run time, f"<prefix>{value}", and every value the code can put there.
FAMILIES: dict[str, tuple[str, ...]] = {
    "kind.": KINDS,
    "status.": ("queued", "generating", "uploading"),
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


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    en, zh = CATALOGUES["en"], CATALOGUES["zh"]
    assert sorted(en) == sorted(zh)
    for key in en:
        assert fields(en[key]) == fields(zh[key]), key
        assert en[key].strip(), key
        assert zh[key].strip(), key


def test_every_key_the_code_uses_exists() -> None:
    literal, prefixes, _ = used_keys()
    assert literal, "the scan found no keys: it is broken"
    assert literal <= set(CATALOGUES["en"]), sorted(literal - set(CATALOGUES["en"]))
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
    unused = set(CATALOGUES["en"]) - constants - made - {"reason.other"}
    assert not unused, sorted(unused)
    assert "reason.other" in constants  # the fallback reason


def test_t_fills_in_and_falls_back_to_english() -> None:
    assert t("en", "checkin.done", credits=2, balance=12) == \
        "Checked in: +2 credits. Balance: 12."
    assert t("zh", "checkin.done", credits=2, balance=12) == "签到成功：+2 积分。余额：12。"
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
