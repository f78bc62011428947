"""`TokenStore`: one WeChat access token for every replica, kept in the `wechat_tokens` row.

WeChat's token lives about 7200 s, and fetching a new one the old way (`GET /cgi-bin/token`)
invalidates the previous one: replicas refreshing on their own would knock each other's token
out. So the token lives in the database, and one replica at a time refreshes it:

- `get()` answers from memory while the token has more than `ahead` seconds left; then from the
  row; when the row's token is missing or within `ahead` of expiry, the replica takes the row's
  lease (a compare-and-set UPDATE on the token it saw, so a replica that read a stale row loses)
  and fetches `POST /cgi-bin/stable_token` (`force_refresh` false: WeChat hands every caller the
  same token until it expires, so even a race costs nothing but a request). The others keep
  using the old token while it is still valid, or wait for the row to change (bounded by the
  lease time; a lease left by a crashed replica expires and is taken over).
- `refresh(failed)`, after 40001/40014/42001 on `failed`: a token other than `failed` from the
  row if another replica already has one; else the lease holder asks stable_token again, and
  with `force_refresh` true only when WeChat still hands back the refused token. The client
  calls it at most once per failing call.

Within one process an asyncio lock lets one coroutine at a time go to the database, so a burst
of sends costs one read, not one per send.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import read, utcnow, write

from ._api import WeChatApiError, api_root, fetch_stable_token
from ._tables import wechat_tokens

__all__ = ["Fetch", "TokenStore"]

_REASK = timedelta(seconds=60)
# fetch(force_refresh) -> (access_token, expires_in seconds)
Fetch = Callable[[bool], Awaitable[tuple[str, int]]]


@dataclass(frozen=True, slots=True)
class _Row:
    token: str
    expires_at: datetime | None
    fetched_at: datetime | None


class TokenStore:
    """The shared token of one app id (a `bot.wechat._api.TokenSource`)."""

    def __init__(self, engine: AsyncEngine, fetch: Fetch, *, app_id: str,
                 ahead: float = 300.0, lease: float = 30.0,
                 clock: Callable[[], datetime] = utcnow, owner: str | None = None) -> None:
        self._engine, self._fetch, self._app_id = engine, fetch, app_id
        self._ahead, self._lease = timedelta(seconds=ahead), timedelta(seconds=lease)
        self._clock = clock
        self._owner = owner or uuid.uuid4().hex
        self._lock = asyncio.Lock()
        self._token = ""
        self._expires_at: datetime | None = None
        self._fetched_at: datetime | None = None

    @classmethod
    def stable(cls, engine: AsyncEngine, http: httpx.AsyncClient, *, base_url: str, app_id: str,
               secret: str, **options: Any) -> TokenStore:
        """The store that fetches from `POST /cgi-bin/stable_token` at `base_url`."""
        root = api_root(base_url)

        async def fetch(force: bool) -> tuple[str, int]:
            return await fetch_stable_token(http, root, app_id, secret, force=force)

        return cls(engine, fetch, app_id=app_id, **options)

    async def get(self) -> str:
        if self._fresh(self._token, self._expires_at, self._fetched_at):
            return self._token
        async with self._lock:
            if self._fresh(self._token, self._expires_at, self._fetched_at):
                return self._token
            return await self._obtain(failed=None)

    async def refresh(self, failed: str) -> str:
        async with self._lock:
            if self._token and self._token != failed and self._valid(self._expires_at):
                return self._token  # another coroutine here replaced it already
            return await self._obtain(failed=failed)

    def _fresh(self, token: str, expires_at: datetime | None,
               fetched_at: datetime | None) -> bool:
        """More than `ahead` left, or fetched within the last minute and not expired: near its
        end stable_token keeps handing out the same token, so asking more often is useless."""
        if not token or expires_at is None:
            return False
        now = self._clock()
        recent = fetched_at is not None and fetched_at > now - _REASK
        return expires_at - self._ahead > now or (recent and expires_at > now)

    def _valid(self, expires_at: datetime | None) -> bool:
        return expires_at is not None and expires_at > self._clock()

    async def _obtain(self, failed: str | None) -> str:
        pause = 0.02
        deadline = asyncio.get_running_loop().time() + self._lease.total_seconds() + 5
        while True:
            row = await self._read()
            usable = row is not None and row.token != failed
            if usable and row is not None and ((failed is not None and self._valid(row.expires_at))
                                               or self._fresh(row.token, row.expires_at,
                                                              row.fetched_at)):
                return self._remember(row)
            if await self._take_lease(row):
                return await self._refresh_as_leader(failed)
            if usable and row is not None and self._valid(row.expires_at):
                return self._remember(row)  # still good while another
            if asyncio.get_running_loop().time() > deadline:  # replica refreshes it
                raise WeChatApiError("wechat access token: no replica could refresh it")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)

    def _remember(self, row: _Row) -> str:
        self._token, self._expires_at, self._fetched_at = row.token, row.expires_at, row.fetched_at
        return row.token

    async def _read(self) -> _Row | None:
        async with read(self._engine) as conn:
            found = (await conn.execute(
                select(wechat_tokens.c.access_token, wechat_tokens.c.expires_at,
                       wechat_tokens.c.fetched_at)
                .where(wechat_tokens.c.app_id == self._app_id))).first()
        return None if found is None else _Row(*found)

    async def _take_lease(self, seen: _Row | None) -> bool:
        """Takes the refresh lease if nobody holds a live one and the row is as `seen`."""
        now = self._clock()
        t = wechat_tokens.c
        try:
            async with write(self._engine) as conn:
                if seen is None:
                    await conn.execute(insert(wechat_tokens).values(
                        app_id=self._app_id, access_token="", lease_owner=self._owner,
                        lease_until=now + self._lease, updated_at=now))
                    return True
                done = await conn.execute(
                    update(wechat_tokens)
                    .where(and_(t.app_id == self._app_id, t.access_token == seen.token,
                                or_(t.lease_until.is_(None), t.lease_until < now)))
                    .values(lease_owner=self._owner, lease_until=now + self._lease,
                            updated_at=now))
                return done.rowcount == 1
        except IntegrityError:
            return False  # another replica inserted the row first

    async def _refresh_as_leader(self, failed: str | None) -> str:
        try:
            token, expires_in = await self._fetch(False)
            if failed is not None and token == failed:
                token, expires_in = await self._fetch(True)
        except BaseException:
            await self._release(None)
            raise
        now = self._clock()
        row = _Row(token, now + timedelta(seconds=expires_in), now)
        await self._release(row)
        return self._remember(row)

    async def _release(self, row: _Row | None) -> None:
        values: dict[str, object] = {"lease_owner": None, "lease_until": None,
                                     "updated_at": self._clock()}
        if row is not None:
            values.update(access_token=row.token, expires_at=row.expires_at,
                          fetched_at=row.fetched_at)
        t = wechat_tokens.c
        async with write(self._engine) as conn:
            await conn.execute(update(wechat_tokens).where(
                and_(t.app_id == self._app_id, t.lease_owner == self._owner)).values(**values))
