"""Configuration: defaults, the shipped file, environment overrides, and errors that name keys."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from core.config import Config, ConfigError, Secrets, load_config

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(body, encoding="utf-8")
    return p


def test_shipped_config_loads_and_matches_the_defaults_where_it_sets_them() -> None:
    cfg = load_config(ROOT / "config.toml", environ={})
    assert cfg.database.url == "sqlite+aiosqlite:///data/videofly.db"
    assert cfg.app == Config().app
    assert cfg.credits == Config().credits
    assert [m.id for m in cfg.models if m.enabled] == ["demo-i2v", "demo-t2v", "demo-tryon"]
    assert cfg.packages[0].price == Decimal("4.99")


def test_no_file_at_the_default_path_gives_defaults(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(environ={}) == Config()


def test_an_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(environ={"VIDEOFLY_CONFIG": str(tmp_path / "nope.toml")})


def test_environment_overrides_with_typed_values(tmp_path: Path) -> None:
    p = write(tmp_path, "[http]\nport = 8000\n")
    cfg = load_config(p, environ={
        "VIDEOFLY__HTTP__PORT": "9001",
        "VIDEOFLY__TELEGRAM__ADMINS": "[1, 2]",
        "VIDEOFLY__CREDITS__TIMEZONE": "Asia/Shanghai",
        "DATABASE_URL": "postgresql+asyncpg://u:pw@db/x",
    })
    assert cfg.http.port == 9001
    assert cfg.telegram.admins == (1, 2)
    assert cfg.credits.timezone == "Asia/Shanghai"
    assert cfg.database.url == "postgresql+asyncpg://u:pw@db/x"


@pytest.mark.parametrize(("body", "env", "named"), [
    ("[http]\nport = 70000\n", {}, "http.port"),
    ("[http]\nport = 'eighty'\n", {}, "http.port"),
    ("[credits]\ntimezone = 'Mars/Olympus'\n", {}, "credits.timezone"),
    ("[credits]\ncheckin_amount = -1\n", {}, "credits.checkin_amount"),
    ("[databse]\nurl = 'x'\n", {}, "databse"),
    ("[http]\nprot = 1\n", {}, "http.prot"),
    ("", {"VIDEOFLY__HTTP__PORT": "x"}, "VIDEOFLY__HTTP__PORT"),
    ("", {"DATABASE_URL": "mysql://root:hunter2@db/x"}, "DATABASE_URL"),
    ("[[models]]\nid='a'\nname='A'\nprovider='demo'\nkind='image-to-video'\n", {},
     "models.0"),
    ("[[models]]\nid='a'\nname='A'\nprovider='demo'\nkind='x'\ncredits=1\n", {},
     "models.0.kind"),
    ("[[packages]]\nid='p'\ncredits=1\nprice=1\ncurrency='dollars'\n", {}, "packages.0"),
    ("[wechat]\nmode = 'service'\n", {}, "wechat.mode"),
    ("[wechat]\nreply_window_seconds = 5.0\n", {}, "wechat.reply_window_seconds"),
    ("[wechat]\nmax_body_bytes = 10\n", {}, "wechat.max_body_bytes"),
    ("[payments]\nstripe_methods = ['card', 'WeChat Pay']\n", {}, "payments.stripe_methods"),
    ("[payments]\nstripe_methods = ['card', 'card']\n", {}, "payments.stripe_methods"),
])
def test_a_wrong_value_names_its_key(tmp_path: Path, body: str, env: dict[str, str],
                                     named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, body), environ=env)
    assert named in str(err.value)
    assert "hunter2" not in str(err.value)


def test_duplicate_model_ids_are_refused(tmp_path: Path) -> None:
    model = "[[models]]\nid='a'\nname='A'\nprovider='demo'\nkind='text-to-video'\ncredits=1\n"
    with pytest.raises(ConfigError, match="duplicate id 'a'"):
        load_config(write(tmp_path, model * 2), environ={})


def test_config_is_frozen() -> None:
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.http.port = 1  # type: ignore[misc]


def test_secrets_come_from_the_environment_and_never_show() -> None:
    s = Secrets.from_env({"STRIPE_SECRET_KEY": "sk_live_abc", "HOME": "/root",
                          "KIE_API_KEY": ""})
    assert dict(s) == {"STRIPE_SECRET_KEY": "sk_live_abc"}
    assert "sk_live_abc" not in repr(s)
