"""A chat harness for the `test_handlers_*` tests: the whole app from the shipped config (demo
provider, real HTTP server on 127.0.0.1 for its callbacks, real storage and wallet) on the test
database, and a scripted user talking to `Handlers.handle`. The wallet audit must be clean when
the harness closes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import App, build_app, serve
from core.config import Config, Secrets, load_config
from core.db import read, sqlite_twin
from core.outbox import outbox
from generation import Job
from handlers import (
    Attachment,
    Button,
    ChatDeps,
    Handlers,
    Inbound,
    Outbound,
    Plans,
    StarsPayment,
    Text,
    TopUp,
)
from handlers.state import Chat, load
from providers import Provider
from tests.factories import BytesPhoto, FakeClock, TestDatabase, jpeg_bytes

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # bound on one demo job's life: render ~1 s, delay 0.3 s, store, thumbnail


def texts(out: Sequence[Outbound]) -> str:
    return "\n".join(m.text for m in out if isinstance(m, Text))


def choices(out: Sequence[Outbound]) -> list[str]:
    return [b.data for m in out if isinstance(m, Text) for row in m.buttons for b in row if b.data]


def buttons(out: Sequence[Outbound]) -> list[Button]:
    return [b for m in out if isinstance(m, Text) for row in m.buttons for b in row]


@dataclass
class User:
    """One chat user of the harness."""

    harness: Harness
    channel: str
    address: str
    language: str | None = "en"

    async def send(self, text: str = "", *, choice: str | None = None,
                   photos: Sequence[Attachment] = (), album: str | None = None,
                   payment: StarsPayment | None = None,
                   handlers: Handlers | None = None) -> list[Outbound]:
        inbound = Inbound(channel=self.channel, address=self.address, language=self.language,
                          text=text, choice=choice, photos=tuple(photos), album=album,
                          payment=payment)
        return await (handlers or self.harness.handlers).handle(inbound)

    async def press(self, data: str, handlers: Handlers | None = None) -> list[Outbound]:
        return await self.send(choice=data, handlers=handlers)

    async def photo(self, *photos: bytes, album: str | None = None,
                    caption: str = "") -> list[Outbound]:
        return await self.send(caption, photos=[BytesPhoto(p) for p in photos], album=album)

    async def id(self) -> int:
        return await self.harness.app.wallet.open_account(self.channel, self.address)

    async def chat(self) -> Chat:
        found = await load(self.harness.app.engine, await self.id())
        assert found is not None
        return found

    async def available(self) -> int:
        return (await self.harness.app.wallet.balance(await self.id())).available


@dataclass
class Harness:
    app: App
    handlers: Handlers
    clock: FakeClock

    def user(self, address: str = "100", channel: str = "telegram",
             language: str | None = "en") -> User:
        return User(self, channel, address, language)

    def with_deps(self, **changes: Any) -> Handlers:
        """Another `Handlers` over the same database (a second instance, or other deps)."""
        return Handlers(replace(self.handlers.deps, **changes))

    async def finished(self, job_id: int) -> Job:
        async with asyncio.timeout(WAIT):
            while (job := await self.app.jobs.get(job_id)).state not in (  # noqa: ASYNC110
                    "completed", "failed"):
                await asyncio.sleep(0.05)
        return job

    async def outbox(self, user_id: int) -> list[tuple[str, dict[str, Any]]]:
        async with read(self.app.engine) as conn:
            rows = (await conn.execute(select(outbox.c.kind, outbox.c.payload).where(
                outbox.c.user_id == user_id).order_by(outbox.c.id))).all()
        return [(r.kind, r.payload) for r in rows]

    async def news(self, user_id: int, kind: str) -> list[Outbound]:
        """The last outbox message of `kind` for the user, rendered, without the main menu that
        every notification ends with (checked here)."""
        payload = [p for k, p in await self.outbox(user_id) if k == kind][-1]
        out = await self.handlers.notification(user_id, kind, payload)
        assert out, "rendered as nothing"
        *news, menu = out
        assert isinstance(menu, Text)
        assert "generate" in [b.data for row in menu.buttons for b in row], menu
        return news


def chat_config(database: TestDatabase, data_dir: Path, public_url: str,
                env: Mapping[str, str] | None = None, **changes: Any) -> Config:
    config = load_config(ROOT / "config.toml", environ={
        "DATABASE_URL": database.url,
        "VIDEOFLY__APP__DATA_DIR": str(data_dir),
        "VIDEOFLY__STORAGE__LOCAL_DIR": str(data_dir / "media"),
        "VIDEOFLY__HTTP__PUBLIC_URL": public_url,
        "VIDEOFLY__GENERATION__DEMO_DELAY_SECONDS": "0.3",
        "VIDEOFLY__TELEGRAM__ADMINS": "[999]",
        **(env or {}),
    })
    return replace(config, **changes)


@asynccontextmanager
async def chatting(database: TestDatabase, tmp_path: Path, *,
                   env: Mapping[str, str] | None = None,
                   providers: Mapping[str, Provider] | None = None,
                   topup: TopUp | None = None, plans: Plans | None = None,
                   http: httpx.AsyncClient | None = None,
                   **changes: Any) -> AsyncIterator[Harness]:
    """The app served on a port bound first (the demo calls back through it); no scheduler."""
    clock = FakeClock()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = chat_config(database, tmp_path / "data", url, env, **changes)
        # Signing secrets set: a harness with a real provider's model is not a demo.
        secrets = Secrets({"PROVIDER_CALLBACK_SECRET": "p" * 40, "MEDIA_LINK_SECRET": "m" * 40})
        async with build_app(config, secrets, clock=clock, providers=providers,
                            http=http) as app, \
                serve(app.web_app, sock=sock):
            handlers = Handlers(ChatDeps(
                config=app.config, engine=app.engine, wallet=app.wallet, jobs=app.jobs,
                catalogue=app.catalogue, storage=app.storage, clock=clock, topup=topup,
                plans=plans, memberships=app.payments.memberships))
            yield Harness(app, handlers, clock)
            violations = await app.wallet.audit()
            assert not violations, "\n".join(map(str, violations))


PHOTO = jpeg_bytes()


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement run on the engine (and its SQLite twin) inside the block."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        seen.append(" ".join(sql.split()).upper())

    targets = [engine.sync_engine, *filter(None, [sqlite_twin(engine)])]
    for target in targets:
        event.listen(target, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for target in targets:
            event.remove(target, "before_cursor_execute", record)
