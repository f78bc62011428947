"""An OpenAI-compatible chat-completions image model (try-on), e.g. gemini-2.5-flash-image
behind a gateway.

One user message carries the prompt and the input images (`image_urls` of the request: public
https URLs, passed on as they are, or `data:` URLs built with `data_url()` from bytes). The model
answers in `choices[0].message.content` with markdown image links, bare https image URLs or
inline `data:image/...;base64,` URLs (all three are read; gateways that return content parts or
`message.images` are read too). Aspect ratio and duration do not apply and are ignored.

The model is synchronous: `create_task` returns SUCCEEDED with the result URLs (data: URLs kept
as they are, for the storage layer to decode), or FAILED when the model answered without an
image (a refusal). Nothing is kept in memory: `query_task` raises `TaskNotFound`, because a
try-on whose process died mid-call has lost its result; the job layer fails it and releases the
hold. There are no callbacks: `parse_callback` raises `BadCallback`.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from ._base import CallbackHint, TaskRequest, TaskState, TaskStatus
from ._exceptions import BadCallback, ProviderProtocolError, TaskNotFound
from ._http import Caller, RetryPolicy, json_object, openai_style_error
from ._spec import ProviderSpec, Setup

__all__ = ["SPEC", "ImageClient", "data_url", "extract_image_urls"]

_FOUND = re.compile(
    r"!\[[^\]]*\]\(\s*<?(?P<md>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
    r"|(?P<data>data:image/[\w.+-]+;base64,[A-Za-z0-9+/]+={0,2})"
    r"|(?P<url>https://[^\s<>()\[\]\"'`]+)"
)
_DATA = re.compile(r"data:image/[\w.+-]+;base64,[A-Za-z0-9+/]+={0,2}")
_IMAGE_PATH = re.compile(r"\.(?:png|jpe?g|webp|gif)$", re.IGNORECASE)
_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
          (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


def data_url(image: bytes, content_type: str | None = None) -> str:
    """A `data:` URL for image bytes; the type is sniffed (jpeg, png, webp, gif) if not given."""
    if content_type is None:
        content_type = next((t for magic, t in _MAGIC if image.startswith(magic)), None)
        if content_type is None and image[:4] == b"RIFF" and image[8:12] == b"WEBP":
            content_type = "image/webp"
        if content_type is None:
            raise ValueError("not a jpeg, png, webp or gif image")
    return f"data:{content_type};base64,{base64.b64encode(image).decode()}"


def extract_image_urls(text: str) -> tuple[str, ...]:
    """Image URLs in a model's text, in order, once each: markdown image links (https or data),
    inline data:image URLs, and bare https URLs whose path ends in an image extension."""
    found: list[str] = []
    for m in _FOUND.finditer(text):
        if m["md"] is not None:
            url = m["md"]
            if not (url.startswith("https://") or _DATA.fullmatch(url)):
                continue
        elif m["data"] is not None:
            url = m["data"]
        else:
            url = m["url"].rstrip(".,;:!?")
            if not _IMAGE_PATH.search(urlsplit(url).path):
                continue
        found.append(url)
    return tuple(dict.fromkeys(found))


class ImageClient:
    """Chat-completions image model over the caller's shared httpx client."""

    name = "image"

    def __init__(self, client: httpx.AsyncClient, *, api_key: str, base_url: str,
                 retry: RetryPolicy | None = None,
                 request_timeout: httpx.Timeout | None = None) -> None:
        """`request_timeout` overrides the shared client's for this slow model."""
        self._base = base_url.rstrip("/")
        self._timeout = request_timeout
        self._http = Caller(client, provider=self.name, api_key=api_key,
                            policy=retry or RetryPolicy())

    def __repr__(self) -> str:
        return f"ImageClient(base_url={self._base!r})"

    async def create_task(self, req: TaskRequest) -> TaskStatus:
        content: list[dict[str, Any]] = [{"type": "text", "text": req.prompt}]
        content += [{"type": "image_url", "image_url": {"url": u}} for u in req.image_urls]
        body = {"model": req.model, "messages": [{"role": "user", "content": content}]}
        return await self._http.call("POST", f"{self._base}/v1/chat/completions", self._parse,
                                     idempotent=False, json_body=body,
                                     request_timeout=self._timeout)

    async def query_task(self, task_id: str) -> TaskStatus:
        raise TaskNotFound(self.name, code="synchronous",
                           reason="results come only with create_task and are not kept")

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackHint:
        raise BadCallback(self.name, "this provider sends no callbacks")

    def _parse(self, resp: httpx.Response) -> TaskStatus:
        answer = json_object(resp)
        if not resp.is_success:
            openai_style_error(self._http, resp, answer)
        choices = answer.get("choices") if answer is not None else None
        first = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(first, dict) or not isinstance(first.get("message"), dict):
            raise ProviderProtocolError(self.name, "answer has no choices[0].message")
        message = first["message"]
        task_id = f"image-{uuid.uuid4().hex}"
        urls, text = _message_images(message)
        if not urls:
            why = f"no image in the answer ({first.get('finish_reason') or 'stop'})"
            snippet = " ".join(text.split())[:200]
            return TaskStatus(task_id=task_id, state=TaskState.FAILED,
                              error=self._http.safe(f"{why}: {snippet}" if snippet else why))
        return TaskStatus(task_id=task_id, state=TaskState.SUCCEEDED, progress=100,
                          result_urls=urls)


def _message_images(message: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    """The image URLs of a chat message and its text (for a refusal's reason)."""
    content = message.get("content")
    parts: list[Any] = content if isinstance(content, list) else [content]
    images = message.get("images")
    parts += images if isinstance(images, list) else []
    texts: list[str] = []
    urls: list[str] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, dict) and isinstance(part.get("image_url"), dict):
            url = str(part["image_url"].get("url", ""))
            if url.startswith("https://") or _DATA.fullmatch(url):
                urls.append(url)
    text = "\n".join(texts)
    return tuple(dict.fromkeys([*urls, *extract_image_urls(text)])), text


def _build(s: Setup) -> ImageClient:
    return ImageClient(s.http, api_key=s.api_key, base_url=s.settings["image_base_url"])


SPEC = ProviderSpec(name="image", key_variable="IMAGE_API_KEY", build=_build,
                    settings=(("image_base_url", "the gateway's URL"),))
