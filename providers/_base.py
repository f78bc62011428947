"""The one Protocol every provider client speaks, and the values it trades in."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["CallbackHint", "Provider", "TaskRequest", "TaskState", "TaskStatus"]


class TaskState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED)


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """One generation. `model` is the provider's own model name; `aspect_ratio` is ours
    ("16:9" or "9:16"); `duration` is in seconds."""

    model: str
    prompt: str
    image_urls: tuple[str, ...] = ()
    duration: int | None = None
    aspect_ratio: str | None = None
    callback_url: str | None = None


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """What the provider says about a task. `error` is its failure reason, safe to log."""

    task_id: str
    state: TaskState
    progress: int | None = None
    result_urls: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CallbackHint:
    """A parsed callback. `verified` is True only when a signature proved it came from the
    provider (kie's proves the task id and time, not the body). `status` is the body's claim:
    act on it only when `body_signed` says the signature covered the whole body (our demo
    provider); otherwise re-query the task before money moves."""

    task_id: str
    verified: bool
    status: TaskStatus | None
    body_signed: bool = False


class Provider(Protocol):
    name: str

    async def create_task(self, req: TaskRequest) -> TaskStatus:
        """Submits one task; PENDING/RUNNING with its id, or SUCCEEDED for synchronous ones.

        Never retried once the request may have reached the provider: an error with
        `maybe_created` means the task may exist, so poll or wait, do not resubmit."""
        ...

    async def query_task(self, task_id: str) -> TaskStatus:
        """Asks the provider where the task stands (retried on network errors and 5xx)."""
        ...

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackHint:
        """Parses a callback; raises BadCallback if it is unreadable or wrongly signed."""
        ...
