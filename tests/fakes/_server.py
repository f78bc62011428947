"""The part every fake server shares: start/stop on a free port, scripted replies."""

from __future__ import annotations

import abc
import asyncio
import functools
import itertools
import ssl
from collections import defaultdict, deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx
from aiohttp import ClientSession, web

__all__ = ["TIGHT", "FakeServer", "Reply", "http_client", "post_json"]


@dataclass(frozen=True, kw_only=True)
class Reply:
    """One scripted answer. `body` (raw bytes) wins over `json`; `delay` sleeps first (keep it
    longer than the client's timeout to provoke one); `drop` closes the connection unanswered."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


class FakeServer(abc.ABC):
    """Base of the fakes: subclasses add their routes in `routes()`."""

    client_max_size = 1024 * 1024  # aiohttp's default request body limit; uploads need more

    def __init__(self) -> None:
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._scripts: defaultdict[str, deque[Reply]] = defaultdict(deque)
        self.create_calls: list[Any] = []  # request bodies, in arrival order, even bad ones
        self.query_calls: list[str] = []
        self.authorizations: list[str] = []
        self._ids = itertools.count(1)

    @abc.abstractmethod
    def routes(self) -> list[web.RouteDef]:
        """The fake's routes."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        """Binds 127.0.0.1 (port 0: a free one; else that port again, after a `stop`)."""
        app = web.Application(client_max_size=self.client_max_size)
        app.add_routes(self.routes())
        # Cancel handlers whose client went away, so a timed-out request does not hold `stop`.
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1,
                               access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        self._runner = runner
        sockets = runner.addresses
        self.port = sockets[0][1]

    async def stop(self) -> None:
        """Closes the port (the port number is kept, so later connections are refused)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    def script_next(self, op: str, *replies: Reply) -> None:
        """Queues replies for the next requests of `op`; afterwards the fake behaves normally."""
        self._scripts[op].extend(replies)

    async def scripted(self, op: str, request: web.Request) -> web.StreamResponse | None:
        """The next scripted reply for `op` as a response, or None to behave normally."""
        if not self._scripts[op]:
            return None
        reply = self._scripts[op].popleft()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError  # nothing more to write on a closed connection
        if reply.body is not None:
            return web.Response(status=reply.status, body=reply.body, headers=reply.headers)
        return web.json_response(reply.json, status=reply.status, headers=reply.headers)


async def post_json(url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    """POSTs a callback body as the provider would; returns the HTTP status it got."""
    async with ClientSession() as session, session.post(
            url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    ) as resp:
        await resp.read()
        return resp.status


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()  # verifying, built once: each build costs ~20 ms


TIGHT = 0.25  # seconds: the read timeout of tests that provoke one (fakes sleep 1 s)


def http_client(timeout: float = 2.0, **kwargs: Any) -> httpx.AsyncClient:
    """The shared client the app would pass to providers. Connecting gets 5 s whatever
    `timeout` says: on a loaded machine resolving even 127.0.0.1 (in a thread) can take a
    while, and a connect timeout would be retried and upset the request counts."""
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0), verify=_tls(),
                             **kwargs)
