"""`GET|POST /wechat` over real HTTP: signatures, safe mode, sizes, malformed bodies, and each
kind of message handed to the inbox as the right `Inbound` (the answer path injected)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.wechat import TextRenderer, WeChatInbox, WeChatPhoto
from bot.wechat._inbox_tables import wechat_inbound
from handlers.types import Text
from storage import LocalStorage
from tests.factories import FakeClock
from webhooks.wechat import WeChatWebhook

from ._wechat import (
    AES_KEY,
    APP_ID,
    TOKEN,
    Answers,
    WeChatSim,
    event_xml,
    message_xml,
    reply_text,
    text_xml,
    wechat_server,
    words,
)

MAX_BODY = 4096


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media", public_base="http://127.0.0.1:9",
                        link_secret="s" * 32)


class Served:
    def __init__(self, sim: WeChatSim, answers: Answers, hook: WeChatWebhook,
                 inbox: WeChatInbox) -> None:
        self.sim, self.answers, self.hook, self.inbox = sim, answers, hook, inbox


async def serving(engine: AsyncEngine, storage: LocalStorage, http: httpx.AsyncClient, *,
                  safe: bool = False, answers: Answers | None = None,
                  ) -> AsyncIterator[Served]:
    answers = answers or Answers()
    hook = WeChatWebhook(token=TOKEN, app_id=APP_ID, aes_key=AES_KEY if safe else None,
                         max_body_bytes=MAX_BODY)
    sent: list[object] = []

    async def send(openid: str, message: object) -> None:
        sent.append((openid, message))

    inbox = WeChatInbox(engine=engine, answer=answers, send=send,
                        render=TextRenderer(storage, link_ttl=60), words=words,
                        photo=lambda m, u: WeChatPhoto(m, u, None, http),
                        clock=FakeClock(), window=2.0)
    hook.attach(inbox)
    async with wechat_server(engine, storage, hook) as url:
        sim = WeChatSim(url, safe=safe)
        try:
            yield Served(sim, answers, hook, inbox)
        finally:
            await inbox.wait_idle(5)
            await sim.aclose()


@pytest.fixture
async def served(engine: AsyncEngine, storage: LocalStorage,
                 http: httpx.AsyncClient) -> AsyncIterator[Served]:
    async for s in serving(engine, storage, http):
        yield s


@pytest.fixture
async def safe(engine: AsyncEngine, storage: LocalStorage,
               http: httpx.AsyncClient) -> AsyncIterator[Served]:
    async for s in serving(engine, storage, http, safe=True):
        yield s


async def claimed(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(wechat_inbound)))
                   .scalar_one())


# --- verification -------------------------------------------------------------------------


async def test_get_echoes_echostr_only_with_a_good_signature(served: Served) -> None:
    good = await served.sim.get("echo-123")
    assert (good.status_code, good.text) == (200, "echo-123")
    bad = await served.sim.get("echo-123", bad=True)
    assert bad.status_code == 403
    assert "echo-123" not in bad.text


async def test_a_bad_signature_gets_403_and_changes_nothing(served: Served,
                                                             engine: AsyncEngine) -> None:
    response = await served.sim.post(text_xml("oUser1", "/balance"), bad=True)
    assert response.status_code == 403
    assert served.answers.inbounds == []
    assert await claimed(engine) == 0
    missing = await served.sim.http.post(served.sim.url, content=b"<xml/>")
    assert missing.status_code == 403


async def test_safe_mode_decrypts_and_encrypts(safe: Served, engine: AsyncEngine) -> None:
    assert await safe.sim.send(text_xml("oSafe", "hello")) == "echo hello"
    bad = await safe.sim.post(text_xml("oSafe", "again"), bad_msg_signature=True)
    assert bad.status_code == 403
    assert [i.text for i in safe.answers.inbounds] == ["hello"]
    assert await claimed(engine) == 1


async def test_an_encrypted_message_without_an_aes_key_is_refused(served: Served) -> None:
    served.sim.safe = True  # WeChat encrypts; this server was given no WECHAT_AES_KEY
    response = await served.sim.post(text_xml("oUser", "hi"))
    assert response.status_code == 403
    assert served.answers.inbounds == []


@pytest.mark.parametrize("key", ["", "short", "!" * 43])
def test_a_bad_aes_key_is_refused_naming_the_variable(key: str) -> None:
    if not key:
        hook = WeChatWebhook(token=TOKEN, app_id=APP_ID, aes_key=key)
        assert not hook.safe_mode  # no key: plain mode
        return
    with pytest.raises(ValueError, match="WECHAT_AES_KEY") as caught:
        WeChatWebhook(token=TOKEN, app_id=APP_ID, aes_key=key)
    assert key not in str(caught.value)


# --- bodies -------------------------------------------------------------------------------


async def test_a_body_over_the_limit_gets_413_unread(served: Served) -> None:
    big = text_xml("oBig", "x" * MAX_BODY)
    response = await served.sim.post(big)
    assert response.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: cut off while reading
        for _ in range(MAX_BODY // 1000 + 2):
            yield b"<" * 1000

    query = served.sim.query()
    chunked = await served.sim.http.post(served.sim.url, params=query, content=chunks())
    assert chunked.status_code == 413
    assert served.answers.inbounds == []


@pytest.mark.parametrize("body", [b"not xml at all", b"<xml><MsgType>text", b"\xff\xfe<x>",
                                  b"<xml><ToUserName>a</ToUserName></xml>"])
async def test_a_malformed_body_gets_400(served: Served, body: bytes) -> None:
    response = await served.sim.http.post(served.sim.url, params=served.sim.query(),
                                          content=body)
    assert response.status_code == 400
    assert served.answers.inbounds == []


async def test_no_inbox_attached_gets_503(served: Served) -> None:
    served.hook.detach()
    response = await served.sim.post(text_xml("oUser", "hi"))
    assert response.status_code == 503


# --- kinds of message ---------------------------------------------------------------------


async def test_each_kind_of_message_becomes_its_inbound(served: Served) -> None:
    sim, answers = served.sim, served.answers
    assert await sim.send(text_xml("oA", "  /balance ")) == "echo /balance"
    assert await sim.send(event_xml("oA", "subscribe")) == "echo /start"
    assert await sim.send(event_xml("oB", "subscribe", "qrscene_launch42",
                                    Ticket="t")) == "echo /start launch42"
    assert await sim.send(event_xml("oB", "SCAN", "launch43", Ticket="t")) == \
        "echo /start launch43"
    for key, command in (("MAKE", "/generate"), ("BALANCE", "/balance"),
                         ("CHECKIN", "/checkin"), ("TOPUP", "/topup")):
        assert await sim.send(event_xml("oC", "CLICK", key)) == f"echo {command}"
    assert await sim.send(event_xml("oC", "unsubscribe")) is None
    assert await sim.send(event_xml("oC", "VIEW", "https://example.com/")) is None
    inbounds = answers.inbounds
    assert [(i.address, i.text) for i in inbounds] == [
        ("oA", "/balance"), ("oA", "/start"), ("oB", "/start launch42"),
        ("oB", "/start launch43"), ("oC", "/generate"), ("oC", "/balance"),
        ("oC", "/checkin"), ("oC", "/topup")]
    assert {(i.channel, i.language) for i in inbounds} == {("wechat", "zh")}


async def test_an_image_becomes_a_photo_and_other_kinds_a_friendly_text(
        served: Served) -> None:
    sim, answers = served.sim, served.answers
    answers.reply = lambda i: [Text(text=f"{len(i.photos)} photo")]
    xml = message_xml("oP", "image", PicUrl="https://mmbiz.example/p.jpg", MediaId="MEDIA1")
    assert await sim.send(xml) == "1 photo"
    [photo] = answers.inbounds[0].photos
    assert isinstance(photo, WeChatPhoto)
    assert (photo.media_id, photo.pic_url, photo.size) == ("MEDIA1",
                                                           "https://mmbiz.example/p.jpg", None)
    voice = message_xml("oP", "voice", MediaId="V1", Format="amr")
    assert await sim.send(voice) == "UNSUPPORTED kind of message"
    unknown_click = event_xml("oP", "CLICK", "NOT_OURS")
    assert await sim.send(unknown_click) == "UNSUPPORTED kind of message"
    assert len(answers.inbounds) == 1


async def test_a_reply_goes_back_to_its_sender(served: Served) -> None:
    response = await served.sim.post(text_xml("oSender", "hi"))
    assert response.headers["Content-Type"].startswith("application/xml")
    assert "<ToUserName><![CDATA[oSender]]></ToUserName>" in response.text
    assert reply_text(response.text) == "echo hi"
