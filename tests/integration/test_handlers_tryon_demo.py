"""Try-on offline: the shipped config offers it on the demo provider, which composes a real
picture from the user's photos; switched to the image gateway model, the same flow uses that."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

from PIL import Image

from bot.app import http_client
from core.config import load_config
from handlers import Media
from providers import ImageClient
from providers._compose import BAND, COLUMN, PERSON
from storage import LocalStorage
from tests.factories import TestDatabase
from tests.fakes.image import PNG_1X1, ImageFake
from tests.integration._chat import PHOTO, ROOT, User, chatting, choices, texts

SHIPPED = load_config(ROOT / "config.toml", environ={}).models


async def order_try_on(user: User, model: str, status_says: str) -> int:
    assert "kind:try-on" in choices(await user.send("/generate"))
    await user.press("kind:try-on")
    await user.photo(PHOTO)  # the person
    # one garment: a free user's most ([tiers.free] max_clothes = 1), so the look comes next
    assert "Describe the look" in texts(await user.photo(PHOTO))
    models = await user.send("影棚照片 \x1b[1mstudio\x1b[0m photo")
    assert choices(models) == [f"model:{model}", "cancel"]  # the other one is not offered
    confirm = await user.press(f"model:{model}")
    assert "Virtual try-on" in texts(confirm)
    [status] = await user.press("confirm")
    assert status_says in texts([status])
    job_id = status.track_job  # type: ignore[union-attr]
    assert job_id is not None
    return job_id


async def test_the_shipped_config_makes_a_try_on_picture_offline(database: TestDatabase,
                                                                 tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        job = await h.finished(await order_try_on(user, "demo-tryon", "making your image"))
        assert (job.state, job.provider, job.kind) == ("completed", "demo", "try-on")
        assert job.prompt == "影棚照片 studio photo"  # stored without the escape codes
        assert job.thumbnail_key is None
        [key] = job.result_keys or []
        assert key.endswith(".jpg")
        assert isinstance(h.app.storage, LocalStorage)
        picture = Image.open(io.BytesIO(h.app.storage.file_path(key).read_bytes()))
        assert picture.format == "JPEG"
        assert picture.size == (PERSON[0] + COLUMN, PERSON[1] + BAND)
        [news] = await h.news(await user.id(), "job.completed")
        assert isinstance(news, Media)
        assert (news.kind, news.key) == ("photo", key)
        assert await user.available() == 9  # 10 free credits, 1 spent


async def test_with_a_gateway_the_same_flow_uses_the_image_model(database: TestDatabase,
                                                                  tmp_path: Path) -> None:
    models = tuple(replace(m, enabled=m.id == "tryon-image") if m.kind == "try-on" else m
                   for m in SHIPPED)
    async with ImageFake() as fake, http_client() as http:
        image = ImageClient(http, api_key=fake.api_key, base_url=fake.url)
        async with chatting(database, tmp_path, http=http, providers={"image": image},
                            models=models) as h:
            user = h.user()
            job = await h.finished(await order_try_on(user, "tryon-image", "delivered"))
            assert (job.state, job.provider) == ("completed", "image")
            [key] = job.result_keys or []
            assert isinstance(h.app.storage, LocalStorage)
            assert h.app.storage.file_path(key).read_bytes() == PNG_1X1
            [call] = fake.calls
            assert call["model"] == "gemini-2.5-flash-image"
            assert call["messages"][0]["content"][0]["text"] == "影棚照片 studio photo"
            [news] = await h.news(await user.id(), "job.completed")
            assert isinstance(news, Media)
            assert news.kind == "photo"
