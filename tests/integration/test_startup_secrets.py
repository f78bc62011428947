"""Signing secrets at start: outside a demo the start stops naming the missing variable; a demo
makes its own once, keeps them in `<data_dir>/secrets.env` (0600) and reuses them, so links
and callbacks minted before a restart still work."""

from __future__ import annotations

import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bot._secrets import is_demo, service_secrets
from bot.app import StartupError, build_app
from core.config import Secrets
from storage import LocalStorage
from tests.factories import TestDatabase
from tests.integration.test_app_run import ROOT, demo_config
from tests.integration.test_cli import videofly

REAL = {"PROVIDER_CALLBACK_SECRET": "p" * 40, "MEDIA_LINK_SECRET": "m" * 40}


def test_what_a_demo_is(database: TestDatabase, tmp_path: Path) -> None:
    local = demo_config(database, tmp_path, "http://127.0.0.1:8080")
    assert is_demo(local)
    assert is_demo(demo_config(database, tmp_path, "http://localhost:9"))
    assert is_demo(demo_config(database, tmp_path, "http://[::1]:9"))
    assert not is_demo(demo_config(database, tmp_path, "https://bot.example.com"))
    assert not is_demo(demo_config(database, tmp_path, "http://10.0.0.5:8080"))
    s3 = demo_config(database, tmp_path, "http://127.0.0.1:8080",
                     VIDEOFLY__STORAGE__BACKEND="s3", VIDEOFLY__STORAGE__BUCKET="b")
    assert not is_demo(s3)


@pytest.mark.parametrize("missing", ["PROVIDER_CALLBACK_SECRET", "MEDIA_LINK_SECRET"])
async def test_outside_a_demo_a_missing_secret_stops_the_start(
        database: TestDatabase, tmp_path: Path, missing: str) -> None:
    config = demo_config(database, tmp_path / "data", "https://bot.example.com")
    given = {k: v for k, v in REAL.items() if k != missing}
    with pytest.raises(StartupError, match=f"set the environment variable {missing}"):
        async with build_app(config, Secrets(given)):
            pass
    assert not (tmp_path / "data" / "secrets.env").exists()


@pytest.mark.parametrize("value", ["short", "changeme-changeme-changeme"])
async def test_a_placeholder_or_short_secret_is_refused(database: TestDatabase, tmp_path: Path,
                                                        value: str) -> None:
    config = demo_config(database, tmp_path / "data", "https://bot.example.com")
    with pytest.raises(StartupError, match="PROVIDER_CALLBACK_SECRET must be") as info:
        async with build_app(config, Secrets({**REAL, "PROVIDER_CALLBACK_SECRET": value})):
            pass
    assert value not in str(info.value)


async def test_a_demo_keeps_its_secrets_across_restarts(database: TestDatabase,
                                                        tmp_path: Path) -> None:
    config = demo_config(database, tmp_path / "data", "http://127.0.0.1:9")
    async with build_app(config, Secrets({})) as first:
        token = first.jobs.job_token("demo", 7)
        link = await first.storage.url("videos/x.mp4", ttl=3600)
    kept = tmp_path / "data" / "secrets.env"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    query = parse_qs(urlsplit(link).query)
    async with build_app(config, Secrets({})) as second:  # a restart
        assert second.jobs.check_token("demo", 7, token)
        assert isinstance(second.storage, LocalStorage)
        assert second.storage.verify_link("videos/x.mp4", query["exp"][0], query["sig"][0])
    # Values in the environment win over the kept ones.
    async with build_app(config, Secrets(REAL)) as third:
        assert not third.jobs.check_token("demo", 7, token)


def test_two_demos_starting_together_agree(database: TestDatabase, tmp_path: Path) -> None:
    config = demo_config(database, tmp_path / "data", "http://127.0.0.1:9")
    made = [service_secrets(config, Secrets({})) for _ in range(3)]
    assert len({m["PROVIDER_CALLBACK_SECRET"] for m in made}) == 1
    assert list((tmp_path / "data").iterdir()) == [tmp_path / "data" / "secrets.env"]


def test_videofly_run_outside_a_demo_names_the_variable(database: TestDatabase,
                                                        tmp_path: Path) -> None:
    r = videofly("run", "--config", str(ROOT / "config.toml"), cwd=tmp_path, env={
        "DATABASE_URL": database.url, "VIDEOFLY__HTTP__PUBLIC_URL": "https://bot.example.com",
        "VIDEOFLY__APP__DATA_DIR": str(tmp_path / "data")})
    assert r.returncode == 2, r.stderr
    assert "set the environment variable PROVIDER_CALLBACK_SECRET" in r.stderr
    assert "Traceback" not in r.stderr
