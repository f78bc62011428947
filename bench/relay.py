"""Relay throughput and memory: `storage.relay` into LocalStorage against a plain copy.

A child process runs an aiohttp server on 127.0.0.1 that streams `--mb` MiB (default 200) with a
Content-Length, generated as the same 1 MiB block over and over (the server never holds the
whole body). This process then, alternating for `--rounds` rounds:

* plain:  `httpx` stream → `file.write`, no checks at all;
* relay:  `relay()` (allow-listing 127.0.0.1) into `LocalStorage(durable=False)`: limits,
          SHA-256, temp file + atomic rename, writes in a worker thread;
* relay+fsync: the same with `LocalStorage`'s default `durable=True` (fsync before rename).

MB/s is the median over the rounds (best shown too); the ratio is relay / plain on medians
(target >= 0.8 for `relay`; `relay+fsync` shows what the default durability costs on this
disk). CPU is this process's user+system seconds per copy (median), the figure least disturbed
by other load on the machine; relay's extra CPU is mostly SHA-256. Memory: a background thread
reads VmRSS from /proc/self/status every 2 ms while a relay runs; the figure is the peak minus
the RSS just before that relay started (target <= 64 MiB). `ru_maxrss` before/after the first
relay is printed as a cross-check (it only moves when the process sets a new lifetime peak).
The server runs in its own process so neither its CPU nor its memory is counted.

    /work/venv/bin/python bench/relay.py                # 200 MiB, 5 rounds
    /work/venv/bin/python bench/relay.py --mb 50 --rounds 5
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as `python bench/relay.py`: put the project root, not bench/, first on sys.path
    # (bench/wallet.py would otherwise shadow the `wallet` package).
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

import argparse
import asyncio
import multiprocessing
import os
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from aiohttp import web

from storage import LocalStorage, new_key, relay

MiB = 1 << 20
BLOCK = 1 * MiB
TARGET_RATIO = 0.8
TARGET_RSS_MIB = 64.0


def _serve(total: int, ports: multiprocessing.Queue[int]) -> None:  # runs in the child
    block = os.urandom(BLOCK)

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = total
        await response.prepare(request)
        for offset in range(0, total, BLOCK):
            await response.write(block[: min(BLOCK, total - offset)])
        await response.write_eof()
        return response

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/video.mp4", stream)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        ports.put(runner.addresses[0][1])
        await asyncio.Event().wait()  # until the parent terminates this process

    asyncio.run(main())


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class RssSampler:
    """Samples VmRSS in a thread, so a busy event loop cannot hide a peak."""

    def __init__(self, interval: float = 0.002) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.baseline = self.peak = _rss_kib()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, _rss_kib())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_kib())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / 1024


@dataclass
class Runs:
    name: str
    mbps: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.mbps)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def plain_copy(client: httpx.AsyncClient, url: str, directory: Path) -> int:
    path = directory / "plain.bin"
    size = 0
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        with path.open("wb") as file:
            async for chunk in response.aiter_bytes():
                file.write(chunk)
                size += len(chunk)
    path.unlink()
    return size


Copy = Callable[[httpx.AsyncClient, str], Awaitable[int]]


def relay_into(storage: LocalStorage, total: int) -> Copy:
    async def run(client: httpx.AsyncClient, url: str) -> int:
        stored = await relay(client, url, storage, new_key("videos", ".mp4"),
                             max_bytes=total + MiB, timeout=300,
                             allow_hosts=frozenset({"/".join(url.split("/", 3)[:3])}))
        await storage.delete(stored.key)
        return stored.size

    return run


async def timed(runs: Runs, copy: Callable[[], Awaitable[int]], total: int) -> None:
    with RssSampler() as rss:
        cpu, started = _cpu_seconds(), time.perf_counter()
        size = await copy()
        elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    if size != total:
        raise SystemExit(f"{runs.name}: copied {size} bytes, expected {total}")
    runs.mbps.append(size / MiB / elapsed)
    runs.cpu.append(cpu)
    runs.rss_mib.append(rss.growth_mib)


async def bench(total: int, rounds: int, url: str, directory: Path) -> list[Runs]:
    plain, fast, durable = Runs("plain"), Runs("relay"), Runs("relay+fsync")
    secret = "bench-only-link-secret-0123456789"
    relay_fast = relay_into(LocalStorage(directory / "a", public_base="http://127.0.0.1",
                                         link_secret=secret, durable=False), total)
    relay_durable = relay_into(LocalStorage(directory / "b", public_base="http://127.0.0.1",
                                            link_secret=secret), total)
    async with httpx.AsyncClient(trust_env=False, timeout=60) as client:
        await relay_fast(client, url)  # warm up: imports, thread pool, connection, page cache
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for round_ in range(rounds):
            await timed(fast, lambda: relay_fast(client, url), total)
            if round_ == 0:
                after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                print(f"ru_maxrss around the first timed relay: {before / 1024:.1f} → "
                      f"{after / 1024:.1f} MiB")
            await timed(plain, lambda: plain_copy(client, url, directory), total)
            await timed(durable, lambda: relay_durable(client, url), total)
    return [plain, fast, durable]


def report(results: list[Runs], total: int) -> bool:
    plain = results[0].median
    print(f"\n{total / MiB:.0f} MiB per copy, {len(results[0].mbps)} rounds, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; MB/s = MiB/s")
    best = max(results[0].mbps)
    print(f"{'':12} {'median MB/s':>11} {'ratio':>6} {'best MB/s':>9} {'ratio':>6} "
          f"{'worst':>7} {'CPU s':>6} {'peak RSS growth MiB':>20}")
    for runs in results:
        print(f"{runs.name:12} {runs.median:11.1f} {runs.median / plain:6.2f} "
              f"{max(runs.mbps):9.1f} {max(runs.mbps) / best:6.2f} {min(runs.mbps):7.1f} "
              f"{statistics.median(runs.cpu):6.2f} {max(runs.rss_mib):20.1f}")
    relayed = results[1]
    ratio_ok = relayed.median / plain >= TARGET_RATIO
    rss_ok = max(relayed.rss_mib + results[2].rss_mib) <= TARGET_RSS_MIB
    print(f"\nrelay/plain {relayed.median / plain:.2f} (target >= {TARGET_RATIO}): "
          f"{'ok' if ratio_ok else 'MISSED'}; peak RSS growth during relays "
          f"{max(relayed.rss_mib + results[2].rss_mib):.1f} MiB (target <= {TARGET_RSS_MIB:.0f}):"
          f" {'ok' if rss_ok else 'MISSED'}")
    return ratio_ok and rss_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="MiB per copy (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each (default 5)")
    args = parser.parse_args()
    total = args.mb * MiB
    context = multiprocessing.get_context("spawn")
    ports: multiprocessing.Queue[int] = context.Queue()
    server = context.Process(target=_serve, args=(total, ports), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{ports.get(timeout=30)}/video.mp4"
        with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
            results = asyncio.run(bench(total, args.rounds, url, Path(tmp)))
        report(results, total)
    finally:
        server.terminate()
        server.join(timeout=10)


if __name__ == "__main__":
    main()
