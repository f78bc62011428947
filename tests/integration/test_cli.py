"""`videofly db …` and `videofly audit` through the installed console script."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from core import migrate
from tests.factories import TestDatabase, funded_user
from wallet import Wallet

ROOT = Path(__file__).resolve().parents[2]


def videofly(*args: str, env: dict[str, str] | None = None,
             cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("videofly")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("VIDEOFLY") and k != "DATABASE_URL"}
    return subprocess.run([*cmd, *args], cwd=cwd, env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=60, check=False)


def test_upgrade_then_audit_on_a_new_sqlite_file(tmp_path: Path) -> None:
    env = {"VIDEOFLY__DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/new/v.db"}
    before = videofly("audit", env=env)
    assert before.returncode == 2
    assert "videofly db upgrade" in before.stderr
    up = videofly("db", "upgrade", env=env)
    assert up.returncode == 0, up.stderr
    assert f"at {migrate.head()}" in up.stdout
    assert videofly("db", "current", env=env).stdout.strip() == migrate.head()
    ok = videofly("audit", env=env)
    assert (ok.returncode, ok.stdout.strip()) == (
        0, "audit: 0 accounts, 0 ledger entries: all invariants hold")


async def test_audit_exits_1_and_lists_violations(database: TestDatabase) -> None:
    engine = database.engine()
    wallet = Wallet(engine)
    uid = await funded_user(wallet, 10)
    await wallet.hold(uid, 4, ref="job")
    env = {"DATABASE_URL": database.url}
    clean = videofly("audit", env=env)
    assert clean.returncode == 0, clean.stderr
    assert "1 accounts, 2 ledger entries: all invariants hold" in clean.stdout
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE accounts SET available = available + 5"))
    await engine.dispose()
    broken = videofly("audit", env=env)
    assert broken.returncode == 1
    assert f"VIOLATION available = sum of grant remainders - debt: user {uid}" in broken.stdout
    assert "violation(s)" in broken.stdout


def test_a_bad_config_value_fails_at_start_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[credits]\ntimezone = 'Nowhere/Land'\n")
    r = videofly("--config", str(cfg), "audit")
    assert r.returncode == 2
    assert "credits.timezone" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_unreachable_database_is_reported_without_its_password() -> None:
    r = videofly("audit", env={"DATABASE_URL": "postgresql+asyncpg://u:s3cr3t@127.0.0.1:1/x"})
    assert r.returncode == 2
    assert "cannot use database" in r.stderr
    assert "s3cr3t" not in r.stderr + r.stdout
    assert "Traceback" not in r.stderr


def test_chat_ends_cleanly_at_end_of_input_in_a_fresh_directory(tmp_path: Path) -> None:
    """No config file, no database yet: the embedded defaults make both under ./data."""
    r = subprocess.run(
        [*videofly_cmd(), "chat"], cwd=tmp_path, input="/balance\n", capture_output=True,
        text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items()
             if not k.startswith(("VIDEOFLY", "LANG", "LC_")) and k != "DATABASE_URL"})
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # the log went to the file
    assert "Available: 10 credits" in r.stdout
    assert r.stdout.rstrip().endswith("Bye!")
    assert (tmp_path / "data" / "videofly.db").is_file()
    assert "console session on" in (tmp_path / "data" / "videofly.log").read_text()


def test_chat_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*videofly_cmd(), "chat"], cwd=tmp_path, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items()
             if not k.startswith("VIDEOFLY") and k != "DATABASE_URL"})
    try:
        assert proc.stdout is not None
        for _ in range(100):  # bounded: wait for the first menu
            if proc.stdout.readline().startswith("1. "):  # DESIGN.md: `N. label`
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "Bye!" in out


def videofly_cmd() -> list[str]:
    script = Path(sys.executable).with_name("videofly")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
