"""Migrations: every revision upgrades and downgrades cleanly (the stairway), and the newest
revision builds exactly the schema the code's tables describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

import bot.wechat._inbox_tables
import bot.wechat._tables  # noqa: F401
import core.outbox  # noqa: F401  (each import registers its tables)
import generation.tables  # noqa: F401
import handlers.tables  # noqa: F401
import payments.tables  # noqa: F401
import wallet.tables  # noqa: F401
from core import migrate
from core.db import metadata


def revisions() -> list[str]:
    script = ScriptDirectory.from_config(migrate._config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_stairway_up_and_down_every_revision(empty_engine: AsyncEngine) -> None:
    revs = revisions()
    assert revs
    assert revs[-1] == migrate.head()
    previous = "base"
    for rev in revs:
        await migrate.upgrade(empty_engine, rev)
        await migrate.downgrade(empty_engine, previous)
        await migrate.upgrade(empty_engine, rev)
        assert await migrate.current(empty_engine) == rev
        previous = rev
    await migrate.downgrade(empty_engine, "base")
    assert await tables(empty_engine) <= {"alembic_version"}


async def test_migrations_match_the_tables_in_code(empty_engine: AsyncEngine) -> None:
    await migrate.upgrade(empty_engine)
    async with empty_engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), metadata))
    assert diff == []
