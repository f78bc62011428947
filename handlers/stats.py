"""/stats: today and the last 30 days in numbers, and a PNG chart of them per day.

Days are local days in `[credits] timezone`. Everything comes from the tables of record: new users
from `users`, finished jobs from `jobs`, credits granted (grant entries) and spent (settled holds:
held credits that did not come back) from the ledger. The rows of the 30 days are read and
counted per day here rather than grouped in SQL, because "the local day of a timestamp" is
spelled differently in SQLite and PostgreSQL; it is an admin's occasional command.

The chart is drawn with matplotlib's Agg backend on a `Figure` of its own (no pyplot global
state), in a worker thread; matplotlib is imported there, on the first /stats, not when the
conversations load (it costs ~0.5 s and tens of MB). Its labels are English whatever the
admin's language: matplotlib's bundled fonts have no CJK glyphs, and a server cannot be
assumed to have any installed.
"""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from datetime import date, datetime, time, timedelta

from core.db import read
from generation import finished_since
from payments import revenue
from wallet import queries

from .deps import ChatDeps, Ctx
from .messages import t
from .types import Picture, Text

__all__ = ["DAYS", "Daily", "chart", "daily", "stats"]

DAYS = 30
CHART_LANG = "en"


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


def chart(data: Daily) -> bytes:
    """A PNG: credits granted and spent per day above, jobs done and failed per day below."""
    from matplotlib.figure import Figure  # here: see the module docstring

    lang = CHART_LANG
    labels = [d.strftime("%m-%d") for d in data.days]
    x = list(range(len(labels)))
    fig = Figure(figsize=(10, 6), dpi=100)
    top, bottom = fig.subplots(2, 1, sharex=True)
    half = [i - 0.2 for i in x], [i + 0.2 for i in x]
    top.bar(half[0], [data.granted[d] for d in data.days], width=0.4,
            label=t(lang, "stats.granted"))
    top.bar(half[1], [data.spent[d] for d in data.days], width=0.4, label=t(lang, "stats.spent"))
    top.set_title(t(lang, "stats.credits"))
    top.legend()
    bottom.bar(half[0], [data.done[d] for d in data.days], width=0.4,
               label=t(lang, "stats.done"))
    bottom.bar(half[1], [data.failed[d] for d in data.days], width=0.4,
               label=t(lang, "stats.failed"))
    bottom.set_title(t(lang, "stats.jobs"))
    bottom.legend()
    bottom.set_xticks(x[::3], labels[::3])
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


async def stats(deps: ChatDeps, ctx: Ctx) -> list[Text | Picture]:
    data = await daily(deps)
    today, first = data.days[-1], data.days[0]
    numbers: dict[str, int | str] = {}
    for span, since in (("today", today), ("month", first)):
        numbers.update({
            f"{span}_users": data.total(data.users, since),
            f"{span}_done": data.total(data.done, since),
            f"{span}_failed": data.total(data.failed, since),
            f"{span}_granted": data.total(data.granted, since),
            f"{span}_spent": data.total(data.spent, since)})
    start = datetime.combine(first, time(), deps.config.credits.zone)
    async with read(deps.engine) as conn:
        today_money = await revenue(conn, datetime.combine(today, time(),
                                                            deps.config.credits.zone))
        month_money = await revenue(conn, start)
    for span, money in (("today", today_money), ("month", month_money)):
        numbers[f"{span}_paid"] = money.paid
        numbers[f"{span}_revenue"] = ", ".join(
            f"{amount} {currency}" for currency, amount in sorted(money.totals.items())) or "0"
    png = await asyncio.to_thread(chart, data)
    return [Text(text=t(ctx.lang, "stats.text", **numbers)),
            Picture(data=png, caption=t(ctx.lang, "stats.caption"), filename="stats.png")]
