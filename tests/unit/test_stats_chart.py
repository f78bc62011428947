"""The /stats chart: in the admin's language with a CJK font, whole-number ticks for counts,
and today's date always labelled."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from handlers.messages import t
from handlers.stats import DAYS, Daily, chart, figure


def month(today: date) -> Daily:
    data = Daily([today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)])
    data.done[today] = 1  # one job: an axis of 0..1 would have 0.5 ticks
    data.failed[today - timedelta(days=3)] = 2
    data.granted[today] = 12
    data.spent[today] = 1
    return data


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_chart_speaks_the_admins_language(lang: str) -> None:
    fig = figure(month(date(2026, 3, 31)), lang)
    top, bottom = fig.axes
    assert top.get_title() == t(lang, "stats.credits")
    assert bottom.get_title() == t(lang, "stats.jobs")
    legend = bottom.get_legend()
    assert legend is not None
    assert [x.get_text() for x in legend.get_texts()] == [
        t(lang, "stats.done"), t(lang, "stats.failed")]
    family = top.title.get_fontproperties().get_name()
    assert family.startswith("Noto Sans CJK")  # draws 每日任务 as itself, not boxes
    assert chart(month(date(2026, 3, 31)), lang).startswith(b"\x89PNG")


@pytest.mark.parametrize("today", [date(2026, 3, 31), date(2026, 4, 1), date(2026, 4, 2)])
def test_counts_have_integer_ticks_and_today_is_labelled(today: date) -> None:
    fig = figure(month(today), "en")
    for axes in fig.axes:
        assert all(float(v).is_integer() for v in axes.get_yticks()), axes.get_yticks()
    labels = [x.get_text() for x in fig.axes[1].get_xticklabels()]
    assert labels[-1] == today.strftime("%m-%d")
    assert len(labels) == DAYS // 3
