"""The terminal channel: what a typed line becomes, and how each kind of message is shown,
delivered through the outbox dispatcher from real local storage."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.console import ConsoleChannel, FileAttachment, lang_hint
from bot.dispatcher import Dispatcher
from core.db import write
from core.outbox import enqueue
from handlers.messages import t
from handlers.types import AttachmentTooLarge, Button, Invoice, Media, Outbound, Picture, Text
from storage import LocalStorage, new_key
from tests.factories import FakeClock
from wallet import Wallet


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, format="JPEG")
    return out.getvalue()


async def chunks(data: bytes) -> Any:
    yield data


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media", public_base="http://127.0.0.1:9",
                        link_secret="s" * 32)


def console(storage: LocalStorage, tmp_path: Path, printed: list[str]) -> ConsoleChannel:
    return ConsoleChannel(storage=storage, data_dir=tmp_path / "data", lang="en",
                          write=printed.append)


MENU = Text(text="What now?", buttons=(
    (Button(label="Make a video", data="k:image-to-video"), Button(label="Balance", data="b")),
    (Button(label="Pay", url="https://pay.example/x"),),
))


async def test_menus_print_numbered_paths_become_photos_else_text(
        storage: LocalStorage, tmp_path: Path) -> None:
    """Numbers are text here: the shared answer path turns them into the menu's choice
    (tests/integration/test_channel_contract.py)."""
    printed: list[str] = []
    ch = console(storage, tmp_path, printed)
    assert ch.inbound("1") is not None
    assert ch.inbound("1").text == "1"  # type: ignore[union-attr]
    assert await ch.send("console", MENU) == "1"
    assert printed[-1] == "\n".join([
        "What now?", "1. Make a video", "2. Balance", "Pay: https://pay.example/x"])
    first = ch.inbound(" 1 ")
    assert first is not None
    assert (first.choice, first.text, first.channel, first.address) == (
        None, "1", "console", "console")
    assert ch.inbound("   ") is None
    assert ch.inbound("/balance").text == "/balance"  # type: ignore[union-attr]

    one = tmp_path / "my photo.jpg"
    one.write_bytes(jpeg())
    two = tmp_path / "b.png"
    two.write_bytes(b"png")
    single = ch.inbound(str(one))  # unquoted spaces: still one path
    assert single is not None
    assert [p.path for p in single.photos] == [one]  # type: ignore[attr-defined]
    assert single.album is None
    assert await single.photos[0].read(10_000_000) == one.read_bytes()
    # Lines that cannot be paths are text, never an error (issue 9: "File name too long").
    for line in ("a" * 300, "视" * 86, "x" * 10_000, "/tmp/" + "y" * 300, "nul\x00byte",
                 "~nobody-at-all/" + "z" * 260):
        said = ch.inbound(line)
        assert said is not None
        assert said.text == line
        assert not said.photos
    album = ch.inbound(f"'{one}' {two}")
    assert album is not None
    assert [p.path for p in album.photos] == [one, two]  # type: ignore[attr-defined]
    assert album.album
    assert ch.inbound(f"{one} {tmp_path}/missing.jpg").text  # type: ignore[union-attr]
    assert ch.inbound("a sunset over the sea").text == "a sunset over the sea"  # type: ignore[union-attr]

    await ch.send("console", Text(text="no buttons"))
    assert ch.inbound("1").text == "1"  # type: ignore[union-attr]  # the menu is gone


async def test_a_file_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    with big.open("wb") as f:
        f.truncate(20 * 1024 * 1024 + 1)  # sparse: no 20 MB written
    with pytest.raises(AttachmentTooLarge):
        await FileAttachment(big).read(50 * 1024 * 1024)
    small = tmp_path / "small.jpg"
    small.write_bytes(b"x" * 100)
    with pytest.raises(AttachmentTooLarge):
        await FileAttachment(small).read(99)


def test_the_language_comes_from_lang() -> None:
    assert lang_hint({"LANG": "zh_CN.UTF-8"}) == "zh-CN"
    assert lang_hint({"LANG": "C.UTF-8"}) is None
    assert lang_hint({"LC_ALL": "en_GB.UTF-8", "LANG": "zh_CN"}) == "en-GB"
    assert lang_hint({}) is None


class Outbox:
    def __init__(self, messages: dict[str, list[Outbound]]) -> None:
        self.messages = messages

    async def notification(self, user_id: int, kind: str,
                           payload: dict[str, Any]) -> list[Outbound]:
        return self.messages.get(kind, [])

    async def job_status(self, job_id: int) -> tuple[str, Text] | None:
        return None

    async def remember_status(self, job_id: int, *, channel: str, address: str,
                              message_id: str) -> None:
        raise AssertionError("not used here")


async def test_results_are_saved_and_their_paths_printed_through_the_dispatcher(
        engine: AsyncEngine, wallet: Wallet, clock: FakeClock, storage: LocalStorage,
        tmp_path: Path) -> None:
    video = new_key("videos", ".mp4")
    await storage.put(video, chunks(b"\x00\x00\x00\x18ftypmp42 fake clip"),
                      content_type="video/mp4")
    png = b"\x89PNG\r\n\x1a\n chart"
    renderer = Outbox({
        "job.completed": [Media(kind="video", key=video, caption="Your video is ready")],
        "chart": [Picture(data=png, caption="Last 30 days")],
        "stars": [Invoice(title="Starter", description="100 credits", payload="p", stars=250)],
    })
    uid = await wallet.open_account("console", "console")
    for kind in ("job.completed", "chart", "stars"):
        async with write(engine) as conn:
            await enqueue(conn, user_id=uid, kind=kind, payload={}, now=clock())
    printed: list[str] = []
    ch = console(storage, tmp_path, printed)
    dispatcher = Dispatcher(engine=engine, handlers=renderer, channels={"console": ch},
                            clock=clock)
    assert await dispatcher.run_once() == 3
    saved = tmp_path / "data" / "videos" / video.rsplit("/", 1)[1]
    assert saved.read_bytes() == b"\x00\x00\x00\x18ftypmp42 fake clip"
    assert printed[0] == f"Your video is ready\n{t('en', 'console.saved', path=saved)}"
    [picture] = (tmp_path / "data" / "pictures").iterdir()
    assert picture.read_bytes() == png
    assert printed[1] == f"Last 30 days\n{t('en', 'console.picture', path=picture)}"
    assert printed[2] == "Starter: 250 Stars. Telegram Stars can only be paid inside Telegram."
    assert not list((tmp_path / "data" / "videos").glob(".*"))  # no partial file left

    status = await ch.send("console", Text(text="Queued", track_job=7))
    assert status is not None
    await ch.edit("console", status, Text(text="Queued"))  # reads the same: not printed again
    assert printed[-1] == "Queued"
    await ch.edit("console", status, Text(text="Generating 40%"))
    assert printed[-1] == t("en", "console.status", text="Generating 40%")
