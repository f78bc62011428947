"""Signed provider callbacks per second, and their latency, through the real web application.

Three servers, each alone in a child process on 127.0.0.1, are loaded in turn by this process
with `--concurrency` (100) clients, each on its own kept-alive HTTP/1.1 connection:

* bare: an aiohttp handler on `/callbacks/{provider}` that reads the body and answers
  `{"ok": true}`, with no middleware: the floor aiohttp itself sets on this machine;
* full: `webhooks.create_app` over a real `JobService` on a fresh SQLite file (migrated), with
  the real `KieClient` (webhook key set) wrapped in `TimedProvider`, real `LocalStorage`, and
  `AccessLogger` as in production. Every request is a kie success callback for an existing job,
  with the job token of `JobService.callback_url` and a valid kie signature
  (`X-Webhook-Timestamp` / `X-Webhook-Signature`). So each one pays for: both middlewares
  (latency histogram, callback counter, error mapping), the job-token HMAC, reading the body,
  the signature HMAC, the JSON parse, and the background handover, which runs the real
  `JobService.on_callback`. The jobs are already completed, so that is one read transaction on
  SQLite (the job row) and nothing more: no provider query, no download, no money.
  Consecutive requests go to different jobs (`--jobs`, 2000, round-robin), so handovers do not
  coalesce;
* web: the same full application, but `JobService.on_callback` replaced by a coroutine that
  returns at once: what the web layer itself costs (verify, parse, hand over, answer).

Rates count only fully handled callbacks: a round's clock stops when the last response has
arrived *and* the server's handover backlog is empty (the server is asked, through a
bench-only route, to wait until its background work has drained; that wait is included).
Latency is measured by the client per request (request written → whole answer read), so at
100 concurrent it includes queueing in the server. The client is a lean HTTP/1.1 client on
asyncio protocols (pre-encoded requests, Content-Length framing), so that it, not the server,
is rarely the bottleneck; it still shares the machine's CPUs with the server. Server CPU per
request is the server process's CPU time over the round (including the drain) divided by the
requests (SQLite's worker thread included): it is the figure least disturbed by other load.
After the last round the full server checks that every timed callback was counted `accepted`
and that every job is still completed.

Python's cyclic collector: a full (generation 2) collection walks every object the server has
loaded (SQLAlchemy, aiohttp, pydantic...), about 100 ms here, and stalls every request in
flight, which lands right on the p99. The table shows how many ran in the timed rounds and the
longest. `--gc-freeze` calls `gc.collect(); gc.freeze()` in each server once it is built (what
a service can do after start-up), which moves what start-up made out of the collector's reach.

Timing: `--warmup` (1000) untimed requests per server, then `--rounds` (3) timed runs of
`--requests` (5000) per server, rotating which server goes first. The table shows medians with
min-max. Targets, for full and web: rate ratio to bare >= 0.25 and p99 < 50 ms.

    /work/venv/bin/python bench/callbacks.py
    /work/venv/bin/python bench/callbacks.py --requests 10000 --rounds 5 --concurrency 100
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as `python bench/callbacks.py`: the project root, not bench/, goes first on sys.path
    # (bench/wallet.py would otherwise shadow the `wallet` package).
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import httpx
from aiohttp import web
from sqlalchemy import func, insert, select

from core import migrate
from core.config import GenerationConfig, ModelConfig
from core.db import create_engine, read, utcnow, write
from generation import Catalogue, JobService
from generation.tables import jobs as jobs_table
from providers import KieClient, kie_signature
from storage import LocalStorage
from wallet import Wallet
from webhooks import HANDOVER, AccessLogger, Metrics, WebDeps, create_app

TARGET_RATIO = 0.25
TARGET_P99_MS = 50.0
WEBHOOK_KEY = "bench-kie-webhook-key"
PUBLIC_URL = "http://127.0.0.1:9"  # only the paths of the callback URLs are used

Request = tuple[str, bytes, dict[str, str]]  # path with query, body, headers


# --- the servers (child processes) -------------------------------------------------------------


class _GcWatch:
    """Times the cyclic collector's full (generation 2) collections in the server process."""

    def __init__(self) -> None:
        self.count = 0
        self.max_ms = 0.0
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.count += 1
            self.max_ms = max(self.max_ms, (time.perf_counter() - self._started) * 1000)


_GC = web.AppKey("gc", _GcWatch)


async def _cpu(request: web.Request) -> web.Response:
    """The server's CPU seconds so far; starts a new window for the GC figures."""
    watch = request.app[_GC]
    watch.count, watch.max_ms = 0, 0.0
    return web.json_response({"cpu": time.process_time()})


async def _stats(request: web.Request) -> web.Response:
    watch = request.app[_GC]
    return web.json_response({"cpu": time.process_time(), "gc2": watch.count,
                              "gc2_max_ms": watch.max_ms})


async def _bare(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"ok": True})


async def _bare_app(n_jobs: int) -> tuple[web.Application, list[Request]]:
    app = web.Application()
    app.router.add_post("/callbacks/{provider}", _bare)
    app.router.add_get("/_bench/cpu", _cpu)
    app.router.add_get("/_bench/idle", _stats)
    return app, [(f"/callbacks/kie?job={i}&token=x", _body(f"task-{i}"), {})
                 for i in range(1, n_jobs + 1)]


def _body(task_id: str) -> bytes:
    data = {"taskId": task_id, "model": "sora-2-text-to-video", "state": "success",
            "resultJson": json.dumps({"resultUrls": [f"https://cdn.example/{task_id}.mp4"]}),
            "failCode": "", "failMsg": "", "costTime": 1000, "createTime": 1_750_000_000_000,
            "completeTime": 1_750_000_001_000}
    return json.dumps({"code": 200, "msg": "success", "data": data}).encode()


async def _no_op(provider: str, job_id: int, hint: object) -> None:
    return None


async def _full_app(n_jobs: int, folder: Path, *, handover: bool,
                    ) -> tuple[web.Application, list[Request]]:
    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'bench.db'}")
    await migrate.upgrade(engine)
    wallet = Wallet(engine)
    user = await wallet.open_account("bench", "bench")
    now = utcnow()
    async with write(engine) as conn:
        await conn.execute(insert(jobs_table), [dict(
            user_id=user, model_id="kie-t2v", provider="kie", kind="text-to-video",
            prompt="bench", inputs=[], duration=10, aspect_ratio="16:9", credits=5,
            state="completed", task_id=f"task-{i}", deadline_at=now + timedelta(hours=1),
            created_at=now, updated_at=now, finished_at=now) for i in range(1, n_jobs + 1)])
        ids = [row.id for row in (await conn.execute(
            select(jobs_table.c.id, jobs_table.c.task_id).order_by(jobs_table.c.id))).all()]
    http = httpx.AsyncClient()  # never used: completed jobs query nobody
    metrics = Metrics()
    providers = metrics.timed({"kie": KieClient(http, api_key="unused", base_url=PUBLIC_URL,
                                                webhook_key=WEBHOOK_KEY)})
    storage = LocalStorage(folder / "media", public_base=PUBLIC_URL,
                           link_secret="bench-media-link-secret-0123456789")
    model = ModelConfig(id="kie-t2v", name="kie", provider="kie", kind="text-to-video",
                        credits=5, durations=(10,), aspect_ratios=("16:9",))
    service = JobService(engine=engine, wallet=wallet, catalogue=Catalogue([model]),
                         providers=providers, storage=storage, http=http,
                         config=GenerationConfig(), public_url=PUBLIC_URL,
                         callback_secret="bench-callback-secret")
    if not handover:
        service.on_callback = _no_op  # type: ignore[method-assign]
    app = create_app(WebDeps(engine=engine, jobs=service, providers=providers, storage=storage,
                             metrics=metrics, max_body_bytes=1 << 20))

    async def idle(request: web.Request) -> web.Response:
        async with asyncio.timeout(120):
            await request.app[HANDOVER].wait_idle()
        return await _stats(request)

    async def check(request: web.Request) -> web.Response:
        async with read(engine) as conn:
            not_done = (await conn.execute(select(func.count()).select_from(jobs_table).where(
                jobs_table.c.state != "completed"))).scalar_one()
        accepted = metrics.registry.get_sample_value(
            "videofly_callbacks_total", {"provider": "kie", "outcome": "accepted"})
        return web.json_response({"accepted": accepted or 0, "not_completed": not_done})

    app.router.add_get("/_bench/cpu", _cpu)
    app.router.add_get("/_bench/idle", idle)
    app.router.add_get("/_bench/check", check)
    stamp = str(int(time.time()))
    requests = []
    for job_id, task in zip(ids, (f"task-{i}" for i in range(1, n_jobs + 1)), strict=True):
        path = service.callback_url("kie", job_id).removeprefix(PUBLIC_URL)
        headers = {"X-Webhook-Timestamp": stamp,
                   "X-Webhook-Signature": kie_signature(task, stamp, WEBHOOK_KEY)}
        requests.append((path, _body(task), headers))
    return app, requests


def _serve(kind: str, n_jobs: int, freeze: bool,
           out: multiprocessing.Queue[Any]) -> None:  # in the child
    async def main() -> None:
        with tempfile.TemporaryDirectory() as folder:
            app, requests = await (
                _bare_app(n_jobs) if kind == "bare"
                else _full_app(n_jobs, Path(folder), handover=kind == "full"))
            app[_GC] = _GcWatch()
            if freeze:  # what a service can do once it has started: see --gc-freeze
                gc.collect()
                gc.freeze()
            runner = web.AppRunner(app, access_log_class=AccessLogger)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
            out.put((runner.addresses[0][1], requests))
            await asyncio.Event().wait()  # until the parent terminates this process

    asyncio.run(main())


# --- the load (this process) -------------------------------------------------------------------


@dataclass
class Runs:
    name: str
    rates: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    drain_ms: list[float] = field(default_factory=list)
    gc2: list[int] = field(default_factory=list)
    gc2_max_ms: list[float] = field(default_factory=list)


@dataclass
class Server:
    runs: Runs
    port: int
    requests: list[bytes]  # whole HTTP/1.1 requests, encoded once
    process: multiprocessing.process.BaseProcess
    sent: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _encode(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}",
             "Content-Type: application/json", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Connection(asyncio.Protocol):
    """One kept-alive connection: write a request, wait for one Content-Length framed answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._need: int | None = None
        self._status = 0
        self._answer: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._need is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end]).lower()
            self._status = int(head[9:12])
            start = head.index(b"content-length:") + 15
            stop = head.find(b"\r\n", start)
            self._need = end + 4 + int(head[start:stop if stop >= 0 else None])
        if len(self._buffer) >= self._need:
            del self._buffer[:self._need]
            self._need = None
            if self._answer is not None and not self._answer.done():
                self._answer.set_result(self._status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(ConnectionError("the server closed the connection"))

    async def send(self, request: bytes) -> int:
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._answer


async def _load(server: Server, total: int, concurrency: int) -> list[float]:
    loop = asyncio.get_running_loop()
    connections = [(await loop.create_connection(_Connection, "127.0.0.1", server.port))[1]
                   for _ in range(concurrency)]
    latencies: list[float] = []
    next_index, end = server.sent, server.sent + total

    async def client(conn: _Connection) -> None:
        nonlocal next_index
        while next_index < end:
            request = server.requests[next_index % len(server.requests)]
            next_index += 1
            started = time.perf_counter()
            status = await conn.send(request)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                raise SystemExit(f"{server.runs.name}: HTTP {status}")

    try:
        await asyncio.gather(*(client(c) for c in connections))
    finally:
        for conn in connections:
            if conn.transport is not None:
                conn.transport.close()
    server.sent = end
    return latencies


async def _get(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url) as resp:
        answer: dict[str, Any] = await resp.json()
        return answer


async def _round(session: aiohttp.ClientSession, server: Server, total: int,
                 concurrency: int, *, timed: bool) -> None:
    cpu_before = (await _get(session, server.url + "/_bench/cpu"))["cpu"]
    started = time.perf_counter()
    latencies = await _load(server, total, concurrency)
    answered = time.perf_counter()
    stats = await _get(session, server.url + "/_bench/idle")  # answers after the drain
    elapsed = time.perf_counter() - started
    if not timed:
        return
    ms = sorted(x * 1000 for x in latencies)
    runs = server.runs
    runs.rates.append(total / elapsed)
    runs.p50.append(ms[len(ms) // 2])
    runs.p99.append(ms[min(len(ms) - 1, int(len(ms) * 0.99))])
    runs.cpu_us.append((stats["cpu"] - cpu_before) / total * 1e6)
    runs.drain_ms.append((time.perf_counter() - answered) * 1000)
    runs.gc2.append(stats["gc2"])
    runs.gc2_max_ms.append(stats["gc2_max_ms"])


def _start(kind: str, n_jobs: int, freeze: bool) -> Server:
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[Any] = ctx.Queue()
    process = ctx.Process(target=_serve, args=(kind, n_jobs, freeze, out), daemon=True)
    process.start()
    port, requests = out.get(timeout=120)
    return Server(Runs(kind), port, [_encode(port, *r) for r in requests], process)


async def bench(args: argparse.Namespace) -> tuple[list[Runs], dict[str, dict[str, Any]]]:
    servers = [_start(kind, args.jobs, args.gc_freeze) for kind in ("bare", "full", "web")]
    checks: dict[str, dict[str, Any]] = {}
    try:
        async with aiohttp.ClientSession() as session:
            for server in servers:
                await _round(session, server, args.warmup, args.concurrency, timed=False)
            for number in range(args.rounds):
                shift = number % len(servers)
                for server in servers[shift:] + servers[:shift]:
                    await _round(session, server, args.requests, args.concurrency, timed=True)
            for server in servers[1:]:
                checks[server.runs.name] = {
                    **await _get(session, server.url + "/_bench/check"), "sent": server.sent}
    finally:
        for server in servers:
            server.process.terminate()
            server.process.join(10)
    return [server.runs for server in servers], checks


def _cell(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


def report(runs: list[Runs], checks: dict[str, dict[str, Any]],
           args: argparse.Namespace) -> bool:
    print(f"\n{args.requests} signed kie callbacks per round, {args.rounds} rounds, "
          f"{args.concurrency} concurrent clients on 127.0.0.1; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; servers "
          f"{'with' if args.gc_freeze else 'without'} gc.freeze()")
    print("bare = aiohttp handler, no middleware; full = create_app + JobService.on_callback "
          "(one SQLite read per callback); web = create_app, on_callback a no-op")
    print(f"{'server':<6} {'callbacks/s':>22} {'p50 ms':>18} {'p99 ms':>20} "
          f"{'server CPU µs/req':>20} {'drain ms':>16} {'full GCs, longest ms':>21}")
    for r in runs:
        gcs = f"{sum(r.gc2)}, {max(r.gc2_max_ms):.0f}"
        print(f"{r.name:<6} {_cell(r.rates, '.0f'):>22} {_cell(r.p50, '.1f'):>18} "
              f"{_cell(r.p99, '.1f'):>20} {_cell(r.cpu_us, '.0f'):>20} "
              f"{_cell(r.drain_ms, '.0f'):>16} {gcs:>21}")
    bare = runs[0]
    print()
    for r in runs[1:]:
        ratio = statistics.median(r.rates) / statistics.median(bare.rates)
        p99 = statistics.median(r.p99)
        cpu = statistics.median(bare.cpu_us) / statistics.median(r.cpu_us)
        print(f"{r.name}: rate ratio to bare {ratio:.2f} (target >= {TARGET_RATIO}) "
              f"{'PASS' if ratio >= TARGET_RATIO else 'FAIL'};  p99 {p99:.1f} ms "
              f"(target < {TARGET_P99_MS:.0f}) {'PASS' if p99 < TARGET_P99_MS else 'FAIL'};  "
              f"CPU ratio bare/{r.name} {cpu:.2f} (information)")
    ok = True
    for name, check in checks.items():
        good = check["accepted"] == check["sent"] and check["not_completed"] == 0
        ok &= good
        print(f"check {name}: {check['accepted']:.0f} of {check['sent']} callbacks counted "
              f"accepted; {check['not_completed']} jobs left the completed state  "
              f"{'OK' if good else 'FAILED'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--gc-freeze", action="store_true",
                        help="call gc.freeze() in each server once it is built")
    args = parser.parse_args()
    runs, checks = asyncio.run(bench(args))
    if not report(runs, checks, args):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
