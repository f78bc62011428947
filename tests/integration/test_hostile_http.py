"""Hostile HTTP against the real server (`build_app` + `serve`, as `videofly run` has them):
half bodies, invalid bytes in every signature header, oversized headers, malformed request
lines carrying a token, slow headers and slow bodies. Each gets its 4xx (or is cut off) and
nothing reaches the log at ERROR. Requests are written byte for byte on raw sockets, since
HTTP clients refuse to send most of this. Concurrent duplicate payment events are in
test_hostile_payments.py.

`TABLE` collects input → answer; run with `-s` to print it (the report's table).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.app import App, build_app, http_client, serve
from core.config import Secrets
from providers import KieClient
from tests.factories import TestDatabase
from tests.integration.test_app_run import demo_config

KIE_KEY = "kie-webhook-key-for-tests"
TG_SECRET = "tg-webhook-secret_0123"
SECRETS = {
    "PROVIDER_CALLBACK_SECRET": "c" * 40, "MEDIA_LINK_SECRET": "m" * 40,
    "STRIPE_SECRET_KEY": "sk_test_" + "s" * 24, "STRIPE_WEBHOOK_SECRET": "whsec_" + "w" * 24,
    "CREEM_API_KEY": "creem_test_" + "k" * 20, "CREEM_WEBHOOK_SECRET": "creem-whsec-" + "x" * 20,
    "TELEGRAM_BOT_TOKEN": "123456:TEST-token_abc", "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
}
TIMEOUT = 1.0  # the test config's header and body timeouts
BOUND = 20.0  # every wait here is bounded by this
TABLE: list[tuple[str, str]] = []


@pytest.fixture(scope="module", autouse=True)
def _print_table() -> Iterator[None]:
    """Prints input → answer when the module is done (shown with pytest -s)."""
    yield
    width = max((len(c) for c, _ in TABLE), default=0)
    print("\n" + "\n".join(f"{case:<{width}}  ->  {outcome}" for case, outcome in TABLE))


@dataclass
class Server:
    app: App
    port: int

    def callback_path(self, provider: str, job_id: int = 1) -> str:
        token = self.app.jobs.job_token(provider, job_id)
        return f"/callbacks/{provider}?job={job_id}&token={token}"


@asynccontextmanager
async def server(database: TestDatabase, tmp_path: Path) -> AsyncIterator[Server]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = demo_config(database, tmp_path / "data", f"http://127.0.0.1:{port}",
                             VIDEOFLY__TELEGRAM__MODE="webhook",
                             VIDEOFLY__HTTP__MAX_BODY_BYTES="65536",
                             VIDEOFLY__HTTP__BODY_TIMEOUT_SECONDS=str(TIMEOUT))
        async with http_client() as http, build_app(
                config, Secrets(SECRETS), http=http,
                providers={"kie": KieClient(http, api_key="k" * 20, webhook_key=KIE_KEY)},
        ) as app, serve(app.web_app, sock=sock, header_timeout=TIMEOUT):
            yield Server(app, port)


@pytest.fixture
async def srv(database: TestDatabase, tmp_path: Path,
              caplog: pytest.LogCaptureFixture) -> AsyncIterator[Server]:
    caplog.set_level(logging.DEBUG)
    async with server(database, tmp_path) as running:
        yield running
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, "\n".join(f"{r.name}: {r.getMessage()}" for r in errors)


def request(method: str, path: str, headers: Mapping[str, bytes | str], body: bytes = b"",
            *, length: int | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    for name, value in headers.items():
        lines.append(name.encode() + b": " + (value if isinstance(value, bytes)
                                              else value.encode()))
    lines.append(f"Content-Length: {len(body) if length is None else length}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def answer(port: int, data: bytes) -> int:
    """Sends `data` on a new connection; the status the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(BOUND):
            status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()


def record(case: str, outcome: str) -> None:
    TABLE.append((case, outcome))


# --- half bodies ----------------------------------------------------------------------------


def _count(app: App, route: str, status: int) -> float:
    text = app.metrics.render().decode()
    pattern = (r'videofly_http_request_duration_seconds_count\{method="POST",'
               rf'route="{re.escape(route)}",status="{status}"\}} (\S+)')
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize(("route", "path"), [
    ("/payments/stripe", "/payments/stripe"),
    ("/payments/creem", "/payments/creem"),
    ("/telegram", "/telegram"),
    ("/callbacks/{provider}", "demo"),
])
async def test_half_a_body_then_gone_is_a_quiet_400(srv: Server, route: str, path: str) -> None:
    if path == "demo":
        path = srv.callback_path("demo")
    headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET} if route == "/telegram" else {}
    for _ in range(10):  # ten of them: ten quiet 400s, no incident
        _, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(request("POST", path, headers, b"{" + b"x" * 499, length=1000))
        await writer.drain()
        writer.close()  # half the body, then gone
        await writer.wait_closed()
    async with asyncio.timeout(BOUND):
        while _count(srv.app, route, 400) < 10:  # noqa: ASYNC110 - the server's own record
            await asyncio.sleep(0.02)
    assert _count(srv.app, route, 500) == 0
    record(f"POST {route}: 500 of 1000 body bytes, then disconnect (x10)",
           "400 recorded, connection closed, no ERROR")


# --- invalid bytes in every signature header --------------------------------------------------


async def test_invalid_bytes_in_every_signature_header_are_401(srv: Server) -> None:
    body = b'{"taskId": "0123456789abcdef0123456789abcdef", "state": "fail"}'
    kie_body = b'{"code": 200, "data": {"taskId": "task-1", "state": "success"}}'
    bad = b"\xff\xfe\x80sig"
    cases = [
        ("X-Signature on /callbacks/demo (valid job token)",
         request("POST", srv.callback_path("demo"), {"X-Signature": bad}, body)),
        ("Stripe-Signature on /payments/stripe",
         request("POST", "/payments/stripe", {"Stripe-Signature": b"t=1,v1=" + bad}, body)),
        ("creem-signature on /payments/creem",
         request("POST", "/payments/creem", {"creem-signature": bad}, body)),
        ("X-Webhook-Signature on /callbacks/kie (valid job token)",
         request("POST", srv.callback_path("kie"), {
             "X-Webhook-Timestamp": "1", "X-Webhook-Signature": bad}, kie_body)),
        ("X-Telegram-Bot-Api-Secret-Token on /telegram",
         request("POST", "/telegram", {"X-Telegram-Bot-Api-Secret-Token": bad}, b"{}")),
    ]
    for name, data in cases:
        status = await answer(srv.port, data)
        record(f"0xFF 0xFE 0x80 in {name}", str(status))
        assert status == 401, name
    # A fresh kie timestamp too: the signature itself must be refused, not the time.
    fresh = request("POST", srv.callback_path("kie"), {
        "X-Webhook-Timestamp": str(int(time.time())), "X-Webhook-Signature": bad}, kie_body)
    assert await answer(srv.port, fresh) == 401
    record("0xFF in X-Webhook-Signature on /callbacks/kie, fresh timestamp", "401")


# --- oversized and malformed heads ------------------------------------------------------------


async def test_oversized_headers_are_refused_quietly(srv: Server) -> None:
    huge = request("POST", "/payments/stripe", {"Stripe-Signature": "v" * 20_000}, b"{}")
    status = await answer(srv.port, huge)
    assert 400 <= status < 500
    record("a 20,000-byte Stripe-Signature header", str(status))
    many = request("GET", "/healthz", {f"X-H{i}": "1" for i in range(300)})
    status = await answer(srv.port, many)
    assert 400 <= status < 500
    record("300 headers", str(status))
    big = request("POST", "/payments/stripe", {"Stripe-Signature": "t=1,v1=00"},
                  b"x" * 70_000)
    status = await answer(srv.port, big)
    assert status == 413
    record("a 70,000-byte body (limit 65,536)", str(status))


async def test_a_malformed_request_line_never_logs_its_token(
        srv: Server, caplog: pytest.LogCaptureFixture) -> None:
    path = srv.callback_path("demo", 42)
    token = path.rsplit("token=", 1)[1]
    for line in (f"POST /callbacks/d\u00e9mo?job=42&token={token} HTTP/1.1".encode(),
                 f"POST {path}\x00 HTTP/1.1".encode(),
                 f"POST /callbacks/demo?job=4\u0662&token={token} HTTP/1.1".encode()):
        status = await answer(srv.port, line + b"\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert status == 400
    record("request line with a non-ASCII path or a NUL, query holding a valid token", "400")
    logged = "\n".join(caplog.text.splitlines())
    assert token not in logged
    assert "malformed request refused" in logged


# --- slow clients -----------------------------------------------------------------------------


async def _trickle(port: int, data: bytes, pause: float) -> int:
    """Sends `data` a byte at a time, `pause` apart, until the server answers or closes;
    returns how many bytes went out before that (all of them: it never did)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0
    try:
        async with asyncio.timeout(BOUND):
            for byte in data:
                writer.write(bytes([byte]))
                try:
                    await writer.drain()
                    await asyncio.wait_for(reader.read(1 << 16), pause)
                except TimeoutError:
                    sent += 1
                    continue
                except ConnectionError:
                    pass
                break  # the server answered or closed
    finally:
        writer.close()
    return sent


async def test_slow_headers_are_cut_off(srv: Server) -> None:
    head = request("GET", "/healthz", {"X-Pad": "p" * 200})
    # 20 connections, each needing ~45 s to send its head at this pace.
    sent = await asyncio.gather(*(_trickle(srv.port, head, 0.2) for _ in range(20)))
    assert all(n < len(head) for n in sent), sent  # every one closed before its head was in
    assert await answer(srv.port, request("GET", "/healthz", {})) == 200
    record("20 connections sending a 260-byte head one byte per 0.2 s (header timeout 1 s)",
           f"all closed by the server after {min(sent)}-{max(sent)} bytes")


async def test_a_slow_body_is_408(srv: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    try:
        writer.write(request("POST", "/payments/stripe", {"Stripe-Signature": "t=1,v1=0"},
                             b"", length=100))
        await writer.drain()
        async with asyncio.timeout(BOUND):
            for _ in range(99):
                writer.write(b"x")
                await writer.drain()
                try:
                    line = await asyncio.wait_for(reader.readline(), 0.2)
                except TimeoutError:
                    continue
                break
            else:
                line = await reader.readline()
    finally:
        writer.close()
    assert int(line.split()[1]) == 408
    record("a 100-byte body sent one byte per 0.2 s (body timeout 1 s)", "408")


