"""`WeChatApi` against the fake WeChat server: the wire format of each call, the errcode map,
one token refresh on 40001, the media/get size limit, and no secret in any error text."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.channel import Blocked, ChannelError, RetryLater, Undeliverable
from bot.wechat._api import (
    PassiveOnly,
    QuotaExhausted,
    WeChatApi,
    WeChatApiError,
    WindowClosed,
    api_root,
)
from bot.wechat._token import TokenStore
from handlers.types import AttachmentTooLarge
from tests.fakes import Reply
from tests.fakes.wechat import WeChatFake

SECRET = "app-secret-never-shown"


@pytest.fixture
async def wx() -> AsyncIterator[WeChatFake]:
    async with WeChatFake(app_id="wx-app", secret=SECRET) as fake:
        yield fake


def make_api(engine: AsyncEngine, http: httpx.AsyncClient, wx: WeChatFake,
             base: str | None = None) -> WeChatApi:
    base = base or wx.url
    tokens = TokenStore.stable(engine, http, base_url=base, app_id="wx-app", secret=SECRET)
    return WeChatApi(http, base, tokens)


@pytest.fixture
def api(engine: AsyncEngine, http: httpx.AsyncClient, wx: WeChatFake) -> WeChatApi:
    return make_api(engine, http, wx)


def test_api_root_accepts_both_forms() -> None:
    assert api_root("https://api.weixin.qq.com") == "https://api.weixin.qq.com"
    assert api_root("https://api.weixin.qq.com/cgi-bin/") == "https://api.weixin.qq.com"
    assert api_root("http://127.0.0.1:81/x/cgi-bin") == "http://127.0.0.1:81/x"
    with pytest.raises(ValueError, match="http"):
        api_root("ftp://example.com")


async def test_text_goes_as_utf8_json_with_the_token(api: WeChatApi, wx: WeChatFake) -> None:
    await api.send_text("oAlice", "你好 — 视频已完成")
    [call] = wx.of("custom/send")
    assert call.body == {"touser": "oAlice", "msgtype": "text",
                         "text": {"content": "你好 — 视频已完成"}}
    assert "你好".encode() in call.raw
    assert b"\\u" not in call.raw
    assert call.query["access_token"] == wx.token
    assert wx.token_fetches == [False]


async def test_base_url_with_cgi_bin_suffix_reaches_the_same_paths(
        engine: AsyncEngine, http: httpx.AsyncClient, wx: WeChatFake) -> None:
    api = make_api(engine, http, wx, base=f"{wx.url}/cgi-bin/")
    await api.send_text("oAlice", "hi")
    assert wx.texts("oAlice") == ["hi"]


async def test_upload_then_send_image_and_video(api: WeChatApi, wx: WeChatFake) -> None:
    image = await api.upload("image", b"\xff\xd8jpeg", "result.jpg", "image/jpeg")
    video = await api.upload("video", b"\x00\x00\x00\x18ftypmp42", "result.mp4", "video/mp4")
    thumb = await api.upload("thumb", b"\xff\xd8thumb", "thumb.jpg", "image/jpeg")
    assert wx.media[image].data == b"\xff\xd8jpeg"
    assert wx.media[image].filename == "result.jpg"
    assert wx.media[thumb].kind == "thumb"
    await api.send_image("oAlice", image)
    await api.send_video("oAlice", video, "Your video", "Made by VideoFly")
    assert wx.sent("oAlice") == [
        {"touser": "oAlice", "msgtype": "image", "image": {"media_id": image}},
        {"touser": "oAlice", "msgtype": "video",
         "video": {"media_id": video, "title": "Your video", "description": "Made by VideoFly"}},
    ]
    assert [c.query["type"] for c in wx.of("media/upload")] == ["image", "video", "thumb"]


async def test_upload_over_wechats_limit_is_undeliverable(api: WeChatApi,
                                                          wx: WeChatFake) -> None:
    with pytest.raises(Undeliverable):
        await api.upload("image", b"x" * (2 * 1024 * 1024 + 1), "big.jpg", "image/jpeg")
    assert wx.media == {}


async def test_media_get_returns_the_bytes_within_the_limit(api: WeChatApi,
                                                            wx: WeChatFake) -> None:
    photo = wx.add_media(b"\xff\xd8" + b"p" * 5000, "image/jpeg")
    data, ctype = await api.get_media(photo, max_bytes=10_000)
    assert data == b"\xff\xd8" + b"p" * 5000
    assert ctype == "image/jpeg"
    with pytest.raises(AttachmentTooLarge):
        await api.get_media(photo, max_bytes=4000)
    with pytest.raises(Undeliverable):  # 40007, a JSON answer
        await api.get_media("no-such-media", max_bytes=10_000)


async def test_media_get_refreshes_an_invalid_token_once(api: WeChatApi, wx: WeChatFake) -> None:
    photo = wx.add_media(b"\xff\xd8photo")
    await api.send_text("oAlice", "warm the token")
    wx.invalidate_token()
    data, _ = await api.get_media(photo, max_bytes=1000)
    assert data == b"\xff\xd8photo"
    assert wx.token_fetches == [False, False]
    assert [c.errcode for c in wx.of("media/get")] == [40001, 0]


async def test_menu_create_posts_the_buttons(api: WeChatApi, wx: WeChatFake) -> None:
    buttons = [{"type": "click", "name": "制作", "key": "MAKE"},
               {"type": "click", "name": "余额", "key": "BALANCE"}]
    await api.create_menu(buttons)
    assert wx.menus == [{"button": buttons}]


async def test_an_invalid_token_is_refreshed_once_and_the_call_repeated(
        api: WeChatApi, wx: WeChatFake) -> None:
    await api.send_text("oAlice", "one")
    first = wx.token
    wx.invalidate_token()  # 40001 for the token the store holds
    await api.send_text("oAlice", "two")
    assert wx.texts("oAlice") == ["one", "two"]
    assert wx.token != first
    assert [c.errcode for c in wx.of("custom/send")] == [0, 40001, 0]
    assert wx.token_fetches == [False, False]


@pytest.mark.parametrize("code", [40001, 40014, 42001])
async def test_a_token_error_twice_gives_up_after_one_refresh(
        api: WeChatApi, wx: WeChatFake, code: int) -> None:
    wx.script_next("custom/send", wx.errcode(code), wx.errcode(code))
    with pytest.raises(WeChatApiError) as err:
        await api.send_text("oAlice", "hi")
    assert err.value.errcode == code
    assert len(wx.of("custom/send")) == 2
    # The second fetch got the same token back from normal mode, so the store forced one.
    assert wx.token_fetches == [False, False, True]


@pytest.mark.parametrize(("code", "error"), [
    (45015, WindowClosed), (45047, QuotaExhausted), (48001, PassiveOnly), (43004, Blocked),
    (40003, Undeliverable), (45002, Undeliverable), (45009, RetryLater), (-1, RetryLater),
    (61004, WeChatApiError),
])
async def test_errcodes_map_onto_the_channel_errors(
        api: WeChatApi, wx: WeChatFake, code: int, error: type[ChannelError]) -> None:
    wx.script_next("custom/send", wx.errcode(code))
    with pytest.raises(error) as err:
        await api.send_text("oAlice", "hi")
    assert type(err.value) is error
    if isinstance(err.value, RetryLater):
        assert err.value.seconds >= (60 if code == 45009 else 1)


async def test_window_and_quota_come_from_the_fake_account(api: WeChatApi,
                                                           wx: WeChatFake) -> None:
    wx.require_window, wx.quota = True, 2
    with pytest.raises(WindowClosed):
        await api.send_text("oBob", "too late")
    wx.user_wrote("oBob")
    await api.send_text("oBob", "1")
    await api.send_text("oBob", "2")
    with pytest.raises(QuotaExhausted):
        await api.send_text("oBob", "3")
    wx.user_wrote("oBob")
    await api.send_text("oBob", "3")
    assert wx.texts("oBob") == ["1", "2", "3"]


async def test_passive_accounts_get_48001_for_sends_uploads_and_menus(
        api: WeChatApi, wx: WeChatFake) -> None:
    wx.passive_only = True
    with pytest.raises(PassiveOnly):
        await api.send_text("oAlice", "hi")
    with pytest.raises(PassiveOnly):
        await api.upload("image", b"\xff\xd8", "a.jpg", "image/jpeg")
    with pytest.raises(PassiveOnly):
        await api.create_menu([{"type": "click", "name": "x", "key": "X"}])


@pytest.mark.parametrize("reply", [
    Reply(status=500, body=b"oops"), Reply(body=b"<html>not json</html>"),
    Reply(json=["a", "list"]), Reply(json={"errcode": "0x", "errmsg": "odd"}),
])
async def test_malformed_answers_are_retryable_errors(api: WeChatApi, wx: WeChatFake,
                                                      reply: Reply) -> None:
    wx.script_next("custom/send", reply)
    with pytest.raises(WeChatApiError):
        await api.send_text("oAlice", "hi")


async def test_bad_credentials_and_network_errors_never_show_secrets(
        api: WeChatApi, wx: WeChatFake, engine: AsyncEngine, http: httpx.AsyncClient) -> None:
    tokens = TokenStore.stable(engine, http, base_url=wx.url, app_id="wx-other", secret=SECRET)
    with pytest.raises(WeChatApiError) as err:
        await WeChatApi(http, wx.url, tokens).send_text("oAlice", "hi")
    assert err.value.errcode == 40013
    assert SECRET not in str(err.value)
    await api.send_text("oAlice", "hi")
    token = wx.token
    await wx.stop()
    with pytest.raises(WeChatApiError) as err:
        await api.send_text("oAlice", "hi")
    assert token not in str(err.value)
    assert SECRET not in str(err.value)
    assert "ConnectError" in str(err.value)
