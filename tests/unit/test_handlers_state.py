"""The conversation draft survives its JSON form, and a stored draft that does not parse is
dropped instead of failing the user's every message; the status line's keys."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from generation import Job
from handlers.state import Draft
from handlers.status import status_key


def test_a_draft_round_trips_through_json() -> None:
    draft = Draft(kind="try-on", photos=("a.jpg", "b.jpg"), clothes_done=True, album="g1",
                  prompt="studio", model="tryon", duration=10, aspect="9:16")
    assert Draft.from_json(draft.to_json()) == draft
    assert Draft().to_json() == {}
    assert Draft.from_json({}) == Draft()


@pytest.mark.parametrize("stored", [None, [], "x", {"duration": "ten"}, {"kind": 5},
                                    {"photos": 7}, {"duration": True}])
def test_an_unreadable_draft_is_empty(stored: Any) -> None:
    assert Draft.from_json(stored) == Draft()


JOB = Job(1, 1, "m", "demo", "image-to-video", "p", [], 4, "16:9", 1, None, "pending", None,
          None, None, None, None, None, None, 0, datetime(2026, 1, 1, tzinfo=UTC), None)


@pytest.mark.parametrize(("state", "progress", "failure", "key"), [
    ("pending", None, None, "queued"), ("generating", None, None, "making:0:m0"),
    ("generating", 0, None, "making:0:m0"), ("generating", 55, None, "making:55:m0"),
    ("uploading", 100, None, "uploading"), ("completed", 100, None, "delivered"),
    ("failed", None, "provider", "failed"), ("failed", None, "cancelled", "cancelled")])
def test_status_keys(state: str, progress: int | None, failure: str | None, key: str) -> None:
    job = replace(JOB, state=state, progress=progress, failure=failure)
    assert status_key(job) == key
