"""`migrate.upgrade()` to head skips Alembic when the database is already there, and only then.

The head read from the scripts' source must be Alembic's own; an empty database, one a
revision behind, and one at head each end at head. (That a warm `videofly run` does not load
Alembic at all is checked in `test_startup_imports.py`.)
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core import migrate


def test_the_head_read_from_the_scripts_is_alembics() -> None:
    assert migrate.script_head() == migrate.head()


async def test_upgrade_reaches_head_from_empty_behind_and_at_head(
        empty_engine: AsyncEngine) -> None:
    assert not await migrate._at_head(empty_engine)  # no version table: Alembic decides
    await migrate.upgrade(empty_engine)
    assert await migrate.current(empty_engine) == migrate.head()
    assert await migrate._at_head(empty_engine)
    await migrate.upgrade(empty_engine)  # at head: nothing happens
    assert await migrate.current(empty_engine) == migrate.head()

    behind = "0004"
    await migrate.downgrade(empty_engine, behind)
    assert await migrate.current(empty_engine) == behind
    assert not await migrate._at_head(empty_engine)
    await migrate.upgrade(empty_engine)
    assert await migrate.current(empty_engine) == migrate.head()


async def test_a_version_table_naming_another_revision_is_not_head(
        empty_engine: AsyncEngine) -> None:
    await migrate.upgrade(empty_engine)
    async with empty_engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'elsewhere'"))
    assert not await migrate._at_head(empty_engine)
