"""Plans, tiers and the membership settings in the config; the old per-tier keys are refused
with what to write instead; the plain rules (period keys, proration, upgrades)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from core.config import Config, ConfigError, PlanConfig, TierConfig, load_config
from memberships import is_upgrade, period_key, prorated

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(body, encoding="utf-8")
    return p


def test_the_shipped_config_has_a_plus_and_a_pro_plan_and_three_tiers() -> None:
    cfg = load_config(ROOT / "config.toml", environ={})
    assert [(p.id, p.tier) for p in cfg.plans] == [("plus", "plus"), ("pro", "pro")]
    assert list(cfg.tiers) == ["free", "plus", "pro"]
    assert (cfg.tier("free").max_clothes, cfg.tier("free").concurrency) == (1, 3)
    assert cfg.tier("plus").max_clothes == 10
    assert cfg.memberships.upgrade_policy == "next_cycle"
    assert cfg.chat.max_clothes("pro") == cfg.tier("pro").max_clothes
    assert cfg.generation.limit_for("plus") == cfg.tier("plus").concurrency


@pytest.mark.parametrize(("section", "key", "new"), [
    ("chat", "tryon_max_clothes", "max_clothes"),
    ("generation", "concurrency", "concurrency"),
])
def test_the_old_per_tier_keys_stop_the_start_with_what_to_rename(
    tmp_path: Path, section: str, key: str, new: str,
) -> None:
    p = write(tmp_path, f"[{section}]\n{key} = {{ default = 3 }}\n")
    with pytest.raises(ConfigError) as err:
        load_config(p, environ={})
    text = str(err.value)
    assert f"[{section}] {key}" in text
    assert f"{new} = N" in text
    assert "[tiers.free]" in text
    env = {f"VIDEOFLY__{section.upper()}__{key.upper()}": "{ default = 3 }"}
    with pytest.raises(ConfigError, match="environment variable"):
        load_config(write(tmp_path, ""), environ=env)


def test_tier_and_plan_mistakes_name_the_key(tmp_path: Path) -> None:
    cases = {
        "[tiers.plus]\nconcurrency = 2\n": "tiers.free",
        "[tiers.free]\nmax_clothes = 11\n": "max_clothes",
        "[tiers.free]\nmodels = ['nope']\n": "unknown model 'nope'",
        "[[plans]]\nid = 'x'\ntier = 'gold'\ncredits = 1\n": "not in [tiers]",
        "[[plans]]\nid = 'x'\ntier = 'free'\ncredits = 1\n": "paid tier",
        "[[plans]]\nid = 'x'\ntier = 'plus'\ncredits = 1\nstars = 5\nperiod_days = 7\n":
            "30 days",
        "[memberships]\nupgrade_policy = 'sometimes'\n": "upgrade_policy",
    }
    for body, expected in cases.items():
        with pytest.raises(ConfigError, match=expected.replace("[", r"\[")):
            load_config(write(tmp_path, body), environ={})


def test_a_tier_rule_allows_listed_models_or_all() -> None:
    assert TierConfig().allows("anything")
    assert not TierConfig(models=("a",)).allows("b")
    assert Config().tier("no-such-tier") == Config().tier("free")


def test_a_period_key_names_the_subscription_and_the_start() -> None:
    assert period_key("stripe", "sub_1", T0) == f"stripe:sub_1:{int(T0.timestamp())}"
    assert period_key("stripe", "sub_1", T0) != period_key("stripe", "sub_1",
                                                            T0 + timedelta(days=30))


def test_proration_is_the_difference_for_the_rest_of_the_period_rounded_down() -> None:
    end = T0 + timedelta(days=30)
    assert prorated(300, 1000, now=T0, start=T0, end=end) == 700
    assert prorated(300, 1000, now=T0 + timedelta(days=10), start=T0, end=end) == 466
    assert prorated(300, 1000, now=end, start=T0, end=end) == 0
    assert prorated(1000, 300, now=T0, start=T0, end=end) == 0


def test_an_upgrade_is_a_later_tier_or_more_credits_in_the_same_tier() -> None:
    def plan(tier: str, credits: int) -> PlanConfig:
        return PlanConfig(id=f"{tier}{credits}", tier=tier, credits=credits,
                          price=Decimal("1"))

    tiers = ["free", "plus", "pro"]
    assert is_upgrade(tiers, plan("plus", 300), plan("pro", 100))
    assert not is_upgrade(tiers, plan("pro", 100), plan("plus", 900))
    assert is_upgrade(tiers, plan("plus", 300), plan("plus", 400))
    assert is_upgrade(tiers, None, plan("plus", 1))
