"""Try-on through the chat: a person photo, then clothing photos as an album (several updates
sharing an album id, or one update carrying them all), capped by tier, on the fake image model."""

from __future__ import annotations

from pathlib import Path

from bot.app import http_client
from core.config import ModelConfig, load_config
from handlers import Media
from handlers.state import Step
from providers import ImageClient
from tests.factories import TestDatabase
from tests.fakes.image import ImageFake
from tests.integration._chat import PHOTO, ROOT, chatting, choices, texts

DEMO_MODELS = tuple(m for m in load_config(ROOT / "config.toml", environ={}).models)
TRYON = ModelConfig(id="tryon", name="Try-on", provider="image", kind="try-on", credits=3)


async def test_try_on_with_an_album_of_clothes(database: TestDatabase, tmp_path: Path) -> None:
    async with ImageFake() as fake, http_client() as http:
        image = ImageClient(http, api_key=fake.api_key, base_url=fake.url)
        async with chatting(database, tmp_path, http=http, providers={"image": image},
                            env={"VIDEOFLY__TIERS__FREE": "{ max_clothes = 3 }"},
                            models=(*DEMO_MODELS, TRYON)) as h:
            user = h.user()
            assert "kind:try-on" in choices(await user.send("/generate"))
            assert "person" in texts(await user.press("k:try-on"))
            # A person and two clothes as three updates of one album (a Telegram media group).
            first = await user.photo(PHOTO, album="alb1")
            assert "up to 3 photos of clothes" in texts(first)
            assert "done" not in choices(first)  # no clothes yet
            more = await user.photo(PHOTO, album="alb1")
            assert "Clothing photos received: 1 of 3" in texts(more)
            assert "done" in choices(more)
            assert "2 of 3" in texts(await user.photo(PHOTO, album="alb1"))
            prompt = await user.press("done")
            assert "Describe the look" in texts(prompt)
            await user.send("studio photo, full body")
            confirm = await user.press("m:tryon")  # no durations or shapes to ask
            assert "Cost: 3 credits" in texts(confirm)
            started = await user.press("go")
            job_id = started[0].track_job  # type: ignore[union-attr]
            assert job_id is not None
            job = await h.finished(job_id)
            assert job.state == "completed"
            assert len(job.inputs) == 3
            [picture] = await h.news(await user.id(), "job.completed")
            assert isinstance(picture, Media)
            assert picture.kind == "photo"
            assert picture.thumbnail_key is None
            sent = fake.calls[0]["messages"][0]["content"]
            assert [p["type"] for p in sent] == ["text", "image_url", "image_url", "image_url"]

            # One update with a person and five clothes: three are kept, the rest refused.
            await user.send("/generate")
            await user.press("k:try-on")
            out = await user.photo(*[PHOTO] * 6, album="alb3")
            assert "the most clothing photos I take (3)" in texts(out)
            assert "Describe the look" in texts(out)
            chat = await user.chat()
            assert chat.step is Step.PROMPT
            assert len(chat.draft.photos) == 4
