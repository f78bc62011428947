"""The chat's own tables: where each user is in a conversation, and job status messages.

`chats` holds one row per user: the conversation step and its draft (JSON), a `version` bumped on
every change (two instances handling the same user's updates at once: the second write sees a
changed version and re-reads), when it last changed (idle conversations time out), and whether
the user blocked the bot (the dispatcher stops sending until they write again).

`job_messages` remembers, per job, the status message the chat shows while it runs and what it
last said, so the dispatcher edits it only when the job's state or progress changed.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Integer, String, Table

from core.db import Id, UTCDateTime, metadata

__all__ = ["chats", "job_messages"]

chats = Table(
    "chats",
    metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("step", String(32), nullable=False, server_default="idle"),
    Column("draft", JSON, nullable=False),
    Column("version", Integer, nullable=False, server_default="0"),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("blocked_at", UTCDateTime(), nullable=True),
)

job_messages = Table(
    "job_messages",
    metadata,
    Column("job_id", Id, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("channel", String(32), nullable=False),
    Column("address", String(128), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("shown", String(64), nullable=False, server_default=""),
    Column("updated_at", UTCDateTime(), nullable=False),
)
