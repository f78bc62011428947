"""The status line: what a job is making (a video, or an image for try-on), its progress, the
minutes so far and the model's usual run time, and at the end the outcome; its key changes
exactly when the shown text does."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from generation import Job
from handlers.status import status_key, status_text

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
JOB = Job(7, 1, "demo-i2v", "demo", "image-to-video", "p", [], 4, "16:9", 1, None, "generating",
          "t", None, None, None, None, None, None, 0, START, None)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


@pytest.mark.parametrize(("lang", "job", "now", "typical", "text"), [
    ("en", JOB, at(5), None, "🎬 #7: making your video…"),
    ("en", JOB, at(65), 130.0, "🎬 #7: making your video… · 1 minute so far · "
                               "usually about 2 minutes"),
    ("en", replace(JOB, progress=40), at(150), 60.0,
     "🎬 #7: making your video… · 40% · 2 minutes so far · usually about 1 minute"),
    ("en", JOB, at(1), 3.0, "🎬 #7: making your video… · usually under a minute"),
    ("en", replace(JOB, kind="try-on"), at(1), None, "🎬 #7: making your image…"),
    ("zh", replace(JOB, kind="try-on"), at(61), 200.0,
     "🎬 #7：正在制作你的图片… · 已用 1 分钟 · 通常约 3 分钟"),
    ("en", replace(JOB, state="pending"), at(1), None, "⏳ #7 is queued…"),
    ("en", replace(JOB, state="completed"), at(1), None, "✅ #7 delivered"),
    ("zh", replace(JOB, state="completed"), at(1), None, "✅ #7 已送达"),
    ("en", replace(JOB, state="failed", failure="provider"), at(1), None,
     "❌ #7 failed, 1 credit back"),
    ("en", replace(JOB, state="failed", failure="deadline", credits=5), at(1), None,
     "❌ #7 failed, 5 credits back"),
    ("en", replace(JOB, state="failed", failure="cancelled", credits=2), at(1), None,
     "✖ #7 cancelled, 2 credits back"),
    ("zh", replace(JOB, state="failed", failure="cancelled", credits=2), at(1), None,
     "✖ #7 已取消，2 积分已退回"),
])
def test_status_texts(lang: str, job: Job, now: datetime, typical: float | None,
                      text: str) -> None:
    assert status_text(lang, job, now=now, typical=typical) == text


def test_the_key_changes_exactly_when_the_text_does() -> None:
    seen: dict[str, str] = {}
    for seconds in range(0, 400, 7):
        for progress in (None, 10, 60):
            job = replace(JOB, progress=progress)
            key = status_key(job, now=at(seconds))
            text = status_text("en", job, now=at(seconds), typical=120.0)
            assert seen.setdefault(key, text) == text  # one key, one text
    assert len(set(seen.values())) == len(seen)  # one text, one key
    assert len(seen) == 3 * 7  # minutes 0..6, three progress values
