"""Crash injection: `videofly run` as a process, killed with SIGKILL at named points of a job's
life (`core.crash`, `VIDEOFLY_CRASH_AT`), then started again. On the suite's database, so on
SQLite by default and on PostgreSQL when VIDEOFLY_TEST_DATABASE_URL is set.

A user talks to the bot through the Telegram fake (python-telegram-bot polling it, in the
process) and orders a demo text-to-video; the process dies at the point, is restarted without
the variable, and the test waits until every job of that user is over. Then: each job is
completed with exactly one video delivered, or failed with its credits back and its failure
message delivered; no outbox row is left unsent; the wallet's audit is clean.

`mid_send` leaves the job's message claimed ('sending', its lease ten minutes long): a
restarted instance retries it only once the lease is over, so the test moves the lease's end
to now while the process is down (time passing, not a shortcut: nothing else is touched).
Figures (kills, jobs, outcomes) are printed at the end (pytest -s).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.crash import POINTS
from core.db import read, write
from core.outbox import outbox
from generation.tables import jobs
from tests.factories import TestDatabase
from tests.fakes.telegram import Call, TelegramFake
from wallet import Wallet
from wallet.tables import identities

ROOT = Path(__file__).resolve().parents[2]
BOUND = 120.0  # every wait here is bounded (a loaded CI machine renders slowly)
FIGURES: Counter[str] = Counter()

# What each point leaves behind, and so how its job must end.
EXPECTED = {"after_hold": "failed", "after_accept": "failed", "mid_upload": "completed",
            "after_settle": "completed", "mid_send": "completed"}

ORDER = ("mid_send", "mid_upload", "after_hold", "after_accept", "after_settle")

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """Starts and stops `videofly run` processes on one database, data directory and port."""

    database: TestDatabase
    tmp: Path
    tg: TelegramFake
    port: int
    proc: asyncio.subprocess.Process | None = None
    runs: int = 0

    def env(self, crash_at: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("VIDEOFLY", "TELEGRAM_")) and k != "DATABASE_URL"}
        data = self.tmp / "data"
        env |= {"DATABASE_URL": self.database.url, "TELEGRAM_BOT_TOKEN": self.tg.token,
                "VIDEOFLY__HTTP__PORT": str(self.port),
                "VIDEOFLY__HTTP__PUBLIC_URL": f"http://127.0.0.1:{self.port}",
                "VIDEOFLY__APP__DATA_DIR": str(data),
                "VIDEOFLY__STORAGE__LOCAL_DIR": str(data / "media"),
                "VIDEOFLY__TELEGRAM__API_BASE_URL": self.tg.api_base_url,
                "VIDEOFLY__TELEGRAM__API_FILE_URL": self.tg.api_file_url,
                "VIDEOFLY__GENERATION__DEMO_DELAY_SECONDS": "0.2",
                "VIDEOFLY__GENERATION__POLL_AFTER_SECONDS": "1",
                "VIDEOFLY__GENERATION__POLL_MAX_SECONDS": "1"}
        if crash_at is not None:
            env["VIDEOFLY_CRASH_AT"] = crash_at
        return env

    async def start(self, crash_at: str | None = None) -> None:
        script = Path(sys.executable).with_name("videofly")
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
        self.runs += 1
        log = self.tmp / f"run-{self.runs}.log"
        with log.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *cmd, "--config", str(ROOT / "config.toml"), "run", cwd=self.tmp,
                env=self.env(crash_at), stdout=out, stderr=out)
        async with asyncio.timeout(BOUND):
            while b"outbox dispatcher delivering on" not in log.read_bytes():
                assert self.proc.returncode is None, log.read_text()
                await asyncio.sleep(0.1)

    async def killed(self) -> None:
        """Waits for the process to die of its crash point."""
        assert self.proc is not None
        async with asyncio.timeout(BOUND):
            code = await self.proc.wait()
        assert code == -signal.SIGKILL, self.logs()
        FIGURES["kills"] += 1

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("run-*")))


@pytest.fixture
async def service(database: TestDatabase, tmp_path: Path) -> AsyncIterator[Service]:
    async with TelegramFake() as tg:
        svc = Service(database, tmp_path, tg, _free_port())
        try:
            yield svc
        finally:
            await svc.stop()
        assert "Traceback" not in svc.logs(), svc.logs()


# --- talking to the bot through the fake ------------------------------------------------------


def _has(prefix: str) -> Callable[[Call], bool]:
    return lambda c: any(data.startswith(prefix) for _, data in c.buttons())


async def _next(tg: TelegramFake, chat: int, after: int,
                where: Callable[[Call], bool] = lambda c: True) -> Call:
    """The first message or edit in `chat` after call index `after` matching `where`."""
    async with asyncio.timeout(BOUND):
        while True:
            for call in tg.calls[after:]:
                if call.method in ("sendMessage", "editMessageText") and \
                        call.chat_id == chat and where(call):
                    return call
            await asyncio.sleep(0.02)


async def _settled(tg: TelegramFake, chat: int, after: int) -> Call:
    """The last message or edit in `chat` once the bot has stopped answering for a moment."""
    await _next(tg, chat, after)
    seen = -1
    while seen != len(tg.calls):  # bounded by _next's timeout upstream: the bot stops talking
        seen = len(tg.calls)
        await asyncio.sleep(0.3)
    return [c for c in tg.calls[after:] if c.chat_id == chat
            and c.method in ("sendMessage", "editMessageText")][-1]


async def order_a_video(tg: TelegramFake, chat: int) -> None:
    """/start → Generate → text to video → the demo model → … → confirm ("go")."""
    user = tg.user(chat)
    mark = len(tg.calls)
    user.says("/start")
    await _next(tg, chat, mark, _has("generate"))
    mark = len(tg.calls)
    user.presses("generate")
    kinds = await _next(tg, chat, mark, _has("kind:text-to-video"))
    mark = len(tg.calls)
    user.presses(next(d for _, d in kinds.buttons() if d.startswith("kind:text-to-video")))
    for _ in range(8):  # what is asked next depends on the model's choices
        last = await _settled(tg, chat, mark)
        data = [d for _, d in last.buttons()]
        mark = len(tg.calls)
        if "confirm" in data:
            user.presses("confirm")
            return
        choice = next((d for d in data if d.startswith(("model:demo-t2v", "aspect:16:9", "duration:"))), None)
        if choice is not None:
            user.presses(choice)
        else:
            user.says("a slow pan over a gradient")
    raise AssertionError(f"never reached the confirmation: {tg.texts(chat)}")


# --- what the database says -------------------------------------------------------------------


async def _user_of(engine: AsyncEngine, chat: int) -> int:
    async with read(engine) as conn:
        return int((await conn.execute(select(identities.c.user_id).where(
            identities.c.channel == "telegram",
            identities.c.external_id == str(chat)))).scalar_one())


async def _jobs_of(engine: AsyncEngine, user_id: int) -> list[Any]:
    async with read(engine) as conn:
        return list((await conn.execute(select(jobs).where(jobs.c.user_id == user_id)
                                        .order_by(jobs.c.id))).all())


async def _outbox_of(engine: AsyncEngine, user_id: int) -> list[Any]:
    async with read(engine) as conn:
        return list((await conn.execute(select(outbox).where(outbox.c.user_id == user_id)
                                        .order_by(outbox.c.id))).all())


async def _all_over(engine: AsyncEngine, user_id: int) -> list[Any]:
    """The user's jobs once each is over and its message delivered (bounded wait)."""
    async with asyncio.timeout(BOUND):
        while True:
            done = await _jobs_of(engine, user_id)
            rows = await _outbox_of(engine, user_id)
            if done and all(j.state in ("completed", "failed") for j in done) and \
                    len(rows) == len(done) and all(r.state == "sent" for r in rows):
                return done
            await asyncio.sleep(0.2)


async def _expire_leases(engine: AsyncEngine) -> int:
    """Moves the end of every 'sending' lease to the past: the time a lease lasts, passed."""
    async with write(engine) as conn:
        moved = await conn.execute(update(outbox).where(outbox.c.state == "sending")
                                   .values(next_attempt_at=outbox.c.created_at))
    return int(moved.rowcount)


# --- the test ---------------------------------------------------------------------------------


async def _check(engine: AsyncEngine, wallet: Wallet, tg: TelegramFake, point: str,
                 chat: int) -> None:
    """Waits until the job ordered in `chat` is over, and checks how it ended."""
    uid = await _user_of(engine, chat)
    over = await _all_over(engine, uid)
    balance = await wallet.balance(uid)
    assert balance.held == 0, point
    spent = sum(j.credits for j in over if j.state == "completed")
    assert balance.available == 10 - spent, (point, balance)  # the new-user bonus
    assert len(tg.of("sendVideo", chat)) == sum(j.state == "completed" for j in over), point
    assert over[0].state == EXPECTED[point], (point, over[0].failure_detail)
    for job in over:
        FIGURES[f"jobs {job.state}"] += 1
        FIGURES[f"{point}: {job.state}"] += 1
    FIGURES["jobs"] += len(over)


async def test_every_job_ends_whole_whatever_the_kill_point(service: Service) -> None:
    """One process per point, each armed for its point; the next one (armed for the next
    point) first finishes the job the last one left, then orders its own. ORDER is such that
    finishing one job never passes the point armed next (finishing any job sends a message,
    so `mid_send` comes first; a resumed upload settles, so `after_settle` comes last)."""
    engine = service.database.engine()
    wallet = Wallet(engine)
    previous: tuple[str, int] | None = None
    try:
        for index, point in enumerate(ORDER):
            await service.start(crash_at=point)
            if previous is not None:
                await _check(engine, wallet, service.tg, *previous)
            chat = 7100 + index
            await order_a_video(service.tg, chat)
            await service.killed()
            if point == "mid_send":
                assert await _expire_leases(engine) == 1
            previous = (point, chat)
        await service.start()
        assert previous is not None
        await _check(engine, wallet, service.tg, *previous)
        await service.stop()
        assert await wallet.audit() == []
    finally:
        await engine.dispose()
    FIGURES["process starts"] = service.runs
    print("\ncrash injection:", ", ".join(f"{k} {v}" for k, v in sorted(FIGURES.items())))


def test_the_hook_names_known_points_only() -> None:
    """Each point is reached by a line of code (a renamed point would never fire)."""
    sources = "\n".join(p.read_text() for d in ("generation", "bot")
                        for p in (ROOT / d).glob("*.py"))
    for point in POINTS:
        assert f'crash_point("{point}")' in sources, point
    assert sorted(ORDER) == sorted(POINTS)
