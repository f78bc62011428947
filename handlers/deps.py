"""What the conversations run on (`ChatDeps`, built by the composition root) and who is talking
(`Ctx`, worked out once per update).

Admins (decided here, once): on Telegram the ids in `[telegram] admins` (compared as integers
with the address), on WeChat the openids in `[wechat] admins`, and the user of a channel that
declares `operator` (the terminal) always: it runs on the operator's own machine with the
embedded defaults, so whoever types there already holds the database file. `Ctx.caps` is the
channel's declared capabilities: the conversations read those, never the channel's name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Config
from generation import Catalogue, JobService
from storage import Storage
from wallet import Balance, Wallet

from .photos import store_photo
from .ports import TopUp
from .state import Chat, Draft, Step
from .types import Capabilities, Inbound, Outbound, capabilities_of

__all__ = ["ChatDeps", "Ctx", "Reply", "Turn", "is_admin"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatDeps:
    config: Config
    engine: AsyncEngine
    wallet: Wallet
    jobs: JobService
    catalogue: Catalogue
    storage: Storage
    clock: Callable[[], datetime]
    topup: TopUp | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ctx:
    """The user behind one update."""

    user_id: int
    lang: str
    channel: str
    address: str
    tier: str
    admin: bool
    caps: Capabilities = field(default_factory=lambda: capabilities_of(""))

    @property
    def actor(self) -> str:
        """How the ledger names this user when they act as an admin."""
        return f"{self.channel}:{self.address}"[:64]


def is_admin(config: Config, channel: str, address: str) -> bool:
    if capabilities_of(channel).operator:
        return True
    # The admin lists are per channel in the config: the address is in that channel's space.
    if channel == "telegram":
        return address.isdigit() and int(address) in config.telegram.admins
    if channel == "wechat":
        return address in config.wechat.admins
    return False


@dataclass(frozen=True, slots=True)
class Reply:
    """What handling an update decided: the answers, the new conversation state (`step` None:
    unchanged), and work to do only once that state is saved (`after`, e.g. starting the job:
    if another instance changed the conversation first, the update is handled again instead,
    and the job must not start twice)."""

    out: list[Outbound]
    step: Step | None = None
    draft: Draft = field(default_factory=Draft)
    after: Callable[[Chat], Awaitable[list[Outbound]]] | None = None


class Turn:
    """One update being handled. Photos are stored once per update, even when a lost race has
    the update handled a second time. `balance` is the user's balance when it was read in the
    same read as the user and the chat row (for a command that shows it); None: not read."""

    MAX_PHOTOS = 11  # a person and up to ten clothing photos: the most any step takes

    def __init__(self, inbound: Inbound, now: datetime, balance: Balance | None = None) -> None:
        self.inbound, self.now, self.balance = inbound, now, balance
        self._keys: list[str] = []

    async def photo_keys(self, storage: Storage, limit: int) -> list[str]:
        """Stores the update's first `limit` photos (those not stored yet); on an error removes
        what this update stored and raises."""
        wanted = min(limit, self.MAX_PHOTOS, len(self.inbound.photos))
        try:
            for photo in self.inbound.photos[len(self._keys):wanted]:
                self._keys.append(await store_photo(storage, photo))
        except BaseException:
            for key in self._keys:
                await storage.delete(key)
            self._keys.clear()
            raise
        return self._keys[:wanted]
