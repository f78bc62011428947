"""`--config PATH` after the command, and error reporting: only the database's errors are
blamed on the database; an unexpected one gets an incident id, its traceback in the log."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from bot import cli
from core import migrate
from tests.integration.test_cli import videofly


def _bad_timezone(tmp_path: Path) -> Path:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[credits]\ntimezone = 'Nowhere/Land'\n")
    return cfg


@pytest.mark.parametrize("args", [("run", "--config"), ("audit", "--config"),
                                  ("chat", "--config"), ("db", "current", "--config"),
                                  ("db", "upgrade", "--config")])
def test_config_after_the_command_is_read(tmp_path: Path, args: tuple[str, ...]) -> None:
    r = videofly(*args, str(_bad_timezone(tmp_path)), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "credits.timezone" in r.stderr  # the file named after the command was loaded


def test_db_upgrade_with_config_after_the_command(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[database]\nurl = 'sqlite+aiosqlite:///{tmp_path}/c.db'\n")
    up = videofly("db", "upgrade", "--config", str(cfg), cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    assert f"at {migrate.head()}" in up.stdout
    # Before the command still works, and a value after the command wins over one before.
    other = tmp_path / "other.toml"
    assert videofly("--config", str(other), "db", "current", "--config", str(cfg),
                    cwd=tmp_path).stdout.strip() == migrate.head()


def test_a_refused_database_connection_is_the_databases(tmp_path: Path) -> None:
    r = videofly("db", "upgrade", cwd=tmp_path,
                 env={"DATABASE_URL": "postgresql+asyncpg://u:pw@127.0.0.1:1/x"})
    assert r.returncode == 2
    assert "cannot use database postgresql+asyncpg://u:***@127.0.0.1:1/x" in r.stderr


def test_an_os_error_elsewhere_is_not_blamed_on_the_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    async def long_name(config: object, args: object) -> int:
        # "File name too long", as the console's photo check hit it.
        return int(Path("x" * 300).is_file())  # noqa: ASYNC240

    monkeypatch.setitem(cli.COMMANDS, "audit", long_name)
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.ERROR)
    code = cli.main(["audit"])
    assert code == 3
    [record] = [r for r in caplog.records if "incident" in r.getMessage()]
    assert record.exc_info is not None  # the traceback goes to the log
    incident = record.args[0] if isinstance(record.args, tuple) else ""
    err = capsys.readouterr().err
    assert f"unexpected error, incident {incident}: OSError" in err  # the same id, both places
    assert "database" not in err


def test_an_os_error_from_the_driver_is_the_databases() -> None:
    async def refused() -> None:
        engine = create_async_engine("postgresql+asyncpg://u@127.0.0.1:1/x")
        try:
            async with engine.connect():
                pass
        finally:
            await engine.dispose()

    with pytest.raises(Exception) as info:  # noqa: PT011 - whatever the driver raises
        asyncio.run(refused())
    assert cli._from_database(info.value)
    with pytest.raises(OSError, match="too long") as local:
        Path("y" * 300).is_file()
    assert not cli._from_database(local.value)
