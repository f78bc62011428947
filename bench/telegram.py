"""Telegram updates per second through the whole stack, against python-telegram-bot's echo bot.

Two fake Bot API servers (`tests.fakes.telegram.TelegramFake`), each alone in a child process on
127.0.0.1, answer long polls and record every call. This process runs two bots side by side,
each polling its own fake:

* echo: python-telegram-bot's plain echo example: `Application.builder().token(...).build()`
  (no rate limiter, updates processed one at a time, PTB's defaults) with one
  `MessageHandler(filters.TEXT, ...)` answering `reply_text(update.message.text)`;
* videofly: the service as `videofly run` builds it (`bot.app.build_app` with the shipped
  config, on a fresh migrated SQLite file in a temp directory, or on PostgreSQL with
  `--pg-url`), the real `handlers.Handlers` and `bot.telegram.open_telegram` with its production
  options (8 updates at once, one user's updates in order, album collection, the
  `ChatRateLimiter`), except that the limiter's rates are raised far above Telegram's (30/s
  overall, ~1/s per chat), which would otherwise be what this measures.

Every update is a private message "/balance" from one of `--users` (200) users: for VideoFly
that is one read transaction (identity, user, chat row and the wallet balance: account and
expiring grants), the balance text with the main menu's inline keyboard, and a sendMessage; the
chat row's `last_seen_at` is written only when it is a minute old (so about once per user in a
run of this length); for echo, a sendMessage. Before timing, each user sends /start to the
VideoFly bot (account, bonus grant, welcome) and each bot gets `--warmup` updates.

A round: the fake is told (a bench-only route) to queue `--updates` (2000) updates at once; the
clock runs until the fake has received that many sendMessage calls (asked every 10 ms over the
bench-only route). Updates/s = updates / elapsed. `--rounds` (3) rounds per bot, the order
rotating; the table shows median [min-max]. Then a check: every timed VideoFly reply was the
balance text (a reply of another kind, e.g. an incident text, fails the run with exit code 1).

Target: videofly / echo >= 0.5 on medians. On a shared 2-core machine the fakes, the bots and
SQLite share the CPUs: compare the ratio, not absolute figures between runs, and run it twice
(one run's ratio moves by ±0.1 with the machine's other load). Last figures and what changed
for them: bench/README.md.

    /work/venv/bin/python bench/telegram.py
    /work/venv/bin/python bench/telegram.py --updates 5000 --rounds 5 --users 500
    /work/venv/bin/python bench/telegram.py --pg-url postgresql+asyncpg://postgres@127.0.0.1/x
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as `python bench/telegram.py`: the project root, not bench/, goes first on sys.path
    # (bench/wallet.py would otherwise shadow the `wallet` package).
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import socket
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
from aiohttp import web
from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from bot.app import build_app
from bot.telegram import ChatRateLimiter, TelegramOptions, open_telegram
from core.config import Secrets, load_config
from core.db import utcnow
from handlers import ChatDeps, Handlers, Inbound
from handlers.messages import t
from tests.fakes.telegram import TelegramFake

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.5
TOKEN = "424242:BENCH-token_abcdefghijklmnop"
FIRST_USER = 100_000


# --- the fake Bot API, in a child process -------------------------------------------------------


class BenchFake(TelegramFake):
    """The fake plus two bench-only routes: queue N updates, count what was sent."""

    def routes(self) -> list[web.RouteDef]:
        return [*super().routes(), web.post("/_bench/feed", self._feed),
                web.get("/_bench/sent", self._sent_count)]

    async def _feed(self, request: web.Request) -> web.Response:
        body = await request.json()
        users = [self.user(FIRST_USER + i) for i in range(int(body["users"]))]
        for n in range(int(body["n"])):
            users[n % len(users)].says(body["text"])
        return web.json_response({"ok": True})

    async def _sent_count(self, request: web.Request) -> web.Response:
        """sendMessage calls since index `after`, and how many of them contain `contains`."""
        after, needle = int(request.query.get("after", 0)), request.query.get("contains", "")
        sent = [c for c in self.calls[after:] if c.method == "sendMessage"]
        return web.json_response({
            "sent": len(sent), "calls": len(self.calls),
            "matching": sum(1 for c in sent if needle in str(c.params.get("text", "")))})


def _serve_fake(out: multiprocessing.Queue[Any]) -> None:  # in the child
    async def main() -> None:
        fake = BenchFake(token=TOKEN)
        await fake.start()
        out.put(fake.port)
        await asyncio.Event().wait()  # until the parent terminates this process

    asyncio.run(main())


@dataclass
class Fake:
    port: int
    process: multiprocessing.process.BaseProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _start_fake() -> Fake:
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[Any] = ctx.Queue()
    process = ctx.Process(target=_serve_fake, args=(out,), daemon=True)
    process.start()
    return Fake(out.get(timeout=120), process)


# --- the two bots ------------------------------------------------------------------------------


async def _echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await update.message.reply_text(update.message.text or "")


@asynccontextmanager
async def echo_bot(fake: Fake) -> AsyncIterator[None]:
    """python-telegram-bot's echo example, pointed at the fake."""
    application = (Application.builder().token(TOKEN).base_url(f"{fake.url}/bot")
                   .base_file_url(f"{fake.url}/file/bot").build())
    application.add_handler(MessageHandler(filters.TEXT, _echo))
    async with application:
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(timeout=10)
        try:
            yield
        finally:
            await application.updater.stop()
            await application.stop()


@asynccontextmanager
async def videofly_bot(fake: Fake, folder: Path, pg_url: str | None,
                       concurrency: int | None = None,
                       ) -> AsyncIterator[tuple[str, Handlers]]:
    """The service with its Telegram channel on the fake; yields the balance text's start."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    environ = {"DATABASE_URL": pg_url or f"sqlite+aiosqlite:///{folder / 'bench.db'}",
               "VIDEOFLY__APP__DATA_DIR": str(folder / "data"),
               "VIDEOFLY__STORAGE__LOCAL_DIR": str(folder / "data" / "media"),
               "VIDEOFLY__HTTP__PUBLIC_URL": url,
               "VIDEOFLY__TELEGRAM__API_BASE_URL": f"{fake.url}/bot",
               "VIDEOFLY__TELEGRAM__API_FILE_URL": f"{fake.url}/file/bot"}
    config = load_config(ROOT / "config.toml", environ=environ)
    secrets = Secrets({"PROVIDER_CALLBACK_SECRET": "p" * 40, "MEDIA_LINK_SECRET": "m" * 40})
    options = TelegramOptions(rate_limiter=lambda: ChatRateLimiter(
        overall_per_second=1_000_000, chat_per_second=1_000_000, chat_burst=1_000_000))
    if concurrency is not None:
        options = replace(options, concurrency=concurrency)
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(build_app(config, secrets))
        handlers = Handlers(ChatDeps(
            config=app.config, engine=app.engine, wallet=app.wallet, jobs=app.jobs,
            catalogue=app.catalogue, storage=app.storage, clock=utcnow))
        await stack.enter_async_context(open_telegram(
            config, token=TOKEN, handlers=handlers, storage=app.storage, options=options))
        yield t("en", "balance.text", available=10, held=0).split("\n")[0], handlers


# --- the load ----------------------------------------------------------------------------------


@dataclass
class Side:
    name: str
    fake: Fake
    rates: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # this process's CPU per update
    alone_ms: float = 0.0  # VideoFly: Handlers.handle called directly, CPU per update
    checked: int = 0  # timed replies that were what they should be
    timed: int = 0


async def _get(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url) as resp:
        answer: dict[str, Any] = await resp.json()
        return answer


async def _round(session: aiohttp.ClientSession, side: Side, text: str, n: int, users: int,
                 *, contains: str = "", timed: bool = True) -> None:
    base = await _get(session, f"{side.fake.url}/_bench/sent")
    after = base["calls"]
    cpu = time.process_time()
    started = time.perf_counter()
    async with session.post(f"{side.fake.url}/_bench/feed",
                            json={"n": n, "users": users, "text": text}) as resp:
        resp.raise_for_status()
    async with asyncio.timeout(600):
        while True:
            sent = await _get(session, f"{side.fake.url}/_bench/sent?after={after}"
                                       f"&contains={contains}")
            if sent["sent"] >= n:
                break
            await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    if timed:
        side.rates.append(n / elapsed)
        side.cpu_ms.append((time.process_time() - cpu) / n * 1000)
        side.timed += n
        side.checked += sent["matching"]


async def _alone(handlers: Handlers, n: int, users: int) -> float:
    """CPU ms per /balance of `Handlers.handle` by itself, one update after another: the part
    of an update's cost that is the conversations and the database, not Telegram."""
    started = time.process_time()
    for i in range(n):
        await handlers.handle(Inbound(channel="telegram", address=str(FIRST_USER + i % users),
                                      language="en", text="/balance"))
    return (time.process_time() - started) / n * 1000


async def bench(args: argparse.Namespace) -> list[Side]:
    for name in ("httpx", "httpcore", "telegram", "apscheduler", "bot", "handlers"):
        logging.getLogger(name).setLevel(logging.WARNING)
    echo = Side("echo", _start_fake())
    ours = Side("videofly", _start_fake())
    try:
        with tempfile.TemporaryDirectory() as folder:
            async with aiohttp.ClientSession() as session, echo_bot(echo.fake), \
                    videofly_bot(ours.fake, Path(folder), args.pg_url,
                                 args.concurrency) as (balance, handlers):
                await _round(session, ours, "/start", args.users, args.users, timed=False)
                for side in (echo, ours):
                    await _round(session, side, "/balance", args.warmup, args.users,
                                 timed=False)
                for number in range(args.rounds):
                    for side in ((echo, ours) if number % 2 == 0 else (ours, echo)):
                        await _round(session, side, "/balance", args.updates, args.users,
                                     contains=balance if side is ours else "/balance")
                ours.alone_ms = await _alone(handlers, args.updates // 4, args.users)
    finally:
        for side in (echo, ours):
            side.fake.process.terminate()
            side.fake.process.join(10)
    return [echo, ours]


def report(sides: list[Side], args: argparse.Namespace) -> bool:
    echo, ours = sides
    print(f"\n{args.updates} updates (\"/balance\" from {args.users} users) per round, "
          f"{args.rounds} rounds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
          f"CPUs; database {'PostgreSQL' if args.pg_url else 'SQLite'}")
    print(f"{'bot':<9} {'updates/s median [min-max]':>30} {'bot CPU ms/update':>26}")
    for side in sides:
        rate = (f"{statistics.median(side.rates):.0f} "
                f"[{min(side.rates):.0f}-{max(side.rates):.0f}]")
        cpu = (f"{statistics.median(side.cpu_ms):.2f} "
               f"[{min(side.cpu_ms):.2f}-{max(side.cpu_ms):.2f}]")
        print(f"{side.name:<9} {rate:>30} {cpu:>26}")
    print(f"Handlers.handle alone (no Telegram, one at a time): {ours.alone_ms:.2f} ms "
          f"CPU per /balance")
    ratio = statistics.median(ours.rates) / statistics.median(echo.rates)
    print(f"\nratio videofly / echo {ratio:.2f} (target >= {TARGET_RATIO}) "
          f"{'PASS' if ratio >= TARGET_RATIO else 'FAIL'}")
    ok = True
    for side in sides:
        good = side.checked == side.timed
        ok &= good
        print(f"check {side.name}: {side.checked} of {side.timed} timed replies were the "
              f"expected text  {'OK' if good else 'FAILED'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=None,
                        help="updates VideoFly processes at once (default: production's)")
    parser.add_argument("--pg-url", default=None,
                        help="run VideoFly on this (empty, migrated on start) PostgreSQL")
    args = parser.parse_args()
    sides = asyncio.run(bench(args))
    if not report(sides, args):
        raise SystemExit(1)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
