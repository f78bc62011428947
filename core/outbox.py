"""The outbox: messages to users, written in the same transaction as the change that causes
them (a job finished, credits arrived, a grant was made), delivered later by the dispatcher.

A row names the user, a message `kind` (a key of the message catalogue) and its parameters; the
text is rendered at delivery, in the user's language then. A crash between the change and the
delivery loses nothing: the row is there when the process comes back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    insert,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import Id, UTCDateTime, metadata

__all__ = ["enqueue", "outbox"]

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("last_error", String(500), nullable=True),
    Index("ix_outbox_due", "next_attempt_at",
          postgresql_where=text("state = 'pending'"), sqlite_where=text("state = 'pending'")),
    # The dispatcher's per-user order check and its recovery sweep of lapsed 'sending' rows.
    Index("ix_outbox_open_by_user", "user_id", "id",
          postgresql_where=text("state IN ('pending', 'sending')"),
          sqlite_where=text("state IN ('pending', 'sending')")),
)


async def enqueue(conn: AsyncConnection, *, user_id: int, kind: str, payload: dict[str, Any],
                  now: datetime) -> None:
    """Queues a message inside the caller's transaction; it is visible only after commit."""
    await conn.execute(insert(outbox).values(
        user_id=user_id, kind=kind, payload=payload, next_attempt_at=now, created_at=now))
