"""The whole bot through a WeChat official account: `build_app` on the test database with the
shipped config and the demo provider, the real HTTP server with `/wechat`, `open_channels`
(the WeChat channel against the local fake WeChat API), the outbox `Dispatcher`. A simulated
WeChat posts each user's messages signed (in safe mode encrypted) with wechatpy's own code, and
the tests read the passive replies, the customer-service messages the fake accepted, and the
wallet (its audit clean at the end of each)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import App, StartupError, build_app, serve
from bot.channels import open_channels
from bot.dispatcher import Dispatcher, DispatchPolicy
from bot.wechat import WeChatInbox
from bot.wechat._inbox_tables import wechat_held, wechat_inbound
from core.config import Secrets
from core.db import read
from handlers.messages import t
from handlers.tables import chats
from providers import Provider, TaskRequest, TaskState, TaskStatus
from tests.factories import TestDatabase, jpeg_bytes
from tests.fakes.wechat import WeChatFake
from tests.integration._wechat import AES_KEY, TOKEN, WeChatSim, event_xml, message_xml, text_xml
from tests.integration.test_app_run import ROOT, demo_config
from wallet.tables import identities

WAIT = 60.0  # bound on a job's life: demo render ~1 s, callback delay 0.3 s, store, thumbnail


@dataclass
class Stack:
    app: App
    wx: WeChatFake
    sim: WeChatSim
    inbox: WeChatInbox

    async def user_id(self, openid: str) -> int:
        async with read(self.app.engine) as conn:
            return int((await conn.execute(select(identities.c.user_id).where(
                identities.c.channel == "wechat",
                identities.c.external_id == openid))).scalar_one())


def wechat_secrets(wx: WeChatFake, *, safe: bool = False, **more: str) -> Secrets:
    values = {"PROVIDER_CALLBACK_SECRET": "p" * 40, "MEDIA_LINK_SECRET": "m" * 40,
              "WECHAT_APP_ID": wx.app_id, "WECHAT_APP_SECRET": wx.secret,
              "WECHAT_TOKEN": TOKEN}
    if safe:
        values["WECHAT_AES_KEY"] = AES_KEY
    return Secrets({**values, **more})


@asynccontextmanager
async def wechat_service(database: TestDatabase, tmp_path: Path, wx: WeChatFake, *,
                         mode: str = "active", safe: bool = False,
                         env: Mapping[str, str] | None = None,
                         providers: Mapping[str, Provider] | None = None,
                         ) -> AsyncIterator[Stack]:
    """The service as `videofly run` has it, with WeChat's API at the fake."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = demo_config(database, tmp_path / "data", url, ROOT / "config.toml",
                             VIDEOFLY__WECHAT__API_BASE_URL=wx.url,
                             VIDEOFLY__WECHAT__MODE=mode, **(env or {}))
        secrets = wechat_secrets(wx, safe=safe)
        async with build_app(config, secrets, providers=providers) as app, \
                serve(app.web_app, sock=sock), app.scheduler, \
                open_channels(app, secrets) as channels, \
                Dispatcher(engine=app.engine, handlers=app.handlers, channels=channels,
                           policy=DispatchPolicy(idle=0.1), turns=app.turns):
            assert app.wechat_webhook is not None
            inbox = app.wechat_webhook._sink
            assert isinstance(inbox, WeChatInbox)
            assert inbox._turns is app.turns  # the dispatcher's: one lock per user, one lease
            sim = WeChatSim(f"{url}/wechat", safe=safe, app_id=wx.app_id)
            try:
                yield Stack(app, wx, sim, inbox)
            finally:
                await sim.aclose()
        assert await app.wallet.audit() == []


class Person:
    """A WeChat user: sends one message, and reads what came back for it: the passive reply
    and the customer-service messages the answer became."""

    def __init__(self, stack: Stack, openid: str) -> None:
        self.stack, self.openid = stack, openid
        self.seen = 0

    async def sends(self, xml: str) -> list[str]:
        self.stack.wx.user_wrote(self.openid)  # WeChat opens the 48-hour window
        reply = await self.stack.sim.send(xml)
        await self.stack.inbox.wait_idle(15)  # a late answer goes out as it is made
        return ([reply] if reply is not None else []) + self.news()

    async def says(self, text: str) -> list[str]:
        return await self.sends(text_xml(self.openid, text))

    async def chooses(self, data: str) -> list[str]:
        """Answers the numbered menu last shown with the number of the choice `data`."""
        async with read(self.stack.app.engine) as conn:
            menu = (await conn.execute(select(chats.c.menu).where(
                chats.c.user_id == await self.stack.user_id(self.openid)))).scalar_one()
        matches = [n for n, d in enumerate(menu or [], 1) if d.startswith(data)]
        assert matches, f"no {data!r} in the menu {menu}"
        return await self.says(f"{matches[0]}")

    async def sends_photo(self) -> list[str]:
        media_id = self.stack.wx.add_media(jpeg_bytes(), "image/jpeg")
        return await self.sends(message_xml(
            self.openid, "image", MediaId=media_id,
            PicUrl="https://mmbiz.qpic.cn/never-fetched.jpg"))

    def news(self) -> list[str]:
        """Customer-service texts (and "[video]"/"[image]") since last looked."""
        sent = self.stack.wx.sent(self.openid)
        new, self.seen = sent[self.seen:], len(sent)
        return [m["text"]["content"] if m["msgtype"] == "text" else f"[{m['msgtype']}]"
                for m in new]

    async def makes_a_video(self, prompt: str = "a slow pan over a gradient") -> list[str]:
        """The main menu's Make → photo to video → photo → prompt → model … → confirm."""
        await self.chooses("generate")
        await self.chooses("kind:image-to-video")
        answer = await self.sends_photo()
        for _ in range(8):  # what is asked next depends on the model's choices
            menu = await self.menu()
            if "confirm" in menu:
                return await self.chooses("confirm")
            for step in ("model:demo-i2v", "aspect:16:9", "duration:"):
                if any(d.startswith(step) for d in menu):
                    answer = await self.chooses(step)
                    break
            else:
                answer = await self.says(prompt)
        raise AssertionError(f"never reached the confirmation: {answer}")

    async def menu(self) -> list[str]:
        async with read(self.stack.app.engine) as conn:
            menu = (await conn.execute(select(chats.c.menu).where(
                chats.c.user_id == await self.stack.user_id(self.openid)))).scalar_one()
        return list(menu or [])


def joined(messages: list[str]) -> str:
    return "\n".join(messages)


# --- active mode (a verified service account) ----------------------------------------------


async def test_active_first_contact_to_a_delivered_video(database: TestDatabase,
                                                         tmp_path: Path) -> None:
    async with WeChatFake() as wx, wechat_service(database, tmp_path, wx) as stack:
        [menu] = wx.menus
        clicks = [b for top in menu["button"] for b in top.get("sub_button", [top])]
        assert [(b["type"], b["key"]) for b in clicks] == [
            ("click", "MAKE"), ("click", "BALANCE"), ("click", "CHECKIN"), ("click", "TOPUP")]
        assert clicks[0]["name"] == t("zh", "wx.menu.make")
        ann = Person(stack, "oAnn")
        welcome = joined(await ann.sends(event_xml("oAnn", "subscribe")))
        assert t("zh", "welcome") in welcome  # Chinese until the user picks another
        assert "1. " in welcome  # the main menu, numbered
        balance = joined(await ann.sends(event_xml("oAnn", "CLICK", "BALANCE")))
        assert t("zh", "balance.text", available="10 积分", held="0 积分") in balance
        checkin = joined(await ann.sends(event_xml("oAnn", "CLICK", "CHECKIN")))
        assert t("zh", "checkin.done", credits="2 积分", balance=12) in checkin

        await ann.makes_a_video()
        async with asyncio.timeout(WAIT):  # the dispatcher sends the video when it is ready
            while not any(m["msgtype"] == "video" for m in wx.sent("oAnn")):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        uid = await stack.user_id("oAnn")
        assert (await stack.app.wallet.balance(uid)).available == 11
        assert [c.body["touser"] for c in wx.of("custom/send")] == ["oAnn"] * len(
            wx.of("custom/send"))


async def test_active_language_admin_and_unsupported(database: TestDatabase,
                                                     tmp_path: Path) -> None:
    env = {"VIDEOFLY__WECHAT__ADMINS": '["oBoss"]'}
    async with WeChatFake() as wx, wechat_service(database, tmp_path, wx, env=env) as stack:
        boss, cat = Person(stack, "oBoss"), Person(stack, "oCat")
        await boss.says("/start")
        await cat.says("/start")
        await cat.says("/language")
        english = joined(await cat.chooses("lang:en"))
        assert t("en", "lang.set") in english
        help_text = joined(await cat.says("/help"))
        assert t("en", "help.admin") not in help_text  # admins' commands stay invisible
        refused = joined(await cat.says("/grant #1 500"))
        assert refused == t("en", "unknown")
        cat_id = await stack.user_id("oCat")
        granted = joined(await boss.says(f"/grant #{cat_id} 5"))
        assert str(cat_id) in granted
        assert t("zh", "help.admin") in joined(await boss.says("/help"))
        assert (await stack.app.wallet.balance(cat_id)).available == 15
        voice = joined(await cat.sends(message_xml("oCat", "voice", MediaId="v1",
                                                   Format="amr")))
        assert t("en", "wx.unsupported") in voice.splitlines()
        # no reply to an unsubscribe (the grant's notice may still be on its way: not a reply)
        assert await stack.sim.send(event_xml("oCat", "unsubscribe")) is None


async def test_safe_mode_conversation(database: TestDatabase, tmp_path: Path) -> None:
    async with WeChatFake() as wx, wechat_service(database, tmp_path, wx, safe=True) as stack:
        dee = Person(stack, "oDee")
        assert t("zh", "welcome") in joined(await dee.says("你好"))
        assert t("zh", "balance.text", available="10 积分", held="0 积分") in joined(
            await dee.says("/balance"))
        bad = await stack.sim.post(text_xml("oDee", "/balance"), bad_msg_signature=True)
        assert bad.status_code == 403
        forged = await stack.sim.post(text_xml("oDee", "/balance"), bad=True)
        assert forged.status_code == 403


# --- passive mode (an unverified subscription account) -------------------------------------


async def test_passive_video_rides_on_the_next_reply(database: TestDatabase,
                                                     tmp_path: Path) -> None:
    async with WeChatFake() as wx:
        wx.passive_only = True  # 48001 for customer-service messages, uploads and menus
        async with wechat_service(database, tmp_path, wx, mode="passive") as stack:
            await passive_video(stack, wx)
        assert wx.menus == []  # refused at start, and the service started anyway


async def passive_video(stack: Stack, wx: WeChatFake) -> None:
    eve = Person(stack, "oEve")
    assert t("zh", "welcome") in joined(await eve.says("/start"))
    await eve.makes_a_video()
    uid = await stack.user_id("oEve")
    async with asyncio.timeout(WAIT):  # the job ends; its messages wait for Eve
        while (await stack.app.wallet.balance(uid)).held:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        while not await held(stack):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    news = joined(await eve.says("?"))
    assert "/media/" in news  # the video, as a signed link
    assert (await stack.app.wallet.balance(uid)).available == 9
    assert wx.sent() == []  # nothing but replies, ever


@asynccontextmanager
async def mid_flow_with_a_kept_video(database: TestDatabase,
                                     tmp_path: Path) -> AsyncIterator[Person]:
    """A passive account; Eve made a video, then asked to make another: the kinds of job are
    on screen, and the finished video is kept for her next reply."""
    async with WeChatFake() as wx:
        wx.passive_only = True
        env = {"VIDEOFLY__GENERATION__DEMO_DELAY_SECONDS": "1.5"}  # the video comes mid-flow
        async with wechat_service(database, tmp_path, wx, mode="passive", env=env) as stack:
            eve = Person(stack, "oEve")
            await eve.says("/start")
            await eve.makes_a_video()
            asked = joined(await eve.says("/generate"))  # Make: what kind of job?
            assert t("zh", "gen.kind") in asked
            on_screen = await eve.menu()
            assert on_screen[0] == "kind:text-to-video"
            async with asyncio.timeout(WAIT):  # the video is made and kept for the reply
                while not await held(stack):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            assert await eve.menu() == on_screen  # still the menu the user sees
            yield eve


async def test_passive_a_kept_notice_leaves_the_menu_on_screen(database: TestDatabase,
                                                             tmp_path: Path) -> None:
    """A notice kept for the next reply is not on screen yet: a number the user types next
    answers the menu they see (here the kinds of job, asked mid-flow), not the notice's."""
    async with mid_flow_with_a_kept_video(database, tmp_path) as eve:
        answer = joined(await eve.says("1"))  # 1 on screen: text to video
        assert "/media/" in answer  # the kept video rides on this reply, first
        assert t("zh", "gen.prompt") in answer  # and 1 was "text to video"
        assert answer.index("/media/") < answer.index(t("zh", "gen.prompt"))


async def test_passive_a_kept_notice_shown_last_is_the_menu_numbers_answer(
        database: TestDatabase, tmp_path: Path) -> None:
    """A reply that carries a kept notice (it ends on the main menu) and an answer with no menu
    of its own leaves the notice's menu on screen: the number typed next answers that one, not
    the menu shown before the notice (the kinds of job)."""
    async with mid_flow_with_a_kept_video(database, tmp_path) as eve:
        voice = joined(await eve.sends(message_xml("oEve", "voice", MediaId="v1",
                                                   Format="amr")))
        assert "/media/" in voice  # the kept video and its main menu, then ...
        assert voice.rstrip().endswith(t("zh", "wx.unsupported"))  # ... no menu of its own
        assert (await eve.menu())[0].startswith("generate")  # the main menu is on screen
        answer = joined(await eve.says("1"))  # 1 on screen: Make
        assert t("zh", "gen.kind") in answer
        assert t("zh", "gen.prompt") not in answer  # not "text to video" from the kinds


async def held(stack: Stack) -> int:
    async with read(stack.app.engine) as conn:
        return int((await conn.execute(select(func.count()).select_from(wechat_held)))
                   .scalar_one())


# --- the 5-second window ------------------------------------------------------------------


class SlowProvider:
    """A provider slow to take a task (then refusing it): the confirmation outlasts the
    reply window, and the job fails, giving the credits back."""

    name = "demo"

    async def create_task(self, req: TaskRequest) -> TaskStatus:
        await asyncio.sleep(2.5)  # well past the test's 1-second window
        return TaskStatus(task_id="slow-1", state=TaskState.FAILED, error="refused")

    async def query_task(self, task_id: str) -> TaskStatus:
        return TaskStatus(task_id=task_id, state=TaskState.FAILED, error="refused")

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> Any:
        raise NotImplementedError("no callbacks: tasks fail on submission")


@pytest.mark.parametrize("mode", ["active", "passive"])
async def test_a_slow_provider_past_the_window(database: TestDatabase, tmp_path: Path,
                                               mode: str) -> None:
    env = {"VIDEOFLY__WECHAT__REPLY_WINDOW_SECONDS": "1.0"}
    async with WeChatFake() as wx, wechat_service(database, tmp_path, wx, mode=mode, env=env,
                                                  providers={"demo": SlowProvider()}) as stack:
        fay = Person(stack, "oFay")
        await fay.says("/start")
        started = len(wx.sent("oFay"))
        confirmed = joined(await fay.makes_a_video())
        uid = await stack.user_id("oFay")
        if mode == "active":  # "success" at once, then the answer as a customer-service text
            assert confirmed
            assert t("zh", "wx.pending") not in confirmed
            assert len(wx.sent("oFay")) > started
        else:
            assert confirmed == t("zh", "wx.pending")
            later = joined(await fay.says("?"))
            assert later  # the confirmation's answer, held for this reply
            assert wx.sent() == []
        async with asyncio.timeout(WAIT):
            while (await stack.app.wallet.balance(uid)).held:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        assert (await stack.app.wallet.balance(uid)).available == 10  # refused: all back


# --- retries across replicas ---------------------------------------------------------------


async def test_a_retried_message_across_two_replicas_is_acted_on_once(
        database: TestDatabase, tmp_path: Path) -> None:
    env = {"VIDEOFLY__WECHAT__ADMINS": '["oAdmin"]'}
    async with WeChatFake() as wx, \
            wechat_service(database, tmp_path / "a", wx, env=env) as one, \
            wechat_service(database, tmp_path / "b", wx, env=env) as two:
        await Person(one, "oAdmin").says("/start")
        await Person(two, "oGil").says("/start")
        gil = await one.user_id("oGil")
        grant = text_xml("oAdmin", f"/grant #{gil} 5")
        replies = await asyncio.gather(one.sim.send(grant), two.sim.send(grant),
                                       one.sim.send(grant))
        assert len(set(replies)) == 1
        assert replies[0] is not None
        assert str(gil) in replies[0]
        assert (await one.app.wallet.balance(gil)).available == 15  # granted once
        async with read(one.app.engine) as conn:
            rows = (await conn.execute(select(func.count()).select_from(wechat_inbound)))
            assert rows.scalar_one() == 3  # two /starts and one /grant


# --- start-up ------------------------------------------------------------------------------


async def test_start_up_names_a_missing_variable_or_a_bad_aes_key(
        database: TestDatabase, tmp_path: Path) -> None:
    async with WeChatFake() as wx:
        config = demo_config(database, tmp_path / "data", "http://127.0.0.1:9",
                             VIDEOFLY__WECHAT__API_BASE_URL=wx.url)
        full = dict(wechat_secrets(wx))
        for name in ("WECHAT_APP_ID", "WECHAT_APP_SECRET", "WECHAT_TOKEN"):
            partial = Secrets({k: v for k, v in full.items() if k != name})
            with pytest.raises(StartupError, match=name):
                async with build_app(config, partial):
                    pass
        bad_key = "x" * 10
        with pytest.raises(StartupError, match="WECHAT_AES_KEY") as caught:
            async with build_app(config, Secrets({**full, "WECHAT_AES_KEY": bad_key})):
                pass
        assert bad_key not in str(caught.value)
        only_key = Secrets({"WECHAT_AES_KEY": AES_KEY, "MEDIA_LINK_SECRET": "m" * 40})
        with pytest.raises(StartupError, match="WECHAT_APP_ID"):
            async with build_app(config, only_key):
                pass
        async with build_app(config, Secrets({"MEDIA_LINK_SECRET": "m" * 40})) as app:
            assert app.wechat_webhook is None  # no WeChat variables: no /wechat
