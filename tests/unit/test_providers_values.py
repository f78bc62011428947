"""Pure parts of the providers: image URL extraction, data URLs, errors, local validation."""

from __future__ import annotations

import base64

import httpx
import pytest

from providers import (
    EvolinkClient,
    ImageClient,
    KieClient,
    ProviderBadInput,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    RetryPolicy,
    TaskNotFound,
    TaskRequest,
    TaskState,
    data_url,
    extract_image_urls,
)
from providers._http import Caller
from tests.fakes.image import PNG_1X1 as PNG
from tests.fakes.image import PNG_DATA_URL as DATA


@pytest.mark.parametrize(("text", "urls"), [
    ("Here: ![result](https://cdn.example.com/a/b.png)", ("https://cdn.example.com/a/b.png",)),
    ('![x]( <https://cdn.example.com/s?sig=1> "title")', ("https://cdn.example.com/s?sig=1",)),
    ("See https://cdn.example.com/out.JPG.", ("https://cdn.example.com/out.JPG",)),
    ("https://cdn.example.com/out.webp?X-Sig=abc, done",
     ("https://cdn.example.com/out.webp?X-Sig=abc",)),
    (f"inline {DATA} end", (DATA,)),
    (f"![img]({DATA})", (DATA,)),
    ("![a](https://c.example/1.png) and again https://c.example/1.png",
     ("https://c.example/1.png",)),
    ("two: https://c.example/1.png\n![b](https://c.example/2.jpeg)",
     ("https://c.example/1.png", "https://c.example/2.jpeg")),
    ("docs at https://example.com/help and ![x](http://insecure.example/a.png)", ()),
    ("data:text/html;base64,PGgxPg== is not an image", ()),
    ("I cannot edit photos of real people.", ()),
], ids=["markdown", "markdown-angle-title", "bare-ext", "bare-query", "data", "markdown-data",
        "dedupe", "order", "not-images", "data-not-image", "refusal"])
def test_extract_image_urls(text: str, urls: tuple[str, ...]) -> None:
    assert extract_image_urls(text) == urls


@pytest.mark.parametrize(("head", "mime"), [
    (PNG, "image/png"), (b"\xff\xd8\xff\xe0rest", "image/jpeg"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"), (b"GIF89a...", "image/gif")])
def test_data_url_sniffs_the_type(head: bytes, mime: str) -> None:
    url = data_url(head)
    assert url == f"data:{mime};base64,{base64.b64encode(head).decode()}"


def test_data_url_refuses_what_is_not_an_image() -> None:
    with pytest.raises(ValueError, match="not a jpeg"):
        data_url(b"%PDF-1.7")
    assert data_url(b"%PDF", "image/png").startswith("data:image/png;base64,")


def test_error_messages_name_the_provider_and_carry_a_safe_reason() -> None:
    exc = ProviderRateLimited("kie", code="429", reason="slow down", status=429, retry_after=2)
    assert isinstance(exc, ProviderRejected)
    assert isinstance(exc, ProviderError)
    assert str(exc) == "kie: rejected (429): slow down"
    assert (exc.retry_after, exc.maybe_created) == (2, False)


def test_caller_redacts_the_key_and_bounds_the_length(http: httpx.AsyncClient) -> None:
    caller = Caller(http, provider="kie", api_key="sk-secret", policy=RetryPolicy())
    assert caller.safe("bad key sk-secret given") == "bad key *** given"
    assert len(caller.safe("x" * 10_000)) == 300
    assert "sk-secret" not in repr(caller)


def test_clients_do_not_show_their_key(http: httpx.AsyncClient) -> None:
    clients = [KieClient(http, api_key="sk-secret"), EvolinkClient(http, api_key="sk-secret"),
               ImageClient(http, api_key="sk-secret", base_url="https://gw.example/")]
    assert all("sk-secret" not in repr(c) for c in clients)


@pytest.mark.parametrize("policy", [{"attempts": 0}, {"backoff": -1}, {"max_retry_after": -1}])
def test_retry_policy_refuses_nonsense(policy: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="retry policy"):
        RetryPolicy(**policy)  # type: ignore[arg-type]


@pytest.mark.parametrize("req", [
    TaskRequest(model="sora-2-text-to-video", prompt="p", duration=12),
    TaskRequest(model="sora-2-text-to-video", prompt="p", aspect_ratio="1:1"),
], ids=["duration", "aspect"])
async def test_kie_refuses_what_it_cannot_express_before_sending(
        http: httpx.AsyncClient, req: TaskRequest) -> None:
    client = KieClient(http, api_key="k", base_url="http://127.0.0.1:9")  # nothing listens
    with pytest.raises(ProviderBadInput) as info:
        await client.create_task(req)
    assert info.value.code == "local"


@pytest.mark.parametrize("req", [
    TaskRequest(model="sora-2", prompt="p", image_urls=("https://a/1.png", "https://a/2.png")),
    TaskRequest(model="sora-2", prompt="p", aspect_ratio="4:3"),
], ids=["two-images", "aspect"])
async def test_evolink_refuses_what_it_cannot_express_before_sending(
        http: httpx.AsyncClient, req: TaskRequest) -> None:
    client = EvolinkClient(http, api_key="k", base_url="http://127.0.0.1:9")
    with pytest.raises(ProviderBadInput):
        await client.create_task(req)


async def test_image_query_raises_task_not_found(http: httpx.AsyncClient) -> None:
    client = ImageClient(http, api_key="k", base_url="https://gw.example")
    with pytest.raises(TaskNotFound):
        await client.query_task("image-123")


def test_task_state_finished() -> None:
    assert [s.finished for s in TaskState] == [False, False, True, True]
