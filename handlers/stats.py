"""/stats: today and the last 30 days in numbers, and a PNG chart of them per day.

Days are local days in `[credits] timezone`. Everything comes from the tables of record: new users
from `users`, finished jobs from `jobs`, credits granted (grant entries) and spent (settled holds:
held credits that did not come back) from the ledger. The rows of the 30 days are read and
counted per day here rather than grouped in SQL, because "the local day of a timestamp" is
spelled differently in SQLite and PostgreSQL; it is an admin's occasional command.

The chart is drawn with matplotlib's Agg backend on a `Figure` of its own (no pyplot global
state), in a worker thread, in the admin's language: its words are set in Noto Sans CJK
(`providers.fonts`, shipped as a dependency), given per text element, so no global font setting
changes. Counts are whole numbers, so both axes have integer ticks only; the days are labelled
every third day counted back from today, so today always has its label. Matplotlib is
imported there, on the first /stats, not when the conversations load (~0.5 s, tens of MB).
"""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from core.db import read
from generation import finished_since
from payments import revenue
from providers.fonts import cjk_face
from wallet import queries

from .deps import ChatDeps, Ctx
from .messages import t, tn
from .types import Picture, Text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DAYS", "Daily", "chart", "daily", "figure", "stats"]

DAYS = 30


class Daily:
    """Counters per local day."""

    def __init__(self, days: list[date]) -> None:
        self.days = days
        self.users: Counter[date] = Counter()
        self.done: Counter[date] = Counter()
        self.failed: Counter[date] = Counter()
        self.granted: Counter[date] = Counter()
        self.spent: Counter[date] = Counter()

    def total(self, counter: Counter[date], since: date) -> int:
        return sum(v for d, v in counter.items() if d >= since)


async def daily(deps: ChatDeps) -> Daily:
    zone = deps.config.credits.zone
    today = deps.clock().astimezone(zone).date()
    first = today - timedelta(days=DAYS - 1)
    since = datetime.combine(first, time(0), tzinfo=zone)
    out = Daily([first + timedelta(days=i) for i in range(DAYS)])

    def day(when: datetime) -> date:
        return when.astimezone(zone).date()

    async with read(deps.engine) as conn:
        for created in await queries.signups_since(conn, since):
            out.users[day(created)] += 1
        for finished, state in await finished_since(conn, since):
            (out.done if state == "completed" else out.failed)[day(finished)] += 1
        for created, kind, amount, held in await queries.ledger_since(
                conn, since, ("grant", "settle")):
            if kind == "grant":
                out.granted[day(created)] += amount
            else:  # a settle returns `amount` of the `-held` it releases; the rest was spent
                out.spent[day(created)] += -held - amount
    return out


def chart(data: Daily, lang: str = "en") -> bytes:
    """A PNG: credits granted and spent per day above, jobs done and failed per day below."""
    out = io.BytesIO()
    figure(data, lang).savefig(out, format="png")
    return out.getvalue()


def figure(data: Daily, lang: str) -> Figure:
    """The chart's figure, in `lang`."""
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.ticker import MaxNLocator

    face = cjk_face()
    font = FontProperties(fname=str(face.path)) if face is not None else FontProperties()
    labels = [d.strftime("%m-%d") for d in data.days]
    x = list(range(len(labels)))
    fig = Figure(figsize=(10, 6), dpi=100)
    top, bottom = fig.subplots(2, 1, sharex=True)
    half = [i - 0.2 for i in x], [i + 0.2 for i in x]
    for axes, title, series in (
            (top, "stats.credits", (("stats.granted", data.granted), ("stats.spent", data.spent))),
            (bottom, "stats.jobs", (("stats.done", data.done), ("stats.failed", data.failed)))):
        for offsets, (key, counter) in zip(half, series, strict=True):
            axes.bar(offsets, [counter[d] for d in data.days], width=0.4, label=t(lang, key))
        axes.set_title(t(lang, title), fontproperties=font)
        axes.legend(prop=font)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # no 0.5 jobs
    ticks = x[::-3][::-1]  # every third day, counted back from today: today is labelled
    bottom.set_xticks(ticks, [labels[i] for i in ticks])
    fig.tight_layout()
    return fig


async def stats(deps: ChatDeps, ctx: Ctx) -> list[Text | Picture]:
    data = await daily(deps)
    today, first = data.days[-1], data.days[0]
    lang = ctx.lang
    numbers: dict[str, int | str] = {}
    for span, since in (("today", today), ("month", first)):
        numbers.update({
            f"{span}_users": tn(lang, "n.new_users", data.total(data.users, since)),
            f"{span}_done": tn(lang, "n.jobs", data.total(data.done, since)),
            f"{span}_failed": data.total(data.failed, since),
            f"{span}_granted": tn(lang, "n.credits", data.total(data.granted, since)),
            f"{span}_spent": tn(lang, "n.credits", data.total(data.spent, since))})
    start = datetime.combine(first, time(), deps.config.credits.zone)
    async with read(deps.engine) as conn:
        today_money = await revenue(conn, datetime.combine(today, time(),
                                                            deps.config.credits.zone))
        month_money = await revenue(conn, start)
    for span, money in (("today", today_money), ("month", month_money)):
        numbers[f"{span}_paid"] = money.paid
        numbers[f"{span}_revenue"] = ", ".join(
            f"{amount} {currency}" for currency, amount in sorted(money.totals.items())) or "0"
    png = await asyncio.to_thread(chart, data, ctx.lang)
    return [Text(text=t(ctx.lang, "stats.text", **numbers)),
            Picture(data=png, caption=t(ctx.lang, "stats.caption"), filename="stats.png")]
