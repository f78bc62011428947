"""Shared builders for tests: databases, a settable clock, funded users."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import bot.wechat._inbox_tables
import bot.wechat._tables  # noqa: F401
import core.outbox  # noqa: F401  (registers every table on the metadata)
import generation.tables  # noqa: F401
import handlers.tables  # noqa: F401
import memberships.tables  # noqa: F401
import payments.tables  # noqa: F401
import wallet.tables  # noqa: F401
from core import migrate
from core.db import create_engine, metadata
from wallet import Wallet

ENV_URL = "VIDEOFLY_TEST_DATABASE_URL"


def test_database_url() -> str | None:
    """The PostgreSQL URL the suite runs against, or None for SQLite."""
    return os.environ.get(ENV_URL) or None


class FakeClock:
    """A clock tests move by hand; starts at a fixed, timezone-aware instant."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@dataclass
class TestDatabase:
    """A migrated database for one test: a copied SQLite file, or a truncated PostgreSQL db."""

    __test__ = False  # not a test class, despite the name
    url: str

    @property
    def kind(self) -> str:
        return make_url(self.url).get_backend_name()

    def engine(self, **kw: Any) -> AsyncEngine:
        return create_engine(self.url, **kw)


async def migrated_sqlite_template(directory: Path) -> Path:
    path = directory / "template.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate.upgrade(engine)
    await engine.dispose()
    return path


def sqlite_copy(template: Path, directory: Path) -> TestDatabase:
    path = directory / f"{uuid.uuid4().hex}.db"
    shutil.copyfile(template, path)
    return TestDatabase(f"sqlite+aiosqlite:///{path}")


async def truncate_all(engine: AsyncEngine) -> None:
    names = ", ".join(t.name for t in metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def admin_url(url: str) -> str:
    """The same server's maintenance database, for CREATE/DROP DATABASE."""
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


async def create_pg_database(url: str, suffix: str) -> str:
    """Creates an empty sibling database of `url`; returns its URL."""
    base = make_url(url)
    name = f"{base.database}_{suffix}_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(admin_url(url), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    admin = create_async_engine(admin_url(url), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


async def funded_user(wallet: Wallet, credits: int, *, name: str | None = None,
                      expires_at: datetime | None = None) -> int:
    uid = await wallet.open_account("test", name or uuid.uuid4().hex)
    if credits:
        await wallet.grant(uid, credits, source="test", key=f"fund:{uid}:{uuid.uuid4().hex}",
                           expires_at=expires_at)
    return uid


# --- chat conversations (handlers) ---------------------------------------------------------


class BytesPhoto:
    """An `handlers.Attachment` over bytes in memory, as a channel adapter would hand it over."""

    def __init__(self, data: bytes, *, declared: int | None = None) -> None:
        self.data = data
        self._size = declared

    @property
    def size(self) -> int | None:
        return self._size

    async def read(self, limit: int) -> bytes:
        from handlers import AttachmentTooLarge

        if len(self.data) > limit:
            raise AttachmentTooLarge(len(self.data), limit)
        return self.data


def jpeg_bytes(width: int = 320, height: int = 240, fmt: str = "JPEG") -> bytes:
    """A small real image (a gradient) in `fmt`."""
    import io

    from PIL import Image

    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()
