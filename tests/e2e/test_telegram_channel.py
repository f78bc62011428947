"""`TelegramChannel.send` / `edit` through the real python-telegram-bot against the fake Bot API:
how each Outbound is rendered, the size fallbacks, and the error mapping the dispatcher relies
on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from bot.channel import Blocked, ChannelError, RetryLater, Undeliverable
from bot.telegram import Limits
from handlers.types import Button, Invoice, Media, Picture, Text
from storage import LocalStorage, new_key
from tests.fakes import Reply
from tests.fakes.telegram import TelegramFake

from .conftest import FAST, ScriptedHandlers, jpeg, running_bot, telegram_config

VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"v" * 2000  # what the fake accepts as a clip


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def put(storage: LocalStorage, data: bytes, suffix: str) -> str:
    key = new_key("videos" if suffix == ".mp4" else "images", suffix)
    await storage.put(key, chunks(data), content_type="video/mp4")
    return key


async def test_a_video_within_the_limit_goes_with_its_thumbnail(
        tg: TelegramFake, storage: LocalStorage) -> None:
    video, thumb = await put(storage, VIDEO, ".mp4"), await put(storage, jpeg(), ".jpg")
    async with running_bot(tg, ScriptedHandlers(), storage,
                           options=replace(FAST, limits=Limits(video=4000))) as bot:
        mid = await bot.channel.send("21", Media(kind="video", key=video, caption="Done!",
                                                 thumbnail_key=thumb))
    [call] = tg.of("sendVideo", 21)
    assert call.files == {"video": len(VIDEO), "thumbnail": len(jpeg())}
    assert (call.params["caption"], call.params["supports_streaming"]) == ("Done!", "true")
    assert mid == str(tg.last_message_id(21))


async def test_a_video_over_the_limit_becomes_its_thumbnail_with_a_link(
        tg: TelegramFake, storage: LocalStorage) -> None:
    video, thumb = await put(storage, VIDEO, ".mp4"), await put(storage, jpeg(), ".jpg")
    async with running_bot(tg, ScriptedHandlers(), storage,
                           options=replace(FAST, limits=Limits(video=1000))) as bot:
        await bot.channel.send("22", Media(kind="video", key=video, caption="Done!",
                                           thumbnail_key=thumb, link_text="Download:"))
        await bot.channel.send("22", Media(kind="video", key=video, caption="No thumb"))
    assert tg.of("sendVideo") == []
    [photo] = tg.of("sendPhoto", 22)
    assert photo.files == {"photo": len(jpeg())}
    head, link = photo.params["caption"].rsplit("\n", 1)
    assert head == "Done!\n\nDownload:"
    assert link.startswith("http://127.0.0.1:9/media/videos/")
    assert storage.verify_link(video, *_exp_sig(link))
    [text] = tg.of("sendMessage", 22)
    assert text.params["text"].startswith("No thumb\n\nhttp://127.0.0.1:9/media/")


def _exp_sig(link: str) -> tuple[str, str]:
    query = dict(part.split("=") for part in link.split("?", 1)[1].split("&"))
    return query["exp"], query["sig"]


async def test_photos_pictures_and_invoices(tg: TelegramFake, storage: LocalStorage) -> None:
    small, big = await put(storage, jpeg(), ".jpg"), await put(storage, jpeg(2000, 1500), ".jpg")
    chart = jpeg(50, 50)
    async with running_bot(tg, ScriptedHandlers(), storage,
                           options=replace(FAST, limits=Limits(photo=len(jpeg()) + 1))) as bot:
        await bot.channel.send("23", Media(kind="photo", key=small, caption="Try-on"))
        await bot.channel.send("23", Media(kind="photo", key=big, caption="Big",
                                           link_text="Open:"))
        await bot.channel.send("23", Picture(data=chart, caption="Last 30 days"))
        await bot.channel.send("23", Invoice(title="100 credits", description="Top up",
                                             payload="stars:small:7", stars=50))
    first, picture = tg.of("sendPhoto", 23)
    assert (first.files, first.params["caption"]) == ({"photo": len(jpeg())}, "Try-on")
    assert (picture.files, picture.params["caption"]) == ({"photo": len(chart)},
                                                          "Last 30 days")
    [link] = tg.of("sendMessage", 23)
    assert link.params["text"].startswith("Big\n\nOpen:\nhttp://127.0.0.1:9/media/images/")
    [invoice] = tg.of("sendInvoice", 23)
    assert (invoice.params["currency"], invoice.params["provider_token"]) == ("XTR", "")
    assert invoice.params["prices"] == [{"label": "100 credits", "amount": 50}]
    assert invoice.params["payload"] == "stars:small:7"


async def test_long_texts_are_split_with_the_keyboard_on_the_last_part(
        tg: TelegramFake, storage: LocalStorage) -> None:
    lines = "\n".join(f"line {i:05d} " + "x" * 40 for i in range(200))  # ~10,000 characters
    async with running_bot(tg, ScriptedHandlers(), storage) as bot:
        await bot.channel.send("24", Text(text=lines, buttons=((Button(label="Older",
                                                                        data="h:2"),),)))
    parts = tg.of("sendMessage", 24)
    assert len(parts) == 3
    assert all(len(p.params["text"]) <= 4096 for p in parts)
    assert "\n".join(p.params["text"] for p in parts) == lines
    assert [bool(p.buttons()) for p in parts] == [False, False, True]


async def test_edit_ignores_not_modified_and_refuses_unknown_messages(
        tg: TelegramFake, storage: LocalStorage) -> None:
    async with running_bot(tg, ScriptedHandlers(), storage) as bot:
        mid = await bot.channel.send("25", Text(text="Queued"))
        assert mid is not None
        await bot.channel.edit("25", mid, Text(text="Generating 40%"))
        await bot.channel.edit("25", mid, Text(text="Generating 40%"))  # not modified: fine
        with pytest.raises(Undeliverable, match="not found"):
            await bot.channel.edit("25", "999", Text(text="x"))
    assert tg.messages[(25, int(mid))]["text"] == "Generating 40%"


async def test_errors_map_onto_the_channel_tree(tg: TelegramFake,
                                                storage: LocalStorage) -> None:
    async with running_bot(tg, ScriptedHandlers(), storage) as bot:
        channel = bot.channel
        tg.block(26)
        with pytest.raises(Blocked):
            await channel.send("26", Text(text="hi"))
        tg.script_next("sendMessage", tg.retry_after(30))
        before = len(tg.of("sendMessage"))
        with pytest.raises(RetryLater) as later:
            await channel.send("27", Text(text="hi"))
        assert later.value.seconds == 30
        assert len(tg.of("sendMessage")) == before + 1  # a long wait is not sat out in place
        tg.script_next("sendMessage", tg.error(400, f"Bad Request: chat {tg.token} not found"))
        with pytest.raises(Undeliverable) as bad:
            await channel.send("27", Text(text="hi"))
        assert tg.token not in str(bad.value)
        tg.script_next("sendMessage", tg.error(500, "Internal Server Error"))
        with pytest.raises(ChannelError) as fault:
            await channel.send("27", Text(text="hi"))
        assert type(fault.value) is ChannelError
        tg.script_next("sendMessage", Reply(drop=True))
        with pytest.raises(ChannelError):
            await channel.send("27", Text(text="hi"))
        with pytest.raises(Undeliverable):
            await channel.send("not-a-chat", Text(text="hi"))
        with pytest.raises(Undeliverable, match="missing"):
            await channel.send("27", Media(kind="video", key="videos/2026/01/gone.mp4",
                                           caption="x"))
        assert await channel.send("27", Text(text="still fine"))


async def test_a_self_hosted_server_gets_the_local_file_path(
        tg: TelegramFake, storage: LocalStorage) -> None:
    video = await put(storage, VIDEO * 3, ".mp4")  # over the 50 MB-style limit of 4000 bytes
    config = telegram_config(tg, local_mode=True)
    async with running_bot(tg, ScriptedHandlers(), storage, config=config,
                           options=replace(FAST, limits=Limits(video=10_000))) as bot:
        await bot.channel.send("28", Media(kind="video", key=video, caption="Big one"))
    [call] = tg.of("sendVideo", 28)
    assert call.params["video"] == storage.file_path(video).as_uri()
    assert call.files == {}  # nothing uploaded: the server reads the file itself
