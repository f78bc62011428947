"""The conversation draft survives its JSON form, and a stored draft that does not parse is
dropped instead of failing the user's every message; the status line's keys."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from generation import Job
from handlers.state import Draft
from handlers.status import status_key, status_text


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


@pytest.mark.parametrize(("state", "progress", "key"), [
    ("pending", None, "queued"), ("generating", None, "generating"),
    ("generating", 0, "generating"), ("generating", 55, "generating:55"),
    ("uploading", 100, "uploading"), ("completed", 100, None), ("failed", None, None)])
def test_status_keys(state: str, progress: int | None, key: str | None) -> None:
    job = replace(JOB, state=state, progress=progress)
    assert status_key(job) == key
    if key == "generating:55":
        assert status_text("zh", job) == "🎬 #1 生成中… 55%"
