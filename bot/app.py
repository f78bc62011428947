"""The composition root: everything the service runs on, built from the config in one place.

    async with build_app(config, Secrets.from_env()) as app:
        async with serve(app.web_app, host=config.http.host, port=config.http.port), \\
                app.scheduler:
            ...

`build_app` migrates the database, then builds the engine, the one shared `httpx.AsyncClient`,
storage, the provider clients, the wallet, the catalogue, the job service, the conversations
(`handlers.Handlers`), the payments service (`payments.Payments`, the chat's `TopUp`), the
metrics, the web application (with `POST /telegram` in Telegram webhook mode, `GET|POST
/wechat` when WeChat's variables are set, and the payment webhooks), the users' turns
(`bot.ordering.Turns` with its lease: WeChat's answer path and the outbox dispatcher take the
same one, so in one process they share one lock per user, and across replicas the lease row)
and the (not yet started) scheduler, and closes them in reverse order on exit. WeChat's
variables are all set or none (`WECHAT_APP_ID`, `WECHAT_APP_SECRET`, `WECHAT_TOKEN`;
`WECHAT_AES_KEY` for safe mode): one missing, or a bad AES key, stops start-up with a
`StartupError` naming it.
Channels and the outbox dispatcher are the caller's to build (`videofly run` and `videofly chat`
serve different channels; `bot.channels.open_channels` opens the configured ones).
Besides the sweeps, the scheduler deletes demo clips a day old (their jobs copied them into
storage long before) and, on local storage, half-written uploads a crash left behind. Tests
build the same thing with local servers in place of the outside world, through the keyword
overrides. Nothing here runs at import time.

Providers: the demo provider always; a registered one (`providers.PROVIDERS`: kie, evolink,
image) only when an enabled model uses it, and then its key must be set (the registry names the
variable: `KIE_API_KEY`, `EVOLINK_API_KEY`, `IMAGE_API_KEY`) and its settings too (the image
model's `[generation] image_base_url`), or start-up stops with a `StartupError` naming what to
set. Every client is wrapped in `webhooks.TimedProvider`.

Signing secrets (`bot._secrets`): outside a demo `PROVIDER_CALLBACK_SECRET` and, with local
storage, `MEDIA_LINK_SECRET` must be set, or the start stops naming the variable; a demo makes
its own once and keeps them in `<data_dir>/secrets.env` (0600), so links survive a restart.

The demo provider's results are fetched from our own server (`{public_url}/demo/…`, plain http
on 127.0.0.1 in a demo), which the relay's safety rules refuse: when an enabled model uses the
demo provider, the public URL's exact origin (scheme, host and port) is added to
`[generation] allow_hosts` for this process; no other port of that host is allowed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from socket import socket
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from core import migrate
from core.config import Config, Secrets
from core.db import create_engine, utcnow
from generation import Catalogue, JobService, sweeps
from handlers import ChatDeps, Handlers
from memberships import Memberships
from payments import Payments
from providers import DemoProvider, Provider
from storage import LocalStorage, Storage, StorageConfigError, open_storage
from wallet import Wallet
from webhooks.metrics import Metrics

from . import _setup
from ._secrets import SecretProblem, service_secrets
from ._setup import StartupError
from .ordering import Turns
from .scheduler import Periodic, Scheduler, membership_jobs, periodic_jobs

if TYPE_CHECKING:
    from aiohttp import web

    from webhooks.telegram import TelegramWebhook
    from webhooks.wechat import WeChatWebhook

__all__ = ["App", "StartupError", "build_app", "engine_for", "http_client", "serve"]

log = logging.getLogger("bot.app")

SHUTDOWN_TIMEOUT = 10.0  # seconds the web server gives requests in progress when stopping
HEADER_TIMEOUT = 15.0  # [http] header_timeout_seconds' default
HOUSEKEEPING_SECONDS = 3600.0
# Demo clips are copied into storage when their job completes; a day is far past any deadline.
DEMO_CLIP_KEEP_SECONDS = 86_400.0
PARTIAL_KEEP_SECONDS = 3600.0  # a crash's half-written upload; no upload takes this long
# The catch-up sweeps wait this long after start, off the path to the first menu and /healthz.
FIRST_SWEEPS_DELAY = 2.0


@dataclass(frozen=True, kw_only=True)
class App:
    """What the running service is made of. `providers` are the timed clients the job service
    and the web routes use; `demo` is the demo provider inside `providers["demo"]`.

    `web_app`, the aiohttp application, is built on first use: aiohttp's import costs about
    0.3 s of CPU, which `videofly chat` spends after its first menu, not before."""

    config: Config
    engine: AsyncEngine
    http: httpx.AsyncClient
    storage: Storage
    providers: Mapping[str, Provider]
    demo: DemoProvider
    wallet: Wallet
    catalogue: Catalogue
    jobs: JobService
    handlers: Handlers
    payments: Payments
    telegram_webhook: TelegramWebhook | None  # webhook mode: where POST /telegram hands over
    wechat_webhook: WeChatWebhook | None  # WeChat configured: where /wechat hands over
    metrics: Metrics
    scheduler: Scheduler
    demo_dir: Path
    turns: Turns  # the users' turns across replicas, for the answer paths and the dispatcher

    @cached_property
    def web_app(self) -> web.Application:
        from webhooks import WebDeps, create_app

        return create_app(WebDeps(
            engine=self.engine, jobs=self.jobs, providers=self.providers, storage=self.storage,
            metrics=self.metrics, max_body_bytes=self.config.http.max_body_bytes,
            demo_dir=self.demo_dir, telegram=self.telegram_webhook, payments=self.payments,
            wechat=self.wechat_webhook, body_timeout=self.config.http.body_timeout_seconds))


def engine_for(config: Config) -> AsyncEngine:
    db = config.database
    return create_engine(db.url, pool_size=db.pool_size, max_overflow=db.max_overflow,
                         sqlite_busy_timeout_ms=db.sqlite_busy_timeout_ms, echo=db.echo)


def http_client() -> httpx.AsyncClient:
    """The one outbound client: bounded timeouts, HTTP/1.1 (the relay's address pinning needs
    it), TLS verified, no redirects unless a caller follows them itself. httpx logs every
    request URL at INFO, and provider and media URLs carry tokens: its logging is turned down."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(30.0, connect=10.0), http1=True, http2=False,
        follow_redirects=False, limits=limits,
        transport=_FirstUseTransport(http1=True, http2=False, limits=limits))


class _FirstUseTransport(httpx.AsyncBaseTransport):
    """httpx's default transport with the client's settings, built on the first request.

    Building it imports httpcore and anyio and loads the CA bundle into an SSL context, about
    80 ms of CPU that start-up would spend before the first menu although nothing is sent out
    until a job or a payment needs it (bench/README.md, `bench/startup.py`)."""

    def __init__(self, *, http1: bool, http2: bool, limits: httpx.Limits) -> None:
        self._http1, self._http2, self._limits = http1, http2, limits
        self._transport: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._transport is None:  # no await in between: one transport, whoever comes first
            self._transport = httpx.AsyncHTTPTransport(
                http1=self._http1, http2=self._http2, limits=self._limits)
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()


@asynccontextmanager
async def build_app(
    config: Config, secrets: Secrets, *, engine: AsyncEngine | None = None,
    http: httpx.AsyncClient | None = None, providers: Mapping[str, Provider] | None = None,
    clock: Callable[[], datetime] = utcnow, run_migrations: bool = True,
) -> AsyncIterator[App]:
    """Builds the service from `config` and `secrets`; closes it all on exit.

    Overrides, for tests: an `engine` or `http` client given here is the caller's to close;
    `providers` replace (or add to) the clients built from the config, by provider name."""
    async with AsyncExitStack() as stack:
        if http is None:
            http = await stack.enter_async_context(http_client())
        # Missing keys stop the start before anything touches the database.
        built = _setup.clients(config, secrets, http, skip=frozenset(providers or ()))
        telegram_webhook = _setup.telegram_webhook(config, secrets)
        try:
            secrets = service_secrets(config, secrets)
        except SecretProblem as exc:
            raise StartupError(str(exc)) from None
        wechat_webhook = _setup.wechat_webhook(config, secrets)
        if engine is None:
            engine = engine_for(config)
            stack.push_async_callback(engine.dispose)
        if run_migrations:
            await migrate.upgrade(engine)
        callback_secret = secrets["PROVIDER_CALLBACK_SECRET"]
        try:
            storage = await stack.enter_async_context(open_storage(
                config.storage, public_url=config.http.public_url,
                secrets=secrets))
        except StorageConfigError as exc:
            raise StartupError(str(exc)) from None
        demo_dir = Path(config.app.data_dir) / "demo"
        demo = DemoProvider(http, secret=callback_secret, out_dir=demo_dir,
                            public_url=config.http.public_url,
                            delay=config.generation.demo_delay_seconds)
        stack.push_async_callback(demo.aclose)
        metrics = Metrics()
        clients = metrics.timed({**built, "demo": demo, **(providers or {})})
        log.info("providers: %s; models offered: %s", ", ".join(sorted(clients)),
                 ", ".join(m.id for m in config.models if m.enabled) or "none")
        wallet = Wallet(engine, clock=clock)
        catalogue = Catalogue(config.models)
        jobs = JobService(engine=engine, wallet=wallet, catalogue=catalogue, providers=clients,
                          storage=storage, http=http, config=_setup.generation(config),
                          public_url=config.http.public_url, callback_secret=callback_secret,
                          clock=clock)
        try:
            memberships = Memberships(engine=engine, wallet=wallet, config=config, clock=clock)
            payments = Payments(engine=engine, wallet=wallet, config=config, secrets=secrets,
                                http=http, clock=clock, memberships=memberships)
        except ValueError as exc:
            raise StartupError(f"[[packages]]: {exc}") from None
        handlers = Handlers(ChatDeps(config=config, engine=engine, wallet=wallet, jobs=jobs,
                                     catalogue=catalogue, storage=storage, clock=clock,
                                     topup=payments, plans=payments, memberships=memberships))
        started = clock()
        housekeeping = [Periodic("purge_demo_clips", HOUSEKEEPING_SECONDS,
                                 lambda: demo.purge(DEMO_CLIP_KEEP_SECONDS)),
                        # Runs first at start: resumes what a crash interrupted.
                        Periodic("recover", HOUSEKEEPING_SECONDS,
                                 lambda: sweeps.recover(jobs, before=started))]
        if isinstance(storage, LocalStorage):
            local = storage
            housekeeping.append(Periodic("purge_partial_uploads", HOUSEKEEPING_SECONDS,
                                         lambda: local.purge_partials(PARTIAL_KEEP_SECONDS)))
        housekeeping += membership_jobs(memberships)
        if wechat_webhook is not None:
            from .wechat._dedup import purge  # the WeChat messages' dedup rows, once expired

            db = engine
            housekeeping.append(Periodic("purge_wechat_inbound", HOUSEKEEPING_SECONDS,
                                         lambda: purge(db, clock())))
        scheduler = Scheduler(periodic_jobs(jobs, wallet, extra=housekeeping),
                              first_delay=FIRST_SWEEPS_DELAY)
        yield App(config=config, engine=engine, http=http, storage=storage, providers=clients,
                  demo=demo, wallet=wallet, catalogue=catalogue, jobs=jobs, handlers=handlers,
                  payments=payments, telegram_webhook=telegram_webhook,
                  wechat_webhook=wechat_webhook, metrics=metrics, scheduler=scheduler,
                  demo_dir=demo_dir, turns=Turns(engine))


@asynccontextmanager
async def serve(web_app: web.Application, *, host: str = "127.0.0.1", port: int = 0,
                sock: socket | None = None,
                header_timeout: float = HEADER_TIMEOUT) -> AsyncIterator[str]:
    """Serves `web_app` on `host:port` (port 0: a free one), or on an already bound `sock`;
    yields the base URL it listens on. Access logs never show query strings.

    `header_timeout`: aiohttp's keep-alive timeout, which it also counts from a connection's
    start: a client that has not sent a whole request head by then (a slow-loris one byte at
    a time, or an idle kept-alive connection) is disconnected."""
    from aiohttp import web

    from webhooks import AccessLogger

    runner = web.AppRunner(web_app, access_log_class=AccessLogger,
                           shutdown_timeout=SHUTDOWN_TIMEOUT, keepalive_timeout=header_timeout)
    await runner.setup()
    try:
        site: web.BaseSite = (web.SockSite(runner, sock) if sock is not None
                              else web.TCPSite(runner, host, port))
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        bound_host, bound_port = runner.addresses[0][:2]
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield f"http://{url_host}:{bound_port}"
    finally:
        await runner.cleanup()
