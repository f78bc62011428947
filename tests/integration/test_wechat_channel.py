"""`WeChatChannel` against the fake WeChat server, with real storage and a real database: texts,
the customer-service budget, 45015 and 45047 holds, token refresh, video transcode and link
fallback, try-on images, passive mode."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.channel import Undeliverable
from bot.wechat._api import PassiveOnly, QuotaExhausted, WeChatApi, WindowClosed
from bot.wechat._channel import WeChatChannel
from bot.wechat._peers import peer, user_wrote
from bot.wechat._token import TokenStore
from core.config import WechatConfig
from handlers.types import Invoice, Media, Picture, Text
from storage import LocalStorage
from tests.factories import FakeClock
from tests.fakes.media import noise_clip
from tests.fakes.wechat import WeChatFake

MB = 1024 * 1024


@dataclass
class Stack:
    wx: WeChatFake
    channel: WeChatChannel
    storage: LocalStorage
    engine: AsyncEngine
    clock: FakeClock

    def with_config(self, **changes: object) -> WeChatChannel:
        config = replace(self.channel.config, **changes)  # type: ignore[arg-type]
        return WeChatChannel(api=self.channel.api, engine=self.engine, storage=self.storage,
                             config=config, link_ttl=3600, clock=self.clock,
                             passive_sink=self.channel.passive_sink)

    async def put(self, key: str, data: bytes) -> str:
        async def chunks() -> AsyncIterator[bytes]:
            yield data

        await self.storage.put(key, chunks(), content_type="application/octet-stream")
        return key


@pytest.fixture
async def stack(engine: AsyncEngine, http: httpx.AsyncClient, clock: FakeClock,
                tmp_path: Path) -> AsyncIterator[Stack]:
    async with WeChatFake(app_id="wx-app", secret="s") as wx:
        tokens = TokenStore.stable(engine, http, base_url=wx.url, app_id="wx-app", secret="s")
        api = WeChatApi(http, wx.url, tokens)
        storage = LocalStorage(tmp_path / "media", public_base="https://bot.example",
                               link_secret="link-secret-for-tests-only-0123456789")
        channel = WeChatChannel(api=api, engine=engine, storage=storage, config=WechatConfig(),
                                link_ttl=3600, clock=clock)
        yield Stack(wx, channel, storage, engine, clock)


def png(size: tuple[int, int]) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.effect_noise(size, 120).convert("RGB").save(out, "PNG")
    return out.getvalue()


async def test_declares_what_wechat_can_do(stack: Stack) -> None:
    caps = stack.channel.capabilities
    assert (caps.edit, caps.buttons, caps.links, caps.invoices, caps.progress) == (
        False, False, True, False, False)
    assert (caps.max_text_bytes, caps.photo_upload, caps.video_upload) == (
        2048, 2 * MB, 10 * MB)


async def test_a_long_text_goes_in_parts_within_2048_bytes(stack: Stack) -> None:
    await user_wrote(stack.engine, "oA", now=stack.clock())
    text = "\n".join(f"第{i}行：视频生成完成，请查收。" for i in range(200))
    assert await stack.channel.send("oA", Text(text=text)) is None
    parts = stack.wx.texts("oA")
    assert len(parts) > 1
    assert all(len(p.encode()) <= 2048 for p in parts)
    assert "\n".join(parts) == text


async def test_45015_holds_until_the_user_writes_again(stack: Stack) -> None:
    stack.wx.require_window = True  # oB has not written within 48 h, as WeChat sees it
    with pytest.raises(WindowClosed):
        await stack.channel.send("oB", Text(text="your video is ready"))
    state = await peer(stack.engine, "oB")
    assert state is not None
    assert state.held == "window"
    sends = len(stack.wx.of("custom/send"))
    with pytest.raises(WindowClosed):  # held: WeChat is not asked again
        await stack.channel.send("oB", Text(text="and your credits"))
    assert len(stack.wx.of("custom/send")) == sends
    stack.wx.user_wrote("oB")
    await user_wrote(stack.engine, "oB", now=stack.clock())
    await stack.channel.send("oB", Text(text="your video is ready"))
    assert stack.wx.texts("oB") == ["your video is ready"]


async def test_the_budget_keeps_the_last_slots_for_results(stack: Stack) -> None:
    stack.wx.quota = 5
    stack.wx.user_wrote("oC")
    await user_wrote(stack.engine, "oC", now=stack.clock())
    for i in range(4):  # progress: three go, the fourth is dropped
        await stack.channel.edit("oC", "", Text(text=f"progress {i}"))
    for i in range(2):
        await stack.channel.send("oC", Text(text=f"result {i}"))
    assert stack.wx.texts("oC") == ["progress 0", "progress 1", "progress 2", "result 0",
                                    "result 1"]
    with pytest.raises(QuotaExhausted):  # out of slots: held, WeChat not asked
        await stack.channel.send("oC", Text(text="credits arrived"))
    assert [c.errcode for c in stack.wx.of("custom/send")] == [0] * 5
    stack.wx.user_wrote("oC")
    await user_wrote(stack.engine, "oC", now=stack.clock())
    await stack.channel.send("oC", Text(text="credits arrived"))
    assert stack.wx.texts("oC")[-1] == "credits arrived"


async def test_45047_from_wechat_holds_the_user(stack: Stack) -> None:
    stack.wx.quota = 1  # WeChat counts differently from us (e.g. a menu click: 3 a minute)
    await stack.channel.send("oD", Text(text="one"))
    with pytest.raises(QuotaExhausted):
        await stack.channel.send("oD", Text(text="two"))
    state = await peer(stack.engine, "oD")
    assert state is not None
    assert state.held == "quota"
    assert stack.wx.texts("oD") == ["one"]


async def test_an_invalid_token_is_refreshed_and_the_message_sent(stack: Stack) -> None:
    await stack.channel.send("oE", Text(text="first"))
    stack.wx.invalidate_token()
    await stack.channel.send("oE", Text(text="second"))
    assert stack.wx.texts("oE") == ["first", "second"]
    assert stack.wx.token_fetches == [False, False]
    state = await peer(stack.engine, "oE")
    assert state is not None
    assert state.cs_sent == 2  # the refused try took no slot


async def test_a_25_mb_video_is_transcoded_uploaded_and_sent(stack: Stack) -> None:
    clip = noise_clip(seconds=10, width=352, height=264)
    assert len(clip) > 25 * MB
    key = await stack.put("results/job-1.mp4", clip)
    await stack.channel.send("oF", Media(kind="video", key=key,
                                         caption="Your video\nMade with Kling"))
    [sent] = stack.wx.sent("oF")
    assert sent["msgtype"] == "video"
    assert sent["video"]["title"] == "Your video"
    assert sent["video"]["description"] == "Made with Kling"
    uploaded = stack.wx.media[sent["video"]["media_id"]]
    assert uploaded.kind == "video"
    assert len(uploaded.data) <= 10 * MB
    assert uploaded.filename == "job-1.mp4"


async def test_a_video_that_cannot_fit_goes_as_thumbnail_and_link(stack: Stack) -> None:
    clip = noise_clip(seconds=4, width=176, height=144, audio=False)
    key = await stack.put("results/job-2.mp4", clip)
    thumb = await stack.put("results/job-2.jpg", png((640, 360)))
    channel = stack.with_config(video_limit_bytes=20 * 1024)  # 40 kbit/s: nothing watchable
    await channel.send("oG", Media(kind="video", key=key, caption="Your video",
                                   thumbnail_key=thumb, link_text="Download (24 h):"))
    image, text = stack.wx.sent("oG")
    assert image["msgtype"] == "image"
    assert stack.wx.media[image["image"]["media_id"]].data[:2] == b"\xff\xd8"  # a JPEG
    body = text["text"]["content"]
    assert body.startswith("Your video\n\nDownload (24 h):\nhttps://bot.example/media/")
    assert stack.wx.of("media/upload")[0].query["type"] == "image"  # no video uploaded


async def test_a_large_try_on_image_is_re_encoded_under_2_mb(stack: Stack) -> None:
    big = png((1600, 1600))
    assert len(big) > 2 * MB
    key = await stack.put("results/tryon-1.png", big)
    await stack.channel.send("oH", Media(kind="photo", key=key, caption="Your try-on"))
    image, caption = stack.wx.sent("oH")
    uploaded = stack.wx.media[image["image"]["media_id"]]
    assert len(uploaded.data) <= 2 * MB
    assert uploaded.data[:2] == b"\xff\xd8"
    assert caption["text"]["content"] == "Your try-on"


async def test_pictures_go_as_images_and_invoices_never(stack: Stack) -> None:
    await stack.channel.send("oI", Picture(data=png((300, 200)), caption=""))
    assert [m["msgtype"] for m in stack.wx.sent("oI")] == ["image"]
    with pytest.raises(Undeliverable):
        await stack.channel.send("oI", Invoice(title="t", description="d", payload="p",
                                               stars=5))


async def test_passive_mode_sends_nothing_and_keeps_text_for_the_reply(stack: Stack) -> None:
    kept: list[tuple[str, Text]] = []

    async def sink(openid: str, text: Text) -> None:
        kept.append((openid, text))

    clip_key = await stack.put("results/job-3.mp4", b"\x00" * 100)
    channel = stack.with_config(mode="passive")
    channel.passive_sink = sink
    await channel.send("oJ", Text(text="credits arrived"))
    await channel.send("oJ", Media(kind="video", key=clip_key, caption="Your video"))
    await channel.edit("oJ", "", Text(text="progress"))  # progress is not kept
    assert stack.wx.calls == []
    assert [o for o, _ in kept] == ["oJ", "oJ"]
    assert kept[0][1].text == "credits arrived"
    assert kept[1][1].text.startswith("Your video\n\nhttps://bot.example/media/")
    channel.passive_sink = None
    with pytest.raises(PassiveOnly):
        await channel.send("oJ", Text(text="no sink: held"))
