"""The whole bot through Telegram: `build_app` on the test database with the shipped config and
the demo provider, the real HTTP server, the real `Handlers`, the outbox `Dispatcher`, and
python-telegram-bot polling the fake Bot API. A scripted user chats with it as a person would,
and the tests look at what the Bot API was asked to send and at the wallet."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.app import App, build_app, serve
from bot.dispatcher import Dispatcher, DispatchPolicy
from bot.telegram import ChatRateLimiter, TelegramBot, open_telegram
from core.config import Secrets
from core.db import read, utcnow
from handlers import ChatDeps, Handlers
from handlers.messages import t, tn
from handlers.tables import chats
from providers import Provider, TaskRequest, TaskState, TaskStatus
from tests.factories import TestDatabase
from tests.fakes.telegram import Call, FakeUser, TelegramFake
from tests.integration.test_app_run import ROOT, demo_config
from wallet.tables import identities

from .conftest import FAST, jpeg

WAIT = 60.0  # bound on a job's life: demo render ~1 s, callback delay 0.3 s, store, thumbnail
# Replies here come faster than a person types; Telegram's ~1/s per chat would only slow the run.
E2E = replace(FAST, rate_limiter=lambda: ChatRateLimiter(chat_per_second=100, chat_burst=100))


@dataclass
class Stack:
    app: App
    handlers: Handlers
    bot: TelegramBot
    tg: TelegramFake

    async def user_id(self, telegram_id: int) -> int:
        async with read(self.app.engine) as conn:
            return int((await conn.execute(select(identities.c.user_id).where(
                identities.c.channel == "telegram",
                identities.c.external_id == str(telegram_id)))).scalar_one())


@asynccontextmanager
async def whole_bot(database: TestDatabase, tmp_path: Path, tg: TelegramFake, *,
                    env: Mapping[str, str] | None = None,
                    providers: Mapping[str, Provider] | None = None) -> AsyncIterator[Stack]:
    """The service as `videofly run` has it, with Telegram pointed at the fake."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        overrides = {"VIDEOFLY__TELEGRAM__API_BASE_URL": tg.api_base_url,
                     "VIDEOFLY__TELEGRAM__API_FILE_URL": tg.api_file_url, **(env or {})}
        config = demo_config(database, tmp_path / "data", url, ROOT / "config.toml",
                             **overrides)
        secrets = Secrets({"PROVIDER_CALLBACK_SECRET": "p" * 40, "MEDIA_LINK_SECRET": "m" * 40})
        async with build_app(config, secrets, providers=providers) as app, \
                serve(app.web_app, sock=sock), app.scheduler:
            handlers = Handlers(ChatDeps(config=app.config, engine=app.engine,
                                         wallet=app.wallet, jobs=app.jobs,
                                         catalogue=app.catalogue, storage=app.storage,
                                         clock=utcnow))
            async with open_telegram(config, token=tg.token, handlers=handlers,
                                     storage=app.storage, options=E2E) as bot, \
                    Dispatcher(engine=app.engine, handlers=handlers,
                               channels={"telegram": bot.channel},
                               policy=DispatchPolicy(idle=0.1)):
                yield Stack(app, handlers, bot, tg)


class Person:
    """A user in a chat: does one thing, waits until the bot has answered it, reads the answer."""

    def __init__(self, stack: Stack, user: FakeUser) -> None:
        self.stack, self.user = stack, user
        self.seen = len(stack.tg.sent_to(user.id))

    async def _answer(self, act: Callable[[], Any]) -> list[Call]:
        served = self.stack.bot.served
        act()
        async with asyncio.timeout(15):
            while self.stack.bot.served <= served:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        return self.news()

    def news(self) -> list[Call]:
        """What the bot sent to this chat since last looked (edits excluded)."""
        sent = [c for c in self.stack.tg.sent_to(self.user.id) if c.method != "editMessageText"]
        new, self.seen = sent[self.seen:], len(sent)
        return new

    async def says(self, text: str) -> list[Call]:
        return await self._answer(lambda: self.user.says(text))

    async def presses(self, data: str) -> list[Call]:
        return await self._answer(lambda: self.user.presses(data))

    async def sends_photo(self, data: bytes, caption: str = "") -> list[Call]:
        return await self._answer(lambda: self.user.sends_photo(data, caption))

    async def makes_a_video(self, prompt: str = "a slow pan over a gradient") -> list[Call]:
        """Generate → image-to-video → photo (prompt as caption) → demo model → 16:9 →
        up to the confirmation; returns the confirmation's messages."""
        answer = await self.presses("g")
        answer = await self.presses(data_of(answer, "kind:image-to-video"))
        return await self.to_confirmation(await self.sends_photo(jpeg(), caption=prompt),
                                          prompt)

    async def to_confirmation(self, answer: list[Call], prompt: str) -> list[Call]:
        """Answers the questions after the photo until the confirmation."""
        for _ in range(6):  # what is asked next depends on the model's choices
            if data_of(answer, "confirm", needed=False) or \
                    data_of(answer, "checkin", needed=False):  # short of credits
                return answer
            if data_of(answer, "model:demo-i2v", needed=False):
                answer = await self.presses("model:demo-i2v")
            elif data_of(answer, "aspect:16:9", needed=False):
                answer = await self.presses("aspect:16:9")
            elif data_of(answer, "duration:", needed=False):
                answer = await self.presses(data_of(answer, "duration:"))
            else:
                answer = await self.says(prompt)
        raise AssertionError(f"never reached the confirmation: {texts(answer)}")


def data_of(calls: list[Call], prefix: str, *, needed: bool = True) -> str:
    """The data of the last message's first button starting with `prefix`."""
    for call in reversed(calls):
        for _, data in call.buttons():
            if data.startswith(prefix):
                return data
    if needed:
        raise AssertionError(f"no {prefix!r} button in {[c.buttons() for c in calls]}")
    return ""


def texts(calls: list[Call]) -> str:
    return "\n".join(str(c.params.get("text") or c.params.get("caption") or "") for c in calls)


async def delivered(stack: Stack, chat: int, method: str, count: int = 1) -> list[Call]:
    return await stack.tg.wait_for(method, chat_id=chat, count=count, within=WAIT)


class RefusingProvider:
    """Stands in for the demo provider: every task fails at once, as a refused prompt would."""

    name = "demo"

    async def create_task(self, req: TaskRequest) -> TaskStatus:
        return TaskStatus(task_id="refused-1", state=TaskState.FAILED,
                          error="the prompt was refused")

    async def query_task(self, task_id: str) -> TaskStatus:
        return TaskStatus(task_id=task_id, state=TaskState.FAILED, error="refused")

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> Any:
        raise NotImplementedError("no callbacks: tasks fail on submission")


async def test_first_contact_to_a_delivered_video(database: TestDatabase, tmp_path: Path,
                                                  tg: TelegramFake) -> None:
    async with whole_bot(database, tmp_path, tg) as stack:
        alice = Person(stack, tg.user(1001, language_code="en"))
        welcome = await alice.says("/start")
        assert t("en", "welcome") in texts(welcome)
        assert data_of(welcome, "generate") == "generate"  # the main menu
        checkin = await alice.says("/checkin")
        assert t("en", "checkin.done", credits="2 credits", balance=12) in texts(checkin)

        confirm = await alice.makes_a_video()
        tg.script_next("sendVideo", tg.retry_after(1))  # the delivery meets a 429 first
        started = await alice.presses("go")
        assert [c.method for c in started] == ["sendMessage"]  # the status message
        status_message = str(tg.last_message_id(1001))
        refused, video = await delivered(stack, 1001, "sendVideo", count=2)

        assert "Cost: 1 credit\n" in texts(confirm)  # the price shown before confirming
        # After the video, the main menu; the status message ends with the outcome, and no
        # edit repeats the text before it (Telegram: "message is not modified").
        [menu] = await tg.wait_for("sendMessage", chat_id=1001, within=WAIT,
                                   where=lambda c: c.at >= video.at and
                                   c.params["text"] == t("en", "menu.prompt"))
        assert data_of([menu], "generate") == "generate"
        await tg.wait_for("editMessageText", chat_id=1001, within=WAIT,
                          where=lambda c: "delivered" in c.params["text"])
        shown = [started[0].params["text"]]
        for e in tg.of("editMessageText", 1001):
            assert e.params["text"] != shown[-1]
            shown.append(e.params["text"])
        assert video.at - refused.at >= 1.0  # retry_after honoured
        assert video.files["video"] > 1000
        assert 0 < video.files["thumbnail"] <= 200 * 1024
        uid = await stack.user_id(1001)
        balance = await stack.app.wallet.balance(uid)
        assert (balance.available, balance.held) == (11, 0)
        answer = await alice.says("/balance")
        assert t("en", "balance.text", available="11 credits", held="0 credits") in texts(answer)
        # The status message was the one the dispatcher kept up to date.
        edits = tg.of("editMessageText", 1001)
        assert all(e.params["message_id"] == status_message for e in edits)
        assert await stack.app.wallet.audit() == []
        for language in ("en", "zh"):
            assert tg.commands[language] == [{"command": c, "description": d} for c, d
                                             in stack.handlers.command_menu(language)]


async def test_short_of_credits_cancel_and_a_failed_job(database: TestDatabase,
                                                        tmp_path: Path,
                                                        tg: TelegramFake) -> None:
    env = {"VIDEOFLY__CREDITS__NEW_USER_BONUS": "1"}
    async with whole_bot(database, tmp_path, tg, env=env,
                         providers={"demo": RefusingProvider()}) as stack:
        bob = Person(stack, tg.user(2002))
        await bob.says("/start")
        await bob.presses("g")
        cancelled = await bob.says("/cancel")
        assert t("en", "cancelled") in texts(cancelled)
        uid = await stack.user_id(2002)
        async with read(stack.app.engine) as conn:
            step = (await conn.execute(select(chats.c.step).where(
                chats.c.user_id == uid))).scalar_one()
        assert step == "idle"

        await bob.makes_a_video()
        await bob.presses("go")  # 1 credit held; the provider refuses at once
        await tg.wait_for("sendMessage", chat_id=2002, within=WAIT,
                          where=lambda c: tn("en", "fail.back", 1) in c.params["text"])
        assert (await stack.app.wallet.balance(uid)).available == 1

        await stack.app.wallet.hold(uid, 1, ref="elsewhere")  # now nothing is left
        confirmation = await bob.makes_a_video()
        assert tn("en", "gen.short", 1) in texts(confirmation)  # says what is missing
        assert data_of(confirmation, "confirm", needed=False) == ""  # and no Confirm
        assert data_of(confirmation, "topup") == "topup"
        short = await bob.presses("go")  # an old Confirm button still in the chat
        assert t("en", "err.insufficient", needed="1 credit", available="0 credits",
                 missing=1) in texts(short)
        assert await stack.app.wallet.audit() == []


async def test_admin_grant_and_a_non_admin_trying(database: TestDatabase, tmp_path: Path,
                                                  tg: TelegramFake) -> None:
    async with whole_bot(database, tmp_path, tg,
                         env={"VIDEOFLY__TELEGRAM__ADMINS": "[3003]"}) as stack:
        admin, carol = Person(stack, tg.user(3003)), Person(stack, tg.user(3004))
        await admin.says("/start")
        await carol.says("/start")
        unknown = await carol.says("/frobnicate")
        refused = await carol.says("/grant 3003 500")
        assert texts(refused) == texts(unknown) == t("en", "unknown")

        carol_id = await stack.user_id(3004)
        told = len(tg.of("sendMessage", 3004))
        granted = await admin.says("/grant 3004 5 thanks for the feedback")
        assert t("en", "admin.granted", credits="5 credits", user_id=carol_id, balance=15) \
            in texts(granted)
        await tg.wait_for("sendMessage", chat_id=3004, count=told + 1,
                          within=WAIT)  # carol is told, through the outbox
        assert (await stack.app.wallet.balance(carol_id)).available == 15
        assert (await stack.app.wallet.balance(await stack.user_id(3003))).available == 10


async def test_a_restarted_bot_continues_the_conversation(database: TestDatabase,
                                                          tmp_path: Path,
                                                          tg: TelegramFake) -> None:
    async with whole_bot(database, tmp_path, tg) as stack:
        dan = Person(stack, tg.user(4004))
        await dan.says("/start")
        await dan.presses("g")
        asked = await dan.presses("k:image-to-video")
    # Everything stopped: the process is gone. A new one on the same database:
    async with whole_bot(database, tmp_path, tg) as stack:
        dan = Person(stack, tg.user(4004))
        answer = await dan.sends_photo(jpeg(), caption="a slow pan")
        assert not data_of(answer, "generate", needed=False)  # not the main menu: the flow goes on
        await dan.to_confirmation(answer, "a slow pan")
        await dan.presses("go")
        await delivered(stack, 4004, "sendVideo")
        balance = await stack.app.wallet.balance(await stack.user_id(4004))
        assert (balance.available, balance.held) == (9, 0)
    assert data_of(asked, "cancel")  # before the restart the bot had asked for the photo
