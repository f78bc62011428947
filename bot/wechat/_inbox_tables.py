"""The WeChat channel's own tables (owned by `bot.wechat`; nothing else queries them).

`wechat_inbound` makes each message from WeChat count once, across replicas: WeChat retries a
POST it got no answer to (three tries, ~5 s apart), and a retry may reach another instance. The
first instance to insert the message's `key` (the MsgId, or for events the sender and
CreateTime) handles it; the others wait for its `status` to leave `working` and answer with the
`reply` it stored, so every try gets the same answer; `created_at` is when the try now
handling it claimed it, and a row still `working` long after that was left by an instance that
died: a later try takes it over (`_dedup.take_over`). Rows are deleted after `expires_at`.

`wechat_held` keeps messages for a user that WeChat would not take yet: everything late in
passive mode (an unverified account cannot send customer-service messages), and in active mode
what met the 48-hour window (45015). They go out, oldest first, when the user next writes.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, String, Table, Text

from core.db import Id, UTCDateTime, metadata

__all__ = ["wechat_held", "wechat_inbound"]

wechat_inbound = Table(
    "wechat_inbound",
    metadata,
    Column("key", String(160), primary_key=True),
    Column("openid", String(64), nullable=False),
    # working → replied (the reply went into the HTTP answer) | deferred (answered "success"
    # or the passive "send any message" notice; the answers follow later)
    Column("status", String(16), nullable=False),
    Column("reply", Text, nullable=True),  # the passive reply's text; NULL: "success"
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index("ix_wechat_inbound_expires_at", "expires_at"),
)

wechat_held = Table(
    "wechat_held",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("openid", String(64), nullable=False),
    Column("body", JSON, nullable=False),  # one message (see bot.wechat._held)
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_wechat_held_openid", "openid", "id"),
)
