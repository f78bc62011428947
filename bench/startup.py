"""Start-up: time to the first menu of `videofly chat`, to `/healthz` of `videofly run`, and the
idle RSS of `videofly run`, each against python-telegram-bot's echo bot started the same way.

Every process is a fresh interpreter spawned from here, timed from just before the spawn:

* echo (the baseline): `bench/echo_bot.py`, PTB's minimal echo bot, polling a local fake Bot API
  (`tests.fakes.telegram.TelegramFake`, served by this process on 127.0.0.1); ready when it
  prints "ready" (polling has started);
* `videofly chat`, stdin a pipe, in a temp directory holding a copy of the shipped
  `config.toml` (SQLite under ./data, local storage, the demo provider): ready when the main
  menu's last button (the catalogue's `btn.help`) is on its stdout; then it is sent `/quit`;
* `videofly run`, same directory and config, `VIDEOFLY__HTTP__PORT` a free 127.0.0.1 port,
  `PROVIDER_CALLBACK_SECRET` and `MEDIA_LINK_SECRET` set: ready at the first `GET /healthz`
  that answers 200 (asked every 20 ms). The demo config serves no chat channel; with
  `--telegram` a second row runs it with Telegram polling the same fake (`TELEGRAM_BOT_TOKEN`,
  `VIDEOFLY__TELEGRAM__API_BASE_URL`), as in production. Its /healthz then also waits for
  python-telegram-bot's import (the loop is busy importing it when the request arrives).

Warm: the database is migrated (`videofly db upgrade`) and each command is started once,
untimed, before the rounds, so bytecode caches exist (`PYTHONDONTWRITEBYTECODE` is removed from
the children's environment). CPU to ready: the process's user + system CPU seconds when it is
ready (/proc/PID/stat), which a loaded machine stretches far less than wall time. Idle RSS:
`VmRSS` of /proc/PID/status after the process has been ready and idle for `--idle` seconds
(3), for echo and `videofly run`. `--rounds` (3) rounds, the order rotating; the table shows
median [min-max] and the ratio of medians to echo's.

Targets: first menu ≤ 1.0 s, /healthz ≤ 1.5 s, idle RSS ≤ 2x echo's. On a shared machine
compare ratios from one run (`uptime` first). Last figures: bench/README.md.

    python bench/startup.py
    python bench/startup.py --rounds 5 --idle 5 --telegram
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as `python bench/startup.py`: the project root, not bench/, goes first on sys.path
    # (bench/wallet.py would otherwise shadow the `wallet` package).
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import httpx

from handlers.messages import t
from tests.fakes.telegram import TelegramFake

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "424242:BENCH-token_abcdefghijklmnop"
VIDEOFLY = str(Path(sys.executable).with_name("videofly"))
READY_WAIT = 120.0  # seconds a process may take to get ready before the bench gives up
TARGETS = {"chat": ("first menu", 1.0), "run": ("/healthz 200", 1.5),
           "run+telegram": ("/healthz 200", 1.5)}
RSS_TARGET = 2.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class Figures(NamedTuple):
    ready: float  # seconds from the spawn to ready
    cpu: float  # CPU seconds the process had used when ready
    rss: float  # MB after `idle` seconds idle (nan: not measured)


class Bench:
    def __init__(self, work: Path, fake: TelegramFake, idle: float) -> None:
        self.work, self.fake, self.idle = work, fake, idle
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("VIDEOFLY") and k not in ("PYTHONDONTWRITEBYTECODE",
                                                               "DATABASE_URL")}
        self.env = {**env, "LANG": "C.UTF-8"}

    async def _spawn(self, *argv: str, env: dict[str, str] | None = None,
                     stdin: int | None = None) -> tuple[float, asyncio.subprocess.Process]:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=self.work, env=env or self.env, stdin=stdin or subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return started, proc

    async def _until_line(self, proc: asyncio.subprocess.Process, needle: str) -> None:
        assert proc.stdout is not None
        async with asyncio.timeout(READY_WAIT):
            while needle not in (await proc.stdout.readline()).decode(errors="replace"):
                if proc.stdout.at_eof():
                    raise RuntimeError(f"the process ended before printing {needle!r}")

    async def _stop(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            if proc.stdout is not None:
                await proc.stdout.read()
            await proc.wait()

    async def _idle_rss(self, proc: asyncio.subprocess.Process) -> float:
        await asyncio.sleep(self.idle)
        return _rss_mb(proc.pid)

    async def echo(self) -> Figures:
        started, proc = await self._spawn(sys.executable, str(ROOT / "bench" / "echo_bot.py"),
                                          "--base-url", self.fake.api_base_url,
                                          "--token", TOKEN)
        try:
            await self._until_line(proc, "ready")
            ready, cpu = time.perf_counter() - started, _cpu_s(proc.pid)
            return Figures(ready, cpu, await self._idle_rss(proc))
        finally:
            await self._stop(proc)

    async def chat(self) -> Figures:
        started, proc = await self._spawn(VIDEOFLY, "chat", stdin=subprocess.PIPE)
        try:
            await self._until_line(proc, t("en", "btn.help"))
            ready, cpu = time.perf_counter() - started, _cpu_s(proc.pid)
            assert proc.stdin is not None
            proc.stdin.write(b"/quit\n")
            await proc.stdin.drain()
            return Figures(ready, cpu, float("nan"))
        finally:
            await self._stop(proc)

    async def run(self) -> Figures:
        return await self._run(telegram=False)

    async def run_telegram(self) -> Figures:
        return await self._run(telegram=True)

    async def _run(self, *, telegram: bool) -> Figures:
        port = _free_port()
        env = {**self.env, "VIDEOFLY__HTTP__PORT": str(port),
               "VIDEOFLY__HTTP__PUBLIC_URL": f"http://127.0.0.1:{port}",
               "PROVIDER_CALLBACK_SECRET": "bench-callback-secret-0123456789abcdef",
               "MEDIA_LINK_SECRET": "bench-media-secret-0123456789abcdef"}
        if telegram:
            env |= {"TELEGRAM_BOT_TOKEN": TOKEN,
                    "VIDEOFLY__TELEGRAM__API_BASE_URL": self.fake.api_base_url,
                    "VIDEOFLY__TELEGRAM__API_FILE_URL": self.fake.api_file_url}
        started, proc = await self._spawn(VIDEOFLY, "run", env=env)
        try:
            async with httpx.AsyncClient(timeout=1.0) as http, asyncio.timeout(READY_WAIT):
                while True:
                    if proc.returncode is not None:
                        raise RuntimeError(f"videofly run exited with {proc.returncode}")
                    try:
                        if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.02)
            ready, cpu = time.perf_counter() - started, _cpu_s(proc.pid)
            return Figures(ready, cpu, await self._idle_rss(proc))
        finally:
            await self._stop(proc)


def _row(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} [{min(values):.2f}-{max(values):.2f}]"


async def main(rounds: int, idle: float, telegram: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="videofly-startup-") as tmp:
        work = Path(tmp)
        shutil.copy(ROOT / "config.toml", work / "config.toml")
        async with TelegramFake(token=TOKEN) as fake:
            bench = Bench(work, fake, idle)
            migrate = await asyncio.create_subprocess_exec(
                VIDEOFLY, "db", "upgrade", cwd=work, env=bench.env, stdout=subprocess.DEVNULL)
            if await migrate.wait() != 0:
                raise RuntimeError("videofly db upgrade failed")
            kinds: dict[str, Callable[[], Awaitable[Figures]]] = {
                "echo": bench.echo, "chat": bench.chat, "run": bench.run}
            if telegram:
                kinds["run+telegram"] = bench.run_telegram
            for kind in kinds.values():  # warm-up: bytecode caches, the page cache
                await kind()
            results: dict[str, list[Figures]] = {k: [] for k in kinds}
            names = list(kinds)
            for r in range(rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    results[name].append(await kinds[name]())
    ready = {k: [f.ready for f in fs] for k, fs in results.items()}
    cpu = {k: [f.cpu for f in fs] for k, fs in results.items()}
    rss = {k: [f.rss for f in fs] for k, fs in results.items() if k != "chat"}
    print(f"rounds: {rounds}, idle before RSS: {idle:g} s, load: {os.getloadavg()[0]:.2f}")
    print(f"{'':40} {'median [min-max]':>22} {'ratio to echo':>14}  target")
    for label, figures in (("ready (s)", ready), ("CPU to ready (s)", cpu)):
        base = statistics.median(figures["echo"])
        print(f"{f'echo bot: {label}':40} {_row(figures['echo']):>22}")
        for name, (what, target) in TARGETS.items():
            if name not in figures:
                continue
            median = statistics.median(figures[name])
            verdict = (f"<= {target} s: {'PASS' if median <= target else 'FAIL'}"
                       if label == "ready (s)" else "")
            title = f"videofly {name}: {what + ' (s)' if label == 'ready (s)' else label}"
            print(f"{title:40} {_row(figures[name]):>22} {median / base:14.2f}  {verdict}")
    echo_rss = statistics.median(rss["echo"])
    print(f"{'echo bot: idle RSS (MB)':40} {_row(rss['echo']):>22}")
    for name in ("run", "run+telegram"):
        if name in rss:
            ratio = statistics.median(rss[name]) / echo_rss
            verdict = "PASS" if ratio <= RSS_TARGET else "FAIL"
            print(f"{f'videofly {name}: idle RSS (MB)':40} {_row(rss[name]):>22} "
                  f"{ratio:14.2f}  <= {RSS_TARGET}x echo: {verdict}")
    return 0  # a report: slow figures are printed, not failed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds idle before RSS")
    parser.add_argument("--telegram", action="store_true",
                        help="also time `videofly run` with Telegram polling the fake")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.rounds, args.idle, args.telegram)))
