"""The outbox through the real dispatcher and `WeChatChannel` to the fake WeChat server: 45015
holds the user's messages until they write, then they go out in order; the quota (45047)
budget holds what does not fit; nothing is lost; the wallet audit stays clean."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.dispatcher import Dispatcher, DispatchPolicy
from bot.wechat._api import WeChatApi
from bot.wechat._channel import WeChatChannel
from bot.wechat._peers import user_wrote
from bot.wechat._token import TokenStore
from core.config import WechatConfig
from core.db import read, write
from core.outbox import enqueue, outbox
from handlers.types import Media, Outbound, Text
from storage import LocalStorage, Storage
from tests.factories import FakeClock
from tests.fakes.media import noise_clip
from tests.fakes.wechat import WeChatFake
from wallet import Wallet

MB = 1024 * 1024


class Renderer:
    """`say` → one text; `video` → the stored clip and a text."""

    async def notification(self, user_id: int, kind: str,
                           payload: dict[str, Any]) -> list[Outbound]:
        if kind == "video":
            return [Media(kind="video", key=payload["key"], caption="Your video"),
                    Text(text="10 credits used")]
        return [Text(text=payload["text"])]

    async def job_status(self, job_id: int) -> tuple[str, Text] | None:
        return None

    async def remember_status(self, job_id: int, *, channel: str, address: str,
                              message_id: str) -> None:
        raise AssertionError("WeChat declares no progress: nothing is tracked")


@pytest.fixture
async def wx() -> AsyncIterator[WeChatFake]:
    async with WeChatFake(app_id="wx-app", secret="s") as fake:
        yield fake


@pytest.fixture
def dispatcher(engine: AsyncEngine, http: httpx.AsyncClient, wx: WeChatFake, clock: FakeClock,
               tmp_path: Path) -> Dispatcher:
    tokens = TokenStore.stable(engine, http, base_url=wx.url, app_id="wx-app", secret="s")
    storage = LocalStorage(tmp_path / "media", public_base="https://bot.example",
                           link_secret="link-secret-for-tests-only-0123456789")
    channel = WeChatChannel(api=WeChatApi(http, wx.url, tokens), engine=engine,
                            storage=storage, config=WechatConfig(), link_ttl=3600, clock=clock)
    return Dispatcher(engine=engine, handlers=Renderer(), channels={"wechat": channel},
                      clock=clock, policy=DispatchPolicy(), rng=random.Random(3))


async def queue(engine: AsyncEngine, clock: FakeClock, user_id: int, kind: str = "say",
                **payload: Any) -> None:
    async with write(engine) as conn:
        await enqueue(conn, user_id=user_id, kind=kind, payload=payload, now=clock())


async def states(engine: AsyncEngine, user_id: int) -> list[str]:
    async with read(engine) as conn:
        return list((await conn.execute(select(outbox.c.state).where(
            outbox.c.user_id == user_id).order_by(outbox.c.id))).scalars())


async def put(storage: Storage, key: str, data: bytes) -> str:
    async def chunks() -> AsyncIterator[bytes]:
        yield data

    await storage.put(key, chunks(), content_type="video/mp4")
    return key


async def test_45015_then_delivery_on_the_next_message(engine: AsyncEngine, wallet: Wallet,
                                                      wx: WeChatFake, dispatcher: Dispatcher,
                                                      clock: FakeClock) -> None:
    wx.require_window = True  # the user last wrote more than 48 h ago
    ann = await wallet.open_account("wechat", "oAnn")
    channel = dispatcher.channels["wechat"]
    assert isinstance(channel, WeChatChannel)
    clip = noise_clip(seconds=10, width=352, height=264)
    key = await put(channel.storage, "results/job-9.mp4", clip)
    await queue(engine, clock, ann, "video", key=key)
    await queue(engine, clock, ann, text="payment credited: 100")
    await dispatcher.run_once()
    await dispatcher.run_once()
    assert await states(engine, ann) == ["held", "held"]
    assert wx.sent("oAnn") == []
    refused = len(wx.of("custom/send"))
    clock.advance(days=5)  # held rows wait as long as it takes
    await dispatcher.run_once()
    assert len(wx.of("custom/send")) == refused  # held: WeChat is not asked again
    wx.user_wrote("oAnn")  # the user writes; the inbound side says so
    woken: list[bool] = []
    assert await user_wrote(engine, "oAnn", now=clock(), notify=lambda: woken.append(True)) == 2
    assert woken == [True]
    await dispatcher.run_once()
    sent = wx.sent("oAnn")
    assert [m["msgtype"] for m in sent] == ["video", "text", "text"]
    assert len(wx.media[sent[0]["video"]["media_id"]].data) <= 10 * MB  # transcoded from 25+
    assert [m["text"]["content"] for m in sent[1:]] == ["10 credits used",
                                                         "payment credited: 100"]
    assert await states(engine, ann) == ["sent", "sent"]


async def test_45047_budget_holds_what_does_not_fit_and_loses_nothing(
        engine: AsyncEngine, wallet: Wallet, wx: WeChatFake, dispatcher: Dispatcher,
        clock: FakeClock) -> None:
    wx.quota = 5
    bob = await wallet.open_account("wechat", "oBob")
    wx.user_wrote("oBob")
    await user_wrote(engine, "oBob", now=clock())
    for i in range(7):
        await queue(engine, clock, bob, text=f"message {i}")
    for _ in range(3):
        await dispatcher.run_once()
    assert wx.texts("oBob") == [f"message {i}" for i in range(5)]
    assert await states(engine, bob) == ["sent"] * 5 + ["held"] * 2
    assert {c.errcode for c in wx.of("custom/send")} == {0}  # our budget stopped first
    wx.user_wrote("oBob")
    await user_wrote(engine, "oBob", now=clock())
    await dispatcher.run_once()
    assert wx.texts("oBob") == [f"message {i}" for i in range(7)]
    assert await states(engine, bob) == ["sent"] * 7
