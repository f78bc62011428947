"""The demo provider's try-on: two or more photos (a person, then clothes) make a real JPEG,
delivered inline in the signed callback, against the same local endpoint as its clips."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from providers import DemoProvider, TaskRequest, TaskState, data_url
from providers._compose import BAND, COLUMN, PERSON
from tests.factories import jpeg_bytes
from tests.integration import test_demo_provider
from tests.integration.test_demo_provider import PUBLIC, SECRET, Endpoint, idle

GARMENT = jpeg_bytes(200, 200)

endpoint = test_demo_provider.endpoint  # the callback endpoint and signed /media link


@pytest.fixture
async def demo(http: httpx.AsyncClient, tmp_path: Path) -> AsyncIterator[DemoProvider]:
    provider = DemoProvider(http, secret=SECRET, out_dir=tmp_path / "demo", public_url=PUBLIC,
                            delay=0.2, backoff=0.01)
    yield provider
    await provider.aclose()


def tryon(ep: Endpoint, *garments: bytes, person: str | None = None) -> TaskRequest:
    """A try-on request as the job layer sends it: the photos inline as data: URLs (here the
    person photo may come by link, as any photo could)."""
    first = person or data_url(jpeg_bytes())
    return TaskRequest(model="demo-tryon", prompt="studio photo, 全身 🎉",
                       image_urls=(first, *(data_url(g) for g in garments)),
                       callback_url=f"{ep.url}/callbacks/demo?job=9&token=t0k")


def picture(url: str) -> Image.Image:
    head, _, payload = url.partition(",")
    assert head == "data:image/jpeg;base64"
    img = Image.open(io.BytesIO(base64.b64decode(payload)))
    img.load()
    return img


async def test_a_try_on_makes_a_picture_delivered_inline_and_signed(
        demo: DemoProvider, endpoint: Endpoint, http: httpx.AsyncClient) -> None:
    status = await demo.create_task(tryon(endpoint, GARMENT, GARMENT))
    assert status.state is TaskState.PENDING
    got = await endpoint.next()
    assert demo.parse_callback(got.headers, got.body).body_signed
    body = json.loads(got.body)
    assert (body["taskId"], body["state"], body["error"]) == (status.task_id, "success", None)
    [url] = body["resultUrls"]
    img = picture(url)
    assert img.format == "JPEG"
    assert img.size == (PERSON[0] + COLUMN, PERSON[1] + BAND)
    assert len(got.body) < 600_000  # well within the HTTP server's default body limit
    assert not (demo.out_dir / f"{status.task_id}.mp4").exists()  # a picture, not a clip

    # Asked later (or after a restart), the provider answers with the same picture.
    await idle(demo)
    assert (await demo.query_task(status.task_id)).result_urls == (url,)
    again = DemoProvider(http, secret=SECRET, out_dir=demo.out_dir, public_url=PUBLIC,
                         delay=0)
    found = await again.query_task(status.task_id)
    assert (found.state, found.result_urls) == (TaskState.SUCCEEDED, (url,))


async def test_the_person_photo_may_come_by_link(demo: DemoProvider, endpoint: Endpoint) -> None:
    link = f"{endpoint.url}/media/inputs/photo.png?exp=1&sig=abc"
    await demo.create_task(tryon(endpoint, GARMENT, person=link))
    body = json.loads((await endpoint.next()).body)
    assert body["state"] == "success"
    assert picture(body["resultUrls"][0]).format == "JPEG"


async def test_unusable_photos_end_in_user_safe_fail_callbacks(
        demo: DemoProvider, endpoint: Endpoint) -> None:
    await demo.create_task(tryon(endpoint, b"\x89PNG\r\n\x1a\n" + b"garbage" * 20))
    body = json.loads((await endpoint.next()).body)
    assert (body["state"], body["error"]) == ("fail", "The image could not be read.")

    broken = TaskRequest(model="demo-tryon", prompt="x",
                         image_urls=(data_url(jpeg_bytes()), "data:image/jpeg;base64,@@@@"),
                         callback_url=f"{endpoint.url}/callbacks/demo?job=9&token=t0k")
    status = await demo.create_task(broken)
    body = json.loads((await endpoint.next()).body)
    assert (body["state"], body["error"]) == ("fail", "The image could not be downloaded.")
    assert (await demo.query_task(status.task_id)).state is TaskState.FAILED

    huge = "data:image/jpeg;base64," + "A" * (28 * 1024 * 1024)  # decodes to over 20 MB
    await demo.create_task(TaskRequest(model="demo-tryon", prompt="x",
                                       image_urls=(data_url(jpeg_bytes()), huge),
                                       callback_url=broken.callback_url))
    body = json.loads((await endpoint.next()).body)
    assert (body["state"], body["error"]) == ("fail", "The image is larger than 20 MB.")


async def test_purge_deletes_old_pictures_too(http: httpx.AsyncClient, tmp_path: Path) -> None:
    demo = DemoProvider(http, secret=SECRET, out_dir=tmp_path, public_url=PUBLIC, delay=0)
    old, new = "e" * 32, "f" * 32
    for name in (f"{old}.jpg", f"{new}.jpg", f".{old}.jpg.ab12cd34.part"):
        (tmp_path / name).write_bytes(b"x")
    day_ago = time.time() - 86_400
    for name in (f"{old}.jpg", f".{old}.jpg.ab12cd34.part"):
        os.utime(tmp_path / name, (day_ago, day_ago))
    assert await demo.purge(3600) == 2
    left = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.iterdir()))
    assert left == [f"{new}.jpg"]
