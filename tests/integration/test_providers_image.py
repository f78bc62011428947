"""ImageClient against a local OpenAI-compatible chat-completions server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from providers import (
    ImageClient,
    ProviderAuthError,
    ProviderBadInput,
    ProviderProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    RetryPolicy,
    TaskRequest,
    TaskState,
    data_url,
)
from tests.fakes import TIGHT, http_client
from tests.fakes.image import PNG_1X1, PNG_DATA_URL, ImageFake, Reply

KEY = "image-secret-key-123"
FAST = RetryPolicy(attempts=3, backoff=0.01)
MODEL = "gemini-2.5-flash-image"
CDN = "https://cdn.example.com/tryon/out.png"


@pytest.fixture
async def fake() -> AsyncIterator[ImageFake]:
    async with ImageFake(api_key=KEY) as server:
        yield server


@pytest.fixture
def image(http: httpx.AsyncClient, fake: ImageFake) -> ImageClient:
    return ImageClient(http, api_key=KEY, base_url=fake.url, retry=FAST)


def tryon(*urls: str) -> TaskRequest:
    return TaskRequest(model=MODEL, prompt="put the jacket on the person", image_urls=urls)


async def test_request_is_one_user_message_with_text_and_images(image: ImageClient,
                                                                fake: ImageFake) -> None:
    person = data_url(PNG_1X1)
    await image.create_task(tryon(person, "https://img.example/jacket.jpg"))
    assert fake.calls == [{"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "put the jacket on the person"},
        {"type": "image_url", "image_url": {"url": person}},
        {"type": "image_url", "image_url": {"url": "https://img.example/jacket.jpg"}}]}]}]
    assert fake.authorizations == [f"Bearer {KEY}"]


@pytest.mark.parametrize(("content", "urls"), [
    (ImageFake.markdown(CDN), (CDN,)),
    (f"Done! Download it here: {CDN}", (CDN,)),
    (f"Here it is:\n{PNG_DATA_URL}\n", (PNG_DATA_URL,)),
    ([{"type": "text", "text": "Here:"}, {"type": "image_url", "image_url": {"url": CDN}}],
     (CDN,)),
], ids=["markdown", "bare-url", "data-url", "content-parts"])
async def test_each_answer_shape_succeeds_at_once(image: ImageClient, fake: ImageFake,
                                                  content: object,
                                                  urls: tuple[str, ...]) -> None:
    fake.content = content
    status = await image.create_task(tryon(PNG_DATA_URL))
    assert (status.state, status.result_urls, status.progress) == (TaskState.SUCCEEDED, urls, 100)
    assert status.task_id.startswith("image-")


async def test_images_field_of_the_message_is_read(image: ImageClient, fake: ImageFake) -> None:
    fake.script_next("chat", ImageFake.answer("Here is your image.", images=[
        {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]))
    assert (await image.create_task(tryon())).result_urls == (PNG_DATA_URL,)


async def test_answer_without_image_is_a_failed_task(image: ImageClient,
                                                     fake: ImageFake) -> None:
    fake.script_next("chat", ImageFake.answer("I can't help with   that.",
                                              finish_reason="content_filter"))
    status = await image.create_task(tryon(PNG_DATA_URL))
    assert (status.state, status.result_urls) == (TaskState.FAILED, ())
    assert status.error == "no image in the answer (content_filter): I can't help with that."


async def test_task_ids_are_unique(image: ImageClient) -> None:
    ids = {(await image.create_task(tryon())).task_id for _ in range(3)}
    assert len(ids) == 3


async def test_gateway_refusal_maps_to_bad_input(image: ImageClient, fake: ImageFake) -> None:
    with pytest.raises(ProviderBadInput, match=r"image_url\.url"):
        await image.create_task(tryon("ftp://nowhere/a.png"))


async def test_wrong_key(http: httpx.AsyncClient, fake: ImageFake) -> None:
    image = ImageClient(http, api_key="bad", base_url=fake.url, retry=FAST)
    with pytest.raises(ProviderAuthError, match="Incorrect API key"):
        await image.create_task(tryon())


async def test_5xx_is_not_retried(image: ImageClient, fake: ImageFake) -> None:
    fake.script_next("chat", ImageFake.error(500, "server_error", kind="server_error"))
    with pytest.raises(ProviderUnavailable) as info:
        await image.create_task(tryon())
    assert info.value.maybe_created
    assert len(fake.calls) == 1


@pytest.mark.parametrize("reply", [
    Reply(body=b"data: {streamed}"), Reply(json={"choices": []}),
    Reply(json={"choices": [{"message": "text"}]}),
], ids=["not-json", "no-choices", "message-not-object"])
async def test_malformed_answers(image: ImageClient, fake: ImageFake, reply: Reply) -> None:
    fake.script_next("chat", reply)
    with pytest.raises(ProviderProtocolError):
        await image.create_task(tryon())
    assert len(fake.calls) == 1


async def test_own_request_timeout_overrides_the_shared_clients(fake: ImageFake) -> None:
    async with http_client(timeout=5.0) as slow:
        image = ImageClient(slow, api_key=KEY, base_url=fake.url, retry=FAST,
                            request_timeout=httpx.Timeout(TIGHT, connect=5.0))
        fake.script_next("chat", Reply(delay=1.0, json={}))
        with pytest.raises(ProviderTimeout) as info:
            await image.create_task(tryon())
    assert info.value.maybe_created
    assert len(fake.calls) == 1
