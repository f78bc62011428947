"""The Telegram adapter in front of a scripted stand-in for `Handlers`: the real
python-telegram-bot Application, polling the fake Bot API server over HTTP. What goes in (the
Inbound each kind of update becomes) and what goes out (each Outbound as Bot API calls)."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from bot.channel import Undeliverable
from bot.telegram import TelegramStartupError, open_telegram
from handlers.types import AttachmentTooLarge, Button, Inbound, Outbound, StarsPayment, Text
from storage import LocalStorage
from tests.fakes.telegram import TelegramFake

from .conftest import ScriptedHandlers, jpeg, running_bot, telegram_config


async def until(predicate, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_a_message_becomes_an_inbound_and_the_answer_a_keyboard(
        tg: TelegramFake, storage: LocalStorage) -> None:
    def reply(inbound: Inbound) -> list[Outbound]:
        return [Text(text="Pick one", buttons=(
            (Button(label="Video", data="k:image-to-video"),),
            (Button(label="Pay", url="https://pay.example/checkout/1"),)))]

    script = ScriptedHandlers(reply)
    async with running_bot(tg, script, storage):
        tg.user(1001, language_code="zh-hans", first_name="Ann").says("/start")
        [sent] = await tg.wait_for("sendMessage", chat_id=1001)
    [inbound] = script.inbounds
    assert (inbound.channel, inbound.address, inbound.language) == ("telegram", "1001",
                                                                    "zh-hans")
    assert (inbound.text, inbound.command, inbound.display_name) == ("/start", ("start", []),
                                                                     "Ann")
    assert sent.params["text"] == "Pick one"
    assert sent.buttons() == [("Video", "k:image-to-video"),
                              ("Pay", "https://pay.example/checkout/1")]


async def test_the_command_menu_is_set_per_language(tg: TelegramFake,
                                                    storage: LocalStorage) -> None:
    async with running_bot(tg, ScriptedHandlers(), storage):
        pass
    assert tg.commands[""] == [{"command": "start", "description": "Start"},
                               {"command": "balance", "description": "Your credits"}]
    assert tg.commands["en"] == tg.commands[""]
    assert tg.commands["zh"][1] == {"command": "balance", "description": "余额"}


async def test_a_pressed_button_is_answered_and_handed_on_as_a_choice(
        tg: TelegramFake, storage: LocalStorage) -> None:
    script = ScriptedHandlers()
    async with running_bot(tg, script, storage):
        alice = tg.user(7)
        alice.says("hi")
        await tg.wait_for("sendMessage", chat_id=7)
        alice.presses("m:demo-i2v")
        await tg.wait_for("sendMessage", chat_id=7, count=2)
    assert [i.choice for i in script.inbounds] == [None, "m:demo-i2v"]
    assert len(tg.of("answerCallbackQuery")) == 1
    assert tg.texts(7) == ["echo hi", "echo m:demo-i2v"]


async def test_photos_are_read_through_get_file_within_the_limit(
        tg: TelegramFake, storage: LocalStorage) -> None:
    photo = jpeg()
    script = ScriptedHandlers()
    async with running_bot(tg, script, storage):
        user = tg.user(8)
        user.sends_photo(photo, caption="make it move")
        user.sends_photo(photo, as_document=True)
        user.sends_photo(b"x" * 100, declared_size=21 * 1024 * 1024)
        await tg.wait_for("sendMessage", chat_id=8, count=3)
        first, document, huge = script.inbounds
        assert (first.text, len(first.photos), first.album) == ("make it move", 1, None)
        assert await first.photos[0].read(20 * 1024 * 1024) == photo  # the largest size
        assert await document.photos[0].read(20 * 1024 * 1024) == photo
        gets = len(tg.of("getFile"))
        with pytest.raises(AttachmentTooLarge):
            await huge.photos[0].read(20 * 1024 * 1024)
        with pytest.raises(AttachmentTooLarge):
            await first.photos[0].read(100)  # the caller's own limit
        assert len(tg.of("getFile")) == gets  # refused on the size Telegram declared


async def test_an_album_is_one_inbound_and_comes_before_the_next_message(
        tg: TelegramFake, storage: LocalStorage) -> None:
    script = ScriptedHandlers()
    async with running_bot(tg, script, storage):
        user = tg.user(9)
        user.sends_album([jpeg(), jpeg(200, 100), jpeg(100, 200)], caption="try these on")
        await tg.wait_for("sendMessage", chat_id=9)
        user.sends_album([jpeg(), jpeg()])
        user.says("the prompt")  # arrives before the album's wait is over
        await tg.wait_for("sendMessage", chat_id=9, count=3)
    first, second, text = script.inbounds
    assert (len(first.photos), first.text) == (3, "try these on")
    assert first.album is not None
    assert (len(second.photos), second.album != first.album) == (2, True)
    assert text.text == "the prompt"


async def test_a_user_is_served_in_order_and_users_side_by_side(
        tg: TelegramFake, storage: LocalStorage) -> None:
    gate = asyncio.Event()

    async def slow(inbound: Inbound) -> list[Outbound]:
        if inbound.text == "first":
            await gate.wait()  # holds user 10 until user 11 has been answered
        return [Text(text=f"done {inbound.text}")]

    script = ScriptedHandlers(slow)
    async with running_bot(tg, script, storage):
        tg.user(10).says("first")
        tg.user(10).says("second")
        tg.user(11).says("other")
        await tg.wait_for("sendMessage", chat_id=11)
        assert tg.texts(10) == []  # 10's second update waits for its first
        gate.set()
        await tg.wait_for("sendMessage", chat_id=10, count=2)
    assert tg.texts(10) == ["done first", "done second"]


async def test_stars_pre_checkout_and_payment(tg: TelegramFake, storage: LocalStorage) -> None:
    script = ScriptedHandlers()
    seen: list[tuple[str, int, str]] = []

    async def check(payload: str, *, total_amount: int, currency: str) -> bool:
        seen.append((payload, total_amount, currency))
        return payload == "pkg:small"

    async with running_bot(tg, script, storage, pre_checkout=check):
        buyer = tg.user(12, language_code="zh")
        buyer.checks_out("pkg:small", 50)
        buyer.checks_out("pkg:gone", 50)
        [ok, refused] = await tg.wait_for("answerPreCheckoutQuery", count=2)
        buyer.pays("pkg:small", 50, "charge-1")
        await tg.wait_for("sendMessage", chat_id=12)
    assert seen == [("pkg:small", 50, "XTR"), ("pkg:gone", 50, "XTR")]
    assert ok.params["ok"] == "true"
    assert refused.params["ok"] == "false"
    assert "/topup" in refused.params["error_message"]  # the Chinese catalogue text
    [paid] = script.inbounds
    assert paid.payment == StarsPayment(charge_id="charge-1", payload="pkg:small",
                                        currency="XTR", total_amount=50)


async def test_without_a_payments_hook_every_checkout_is_refused(
        tg: TelegramFake, storage: LocalStorage) -> None:
    async with running_bot(tg, ScriptedHandlers(), storage):
        tg.user(13).checks_out("pkg:small", 50)
        [answer] = await tg.wait_for("answerPreCheckoutQuery")
    assert answer.params["ok"] == "false"


async def test_a_tracked_status_message_is_remembered(tg: TelegramFake,
                                                      storage: LocalStorage) -> None:
    script = ScriptedHandlers(lambda i: [Text(text="Queued"), Text(text="⏳", track_job=42)])
    async with running_bot(tg, script, storage):
        tg.user(14).says("go")
        await until(lambda: bool(script.statuses))
    [status] = tg.of("sendMessage", 14)[1:]
    assert status.params["text"] == "⏳"
    assert script.statuses == [(42, "telegram", "14", str(tg.last_message_id(14)))]


async def test_a_failing_handler_gets_the_incident_text(tg: TelegramFake,
                                                        storage: LocalStorage,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    def broken(inbound: Inbound) -> list[Outbound]:
        raise RuntimeError("a bug")

    async with running_bot(tg, ScriptedHandlers(broken), storage):
        tg.user(15).says("hello")
        [sent] = await tg.wait_for("sendMessage", chat_id=15)
    found = re.search(r"incident ([0-9a-f]+)", sent.params["text"])
    assert found is not None
    incident = found.group(1)
    assert any(incident in r.getMessage() and r.exc_info for r in caplog.records)
    assert "a bug" not in sent.params["text"]


async def test_a_429_is_waited_out_and_the_message_still_arrives(
        tg: TelegramFake, storage: LocalStorage) -> None:
    tg.script_next("sendMessage", tg.retry_after(1))
    async with running_bot(tg, ScriptedHandlers(), storage):
        tg.user(16).says("hello")
        refused, delivered = await tg.wait_for("sendMessage", chat_id=16, count=2)
    assert delivered.params["text"] == "echo hello"
    assert delivered.at - refused.at >= 1.0  # retry_after honoured, not hammered
    assert tg.texts(16) == ["echo hello", "echo hello"]  # the refused attempt, then the real


async def test_a_blocked_user_gets_nothing_and_the_bot_goes_on(
        tg: TelegramFake, storage: LocalStorage) -> None:
    script = ScriptedHandlers(lambda i: [Text(text="one"), Text(text="two")])
    tg.block(17)
    async with running_bot(tg, script, storage):
        tg.user(17).says("hi")
        tg.user(18).says("hi")
        await tg.wait_for("sendMessage", chat_id=18, count=2)
    assert len(tg.of("sendMessage", 17)) == 1  # refused once; "two" never attempted


async def test_a_refused_token_stops_the_start_and_no_log_shows_a_token(
        tg: TelegramFake, storage: LocalStorage, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_bot(tg, ScriptedHandlers(), storage):
        tg.user(19).says("hi")
        await tg.wait_for("sendMessage", chat_id=19)
    wrong = TelegramFake(token="999:WRONG-token")
    wrong.port = tg.port  # the same server, which knows another token
    with pytest.raises(TelegramStartupError, match="refused TELEGRAM_BOT_TOKEN") as refused:
        async with open_telegram(telegram_config(tg), token=wrong.token,
                                 handlers=ScriptedHandlers(), storage=storage):
            pass
    assert wrong.token not in str(refused.value)
    assert caplog.records
    for record in caplog.records:
        assert tg.token not in record.getMessage()
        assert wrong.token not in record.getMessage()


async def test_one_chat_gets_a_short_burst_then_about_one_message_a_second(
        tg: TelegramFake, storage: LocalStorage) -> None:
    async with running_bot(tg, ScriptedHandlers(), storage) as bot:  # the production limiter
        async def chat_20() -> None:
            for n in range(4):
                await bot.channel.send("20", Text(text=f"part {n}"))

        async def chat_21() -> None:
            await tg.wait_for("sendMessage", chat_id=20, count=3)
            await bot.channel.send("21", Text(text="another chat"))

        await asyncio.gather(chat_20(), chat_21())
    first, *_, fourth = tg.of("sendMessage", 20)
    [other] = tg.of("sendMessage", 21)
    assert fourth.at - first.at >= 0.8  # the burst of three was used up
    assert other.at < fourth.at  # chat 21 did not wait for chat 20's bucket


async def test_group_chats_and_bots_are_ignored(tg: TelegramFake, storage: LocalStorage) -> None:
    script = ScriptedHandlers()
    person = {"id": 22, "is_bot": False, "first_name": "Gus"}
    async with running_bot(tg, script, storage):
        tg.push({"message": {"message_id": 1, "date": 0, "from": person, "text": "/start",
                             "chat": {"id": -100, "type": "group", "title": "G"}}})
        tg.push({"message": {"message_id": 2, "date": 0, "chat": {"id": 23, "type": "private"},
                             "from": {"id": 23, "is_bot": True, "first_name": "B"},
                             "text": "/start"}})
        tg.user(22).says("in private")
        await tg.wait_for("sendMessage", chat_id=22)
    assert [i.text for i in script.inbounds] == ["in private"]
    assert [c.chat_id for c in tg.of("sendMessage")] == [22]


async def test_stars_are_refunded_through_the_bot_api(tg: TelegramFake,
                                                      storage: LocalStorage) -> None:
    async with running_bot(tg, ScriptedHandlers(), storage) as bot:
        await bot.refund_stars("12", "charge-1")
        with pytest.raises(Undeliverable):
            await bot.refund_stars(12, "")
    first, _ = tg.of("refundStarPayment")
    assert (first.params["user_id"], first.params["telegram_payment_charge_id"]) == (
        "12", "charge-1")
