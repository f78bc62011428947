"""Migrators wait on one lock (issue 9): `videofly db upgrade` started four times at once on an
empty database, and replicas migrating at start from several engines at once, all succeed, on
a new SQLite file and an empty PostgreSQL database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from core import migrate
from core.db import create_engine
from tests.factories import create_pg_database, drop_pg_database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "suite"])
async def empty_url(request: pytest.FixtureRequest, pg_url: str | None,
                    tmp_path: Path) -> AsyncIterator[str]:
    """A database with no tables: a new SQLite file, and the suite's own kind (an empty
    PostgreSQL database when the suite runs on PostgreSQL)."""
    if request.param == "sqlite" or pg_url is None:
        yield f"sqlite+aiosqlite:///{tmp_path / 'v.db'}"
        return
    url = await create_pg_database(pg_url, "migrators")
    try:
        yield url
    finally:
        await drop_pg_database(url)


async def _upgrade_process(url: str) -> tuple[int, str]:
    script = Path(sys.executable).with_name("videofly")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VIDEOFLY") and k != "DATABASE_URL"}
    env["VIDEOFLY__DATABASE__URL"] = url
    proc = await asyncio.create_subprocess_exec(
        *cmd, "db", "upgrade", cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")[-2000:]


async def _at_head(url: str) -> bool:
    engine = create_engine(url)
    try:
        return await migrate.current(engine) == migrate.head()
    finally:
        await engine.dispose()


@pytest.mark.slow
async def test_four_upgrade_commands_at_once(empty_url: str) -> None:
    results = await asyncio.gather(*(_upgrade_process(empty_url) for _ in range(4)))
    assert [code for code, _ in results] == [0, 0, 0, 0], [err for _, err in results]
    assert await _at_head(empty_url)


async def test_replicas_migrating_together_all_come_up(empty_url: str) -> None:
    """What three `videofly run` replicas do first, from three engines (two made by
    `core.db.create_engine`, one plain) in one process; the processes above are the other
    half."""
    engines = [create_engine(empty_url), create_engine(empty_url),
               create_async_engine(empty_url)]
    try:
        await asyncio.gather(*(migrate.upgrade(e) for e in engines))
        assert all([await migrate.current(e) == migrate.head() for e in engines])
    finally:
        for e in engines:
            await e.dispose()
