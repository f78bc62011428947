"""The jobs table: one row per generation request, from quote to stored result."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from core.db import Id, UTCDateTime, metadata

jobs = Table(
    "jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("model_id", String(64), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("prompt", Text, nullable=False),
    Column("inputs", JSON, nullable=False),  # storage keys of the uploaded photos
    Column("duration", Integer, nullable=True),
    Column("aspect_ratio", String(16), nullable=True),
    Column("credits", BigInteger, nullable=False),
    Column("hold_id", Id, nullable=True),
    Column("state", String(16), nullable=False),
    Column("task_id", String(200), nullable=True),  # the provider's id once it accepted
    Column("progress", Integer, nullable=True),
    Column("failure", String(32), nullable=True),  # a reason code: provider, deadline, …
    Column("failure_detail", String(500), nullable=True),  # for operators; never a secret
    Column("result_urls", JSON, nullable=True),  # where the provider left the result
    Column("result_keys", JSON, nullable=True),  # our storage keys of the stored results
    Column("thumbnail_key", String(512), nullable=True),
    Column("result_bytes", BigInteger, nullable=True),
    Column("polls", Integer, nullable=False, server_default="0"),
    # Polls in a row answered "no such task" (TaskNotFound); a few fail the job.
    Column("missing_polls", Integer, nullable=False, server_default="0"),
    Column("next_check_at", UTCDateTime(), nullable=True),
    Column("deadline_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("archived", Boolean, nullable=False, server_default=text("false")),
    CheckConstraint(
        "state IN ('pending', 'generating', 'uploading', 'completed', 'failed')",
        name="state_known"),
    Index("ix_jobs_user_id_created_at", "user_id", "created_at"),
    Index("ix_jobs_state_next_check_at", "state", "next_check_at"),
    Index("ix_jobs_provider_task_id", "provider", "task_id", unique=True),
)
