"""The chat entry point: `Handlers.handle(inbound) -> [Outbound]` (contract; being built)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Config
from generation import Catalogue, JobService
from storage import Storage
from wallet import Wallet

from .ports import TopUp
from .types import Inbound, Outbound, Text

__all__ = ["ChatDeps", "Handlers"]


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


class Handlers:
    """Every conversation and command, for every channel."""

    def __init__(self, deps: ChatDeps) -> None:
        self.deps = deps

    async def handle(self, inbound: Inbound) -> list[Outbound]:
        """Answers one inbound update; the adapter sends the answers in order."""
        raise NotImplementedError

    async def notification(self, user_id: int, kind: str,
                           payload: dict[str, Any]) -> list[Outbound]:
        """Renders one outbox message in the user's language (empty: nothing to send)."""
        raise NotImplementedError

    async def job_status(self, job_id: int) -> tuple[str, Text] | None:
        """The job's status message now and a short key of what it shows ("generating:40"),
        so a sender edits the message only when the key changed; None once the job ended."""
        raise NotImplementedError

    async def remember_status(self, job_id: int, *, channel: str, address: str,
                              message_id: str) -> None:
        """Records the message a `Text(track_job=…)` became, to edit it later."""
        raise NotImplementedError

    def command_menu(self, language: str) -> list[tuple[str, str]]:
        """(command, description) pairs for the channel's command menu (set_my_commands)."""
        raise NotImplementedError
