"""Alembic migrations, run programmatically on our own async engine.

`upgrade()` is what `videofly db upgrade` and the start of `run` and `chat` call. The scripts live
in `core/migrations/versions`; `videofly db revision -m "…"` autogenerates the next one from the
tables' metadata (review it by hand before committing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["current", "downgrade", "head", "revision", "upgrade"]

_SCRIPTS = Path(__file__).parent / "migrations"


def _config(sync_conn: Any = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = sync_conn
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(_config(c), revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.downgrade(_config(c), revision))


async def current(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda c: MigrationContext.configure(c).get_current_revision())


async def revision(engine: AsyncEngine, message: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(
            lambda c: command.revision(_config(c), message=message, autogenerate=True))


def head() -> str:
    heads = ScriptDirectory.from_config(_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations must have one head, found {heads}")
    return heads[0]
