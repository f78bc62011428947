"""The chat's own tables: where each user is in a conversation, and job status messages.

`chats` holds one row per user: the conversation step and its draft (JSON), a `version` bumped on
every change (two instances handling the same user's updates at once: the second write sees a
changed version and re-reads), when it last changed (idle conversations time out), and whether
the user blocked the bot (the dispatcher stops sending until they write again), and `menu`: on a
channel without buttons, the data of the numbered choices the user was last shown, in order
(JSON list; NULL: none), so a reply "2" is read by whichever instance gets it.

`chat_turns` is the per-user turn lease across instances (`bot.ordering`): one row per channel
identity, held by `holder` until `until` (a crashed holder's lease simply runs out). It is keyed
by the channel address, not the user, so it also orders a new user's first messages.

`job_messages` remembers, per job, the status message the chat shows while it runs and what it
last said, so the dispatcher edits it only when the job's state or progress changed.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Integer, String, Table

from core.db import Id, UTCDateTime, metadata

__all__ = ["chat_turns", "chats", "job_messages"]

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
    Column("menu", JSON, nullable=True),
)

chat_turns = Table(
    "chat_turns",
    metadata,
    Column("channel", String(32), primary_key=True),
    Column("address", String(128), primary_key=True),
    Column("holder", String(32), nullable=True),
    Column("until", UTCDateTime(), nullable=True),
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
