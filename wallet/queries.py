"""The wallet's tables as seen from other packages: who a user is, and counts of the ledger.

The wallet owns `users`, `identities` and `accounts` with its money tables (one owner per
table: tests/unit/test_ownership.py). Other packages call these functions inside their own
`core.db.read` / `core.db.write` transaction (each takes the `AsyncConnection`), or compose the
selectables below into their own statement when a hot path must stay one statement (the chat's
"who is talking": identity, user, chat row and balance in one SELECT).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import accounts, identities, ledger, users

__all__ = [
    "USER_ID",
    "address",
    "available_locked",
    "count_accounts",
    "count_ledger",
    "find_user",
    "identities_of",
    "identity_user",
    "language",
    "ledger_by_kind",
    "ledger_since",
    "lock_user_tier",
    "lookup",
    "newer_entries",
    "set_language",
    "set_tier",
    "signups_since",
    "user_exists",
    "user_row",
    "who",
    "with_address",
]

# The user's id column in `who()`; join your own tables on it.
USER_ID: ColumnElement[int] = users.c.id


def who() -> Select[Any]:
    """The user of the identity (`:channel`, `:address`): id, language, tier. Add columns and
    outer joins on `USER_ID` to read more in the same statement."""
    return (select(users.c.id, users.c.language, users.c.tier)
            .select_from(identities.join(users, users.c.id == identities.c.user_id))
            .where(identities.c.channel == bindparam("channel"),
                   identities.c.external_id == bindparam("address")))


def identity_user() -> Any:
    """The user id of the identity (`:channel`, `:address`) as a scalar subquery, to compose
    into another package's statement on its own table."""
    return (select(identities.c.user_id)
            .where(identities.c.channel == bindparam("channel"),
                   identities.c.external_id == bindparam("address"))
            .scalar_subquery())


def with_address(query: Select[Any], user_id: ColumnElement[Any],
                 channels: Sequence[str]) -> Select[Any]:
    """`query` joined with the identities of the user `user_id` on `channels`, with their
    `channel` and `external_id` as columns (a user on two channels gives two rows)."""
    return (query.add_columns(identities.c.channel, identities.c.external_id)
            .join(identities, and_(identities.c.user_id == user_id,
                                   identities.c.channel.in_(list(channels)))))


async def find_user(conn: AsyncConnection, channel: str, external_id: str) -> int | None:
    found = (await conn.execute(select(identities.c.user_id).where(
        identities.c.channel == channel, identities.c.external_id == external_id))).scalar()
    return None if found is None else int(found)


async def user_exists(conn: AsyncConnection, user_id: int) -> bool:
    return (await conn.execute(select(users.c.id).where(users.c.id == user_id))).first() \
        is not None


async def lookup(conn: AsyncConnection, who: str) -> int | None:
    """The user an admin names: `#123` (internal id), digits (a Telegram id, else an
    internal id), anything else a WeChat openid; None when nobody matches."""
    if not 0 < len(who) <= 128:
        return None

    async def by_id(value: str) -> int | None:
        if not value.isdigit() or len(value) > 18:
            return None
        return int(value) if await user_exists(conn, int(value)) else None

    if who.startswith("#"):
        return await by_id(who[1:])
    if who.isdigit():
        return await find_user(conn, "telegram", who) or await by_id(who)
    return await find_user(conn, "wechat", who)


async def user_row(conn: AsyncConnection, user_id: int) -> Any:
    """The user's row (id, created_at, language, tier), or None."""
    return (await conn.execute(select(users).where(users.c.id == user_id))).first()


async def identities_of(conn: AsyncConnection, user_id: int) -> list[tuple[str, str]]:
    """(channel, external id) of each identity of the user, oldest first."""
    rows = await conn.execute(select(identities.c.channel, identities.c.external_id)
                              .where(identities.c.user_id == user_id)
                              .order_by(identities.c.created_at))
    return [(r.channel, r.external_id) for r in rows]


async def address(conn: AsyncConnection, user_id: int, channel: str) -> str | None:
    """The user's id on `channel`, if they have one."""
    return (await conn.execute(select(identities.c.external_id).where(
        identities.c.user_id == user_id, identities.c.channel == channel).limit(1))).scalar()


async def language(conn: AsyncConnection, user_id: int) -> str | None:
    return (await conn.execute(select(users.c.language)
                               .where(users.c.id == user_id))).scalar()


async def set_language(conn: AsyncConnection, user_id: int, lang: str) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(language=lang))


async def set_tier(conn: AsyncConnection, user_id: int, tier: str) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(tier=tier))


async def lock_user_tier(conn: AsyncConnection, user_id: int) -> str | None:
    """The user's tier, with the user row locked to serialise what the caller does for this
    user. FOR NO KEY UPDATE, not FOR UPDATE: a settle holding the account row takes FOR KEY
    SHARE on the user row (the ledger's foreign key), and FOR UPDATE would deadlock with it."""
    return (await conn.execute(select(users.c.tier).where(users.c.id == user_id)
                               .with_for_update(key_share=True))).scalar()


async def available_locked(conn: AsyncConnection, user_id: int) -> int:
    """The account's available credits, its row locked until the caller's transaction ends
    (nothing spends between the caller's check and its change)."""
    return int((await conn.execute(select(accounts.c.available).where(
        accounts.c.user_id == user_id).with_for_update())).scalar_one())


async def signups_since(conn: AsyncConnection, since: datetime) -> list[datetime]:
    return list((await conn.execute(select(users.c.created_at)
                                    .where(users.c.created_at >= since))).scalars())


async def count_accounts(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(accounts))).scalar_one())


async def count_ledger(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(ledger))).scalar_one())


async def ledger_by_kind(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(select(ledger.c.kind, func.count()).group_by(ledger.c.kind))
    return {kind: int(n) for kind, n in rows}


async def ledger_since(conn: AsyncConnection, since: datetime,
                       kinds: Sequence[str]) -> list[Any]:
    """(created_at, kind, amount, held_delta) of the entries of `kinds` since `since`."""
    return list((await conn.execute(
        select(ledger.c.created_at, ledger.c.kind, ledger.c.amount, ledger.c.held_delta)
        .where(ledger.c.created_at >= since, ledger.c.kind.in_(list(kinds))))).all())


async def newer_entries(conn: AsyncConnection, user_id: int, after_id: int,
                        limit: int) -> list[int]:
    """Ids of the user's ledger entries after `after_id`, oldest first, at most `limit`."""
    return list((await conn.execute(
        select(ledger.c.id).where(ledger.c.user_id == user_id, ledger.c.id > after_id)
        .order_by(ledger.c.id).limit(limit))).scalars())
