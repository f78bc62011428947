"""The channel contract end to end: a fake channel that declares no edit and no buttons (WeChat's
declaration) goes through every conversation with the shipped demo config, answering menus by
number, through the shared answer path (`bot.answer.Answerer`); the outbox notifications (the
video delivered) come through the dispatcher to the same channel. The menu lives in the
database: a second "replica" (another Answerer and Handlers on the same database) reads it.
On SQLite and PostgreSQL; the wallet audit is clean at the end (the harness checks)."""

from __future__ import annotations

import re
from pathlib import Path

from bot.answer import Answerer
from bot.dispatcher import Dispatcher
from handlers import Inbound, Outbound, Text
from handlers.messages import t
from handlers.types import CHANNELS, Media
from tests.factories import BytesPhoto, TestDatabase
from tests.integration._chat import PHOTO, Harness, chatting

CAPS = CHANNELS["wechat"]
LINE = re.compile(r"^(\d+)\. (.+)$", re.MULTILINE)


class ButtonlessChannel:
    """Records what it is sent; refuses what a channel without buttons could not show."""

    name = "wechat"
    capabilities = CAPS

    def __init__(self) -> None:
        self.sent: list[tuple[str, Outbound]] = []

    async def send(self, address: str, message: Outbound) -> str | None:
        if isinstance(message, Text):
            assert not message.buttons, "buttons reached a channel without buttons"
            assert CAPS.max_text_bytes is not None
            assert len(message.text.encode()) <= CAPS.max_text_bytes
        self.sent.append((address, message))
        return str(len(self.sent))

    async def edit(self, address: str, message_id: str, message: Text) -> None:
        raise AssertionError("a channel without edit was asked to edit")


class Person:
    def __init__(self, harness: Harness, answers: Answerer, channel: ButtonlessChannel,
                 address: str) -> None:
        self.harness, self.answers, self.channel, self.address = \
            harness, answers, channel, address
        self.seen = 0

    async def say(self, text: str = "", **kw: object) -> str:
        """Sends a line; returns the texts it got back, joined."""
        await self.answers.answer(Inbound(channel=self.channel.name, address=self.address,
                                          language="en", text=text, **kw))  # type: ignore[arg-type]
        return self.news()

    def news(self) -> str:
        new = self.channel.sent[self.seen:]
        self.seen = len(self.channel.sent)
        return "\n\n".join(m.text for _, m in new if isinstance(m, Text))

    async def choose(self, shown: str, label: str) -> str:
        """Types the number of the last menu line in `shown` whose label contains `label`."""
        numbers = [n for n, text in LINE.findall(shown) if label in text]
        assert numbers, f"no {label!r} in:\n{shown}"
        return await self.say(numbers[-1])


async def _deliver(harness: Harness, dispatcher: Dispatcher, job_id: int) -> None:
    job = await harness.finished(job_id)
    assert job.state == "completed"
    for _ in range(20):  # bounded: the completion is queued with the settle
        if not await dispatcher.run_once():
            break


def _job_of(channel: ButtonlessChannel) -> int:
    ids = [m.track_job for _, m in channel.sent if isinstance(m, Text) and m.track_job]
    assert ids
    return ids[-1]


def _media(channel: ButtonlessChannel) -> list[Media]:
    return [m for _, m in channel.sent if isinstance(m, Media)]


async def test_every_conversation_through_a_channel_without_edit_or_buttons(
        database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        channel = ButtonlessChannel()
        answers = Answerer(engine=h.app.engine, handlers=h.handlers, channel=channel,
                           default_language="en")
        dispatcher = Dispatcher(engine=h.app.engine, handlers=h.handlers,
                                channels={channel.name: channel}, clock=h.clock)
        me = Person(h, answers, channel, "openid-1")

        def en(key: str, **params: object) -> str:
            return t("en", key, **params)

        menu = await me.say("hello")
        assert en("welcome") in menu
        assert "1. " + en("btn.generate") in menu

        # text to video, every step by number
        kinds = await me.choose(menu, en("btn.generate"))
        prompt = await me.choose(kinds, en("kind.text-to-video"))
        assert en("gen.prompt") in prompt
        models = await me.say("a paper boat on a pond")
        aspects = await me.choose(models, "Demo")
        confirm = await me.choose(aspects, "16:9")
        await me.choose(confirm, en("btn.confirm"))
        await _deliver(h, dispatcher, _job_of(channel))
        assert len(_media(channel)) == 1
        me.news()

        # image to video: a photo instead of a number
        kinds = await me.choose(await me.say("/start"), en("btn.generate"))
        assert en("gen.photo") in await me.choose(kinds, en("kind.image-to-video"))
        assert en("gen.prompt") in await me.say(photos=(BytesPhoto(PHOTO),))
        models = await me.say("slow pan")
        confirm = await me.choose(await me.choose(models, "Demo"), "9:16")
        await me.choose(confirm, en("btn.confirm"))
        await _deliver(h, dispatcher, _job_of(channel))
        assert len(_media(channel)) == 2
        me.news()

        # balance, history, check-in, redeem, top-up, videos, language, cancel
        menu = await me.say("/start")
        balance = en("balance.text", available="8 credits", held="0 credits")
        assert balance in await me.choose(menu, en("btn.balance"))
        assert en("history.title") in await me.say("/history")
        assert en("checkin.done", credits="2 credits", balance=10) in \
            await me.choose(menu, en("btn.checkin"))
        code = await h.app.wallet.create_code(5)
        assert en("redeem.done", credits="5 credits", balance=15) in \
            await me.say(f"/redeem {code.code}")
        assert en("err.code_not_found") in await me.say("/redeem NOPE")
        assert en("topup.none") in await me.choose(menu, en("btn.topup"))
        videos = await me.choose(menu, en("btn.videos"))
        await me.choose(videos, en("btn.resend", job_id=_job_of(channel)))
        assert len(_media(channel)) == 3
        languages = await me.say("/language")
        assert t("zh", "lang.set") in await me.choose(languages, en("lang.zh"))
        languages = await me.say("/language")
        menu = await me.choose(languages, t("zh", "lang.en"))
        assert en("lang.set") in menu
        kinds = await me.choose(menu, en("btn.generate"))
        assert en("cancelled") in await me.choose(kinds, en("btn.cancel"))

        # old button data still decodes; unknown data: "expired" and the current menu
        balance = en("balance.text", available="15 credits", held="0 credits")
        assert balance in await me.say(choice="c:balance")
        expired = await me.say(choice="zz:9")
        assert en("menu.expired") in expired
        assert en("menu.prompt") in expired

        # the menu is in the database: another replica reads "1" the same way
        replica = Answerer(engine=h.app.engine, handlers=h.with_deps(), channel=channel,
                           default_language="en")
        other = Person(h, replica, channel, "openid-1")
        other.seen = me.seen
        assert en("gen.kind") in await other.say("1")  # 1. Make a video
        # a number that is no choice is text; a full-width one is a choice
        assert en("gen.kind") in await me.say("9")
        assert en("cancelled") in await me.say("４")  # 4th line: Cancel after three kinds
        assert not [m for _, m in channel.sent if isinstance(m, Text) and m.buttons]
