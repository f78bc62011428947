"""The WeChat channel's own tables (SQLAlchemy Core); only bot/wechat queries them.

`wechat_tokens`: the one access token per app id that every replica shares, with its expiry, when
it was fetched, and a lease (`lease_owner` until `lease_until`): the replica holding the lease
fetches a new token, the others read the row (see `_token`).

`wechat_peers`: delivery state per openid. `last_inbound_at` opens WeChat's 48 h
customer-service window; `cs_sent` counts the customer-service messages sent since then (WeChat
allows about 5 per user message); `held` says why messages wait for the user's next message
("window" after 45015, "quota" after 45047, "passive" for 48001), NULL when nothing waits.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table, Text

from core.db import UTCDateTime, metadata

__all__ = ["wechat_peers", "wechat_tokens"]

wechat_tokens = Table(
    "wechat_tokens",
    metadata,
    Column("app_id", String(64), primary_key=True),
    # WeChat asks for at least 512 characters of storage for an access token.
    Column("access_token", Text, nullable=False, server_default=""),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("fetched_at", UTCDateTime(), nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)

wechat_peers = Table(
    "wechat_peers",
    metadata,
    Column("openid", String(128), primary_key=True),
    Column("last_inbound_at", UTCDateTime(), nullable=True),
    Column("cs_sent", Integer, nullable=False, server_default="0"),
    Column("held", String(16), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)
