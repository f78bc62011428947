"""A fake OpenAI-compatible chat-completions image model (try-on).

    async with ImageFake(api_key="k") as img:
        client = ImageClient(http, api_key="k", base_url=img.url)
        img.content = ImageFake.markdown("https://cdn.example.com/out.png")  # the next answers
        img.script_next("chat", ImageFake.answer("I cannot help with that."))

By default it answers with an inline data: URL of a 1x1 PNG, which needs no download.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from aiohttp import web

from ._server import FakeServer, Reply

__all__ = ["PNG_1X1", "PNG_DATA_URL", "ImageFake", "Reply"]

PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
PNG_DATA_URL = "data:image/png;base64," + base64.b64encode(PNG_1X1).decode()


class ImageFake(FakeServer):
    def __init__(self, *, api_key: str = "image-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.content: Any = f"Here is the result:\n\n{PNG_DATA_URL}"
        self.calls: list[Any] = []  # request bodies, in arrival order, even bad ones

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/chat/completions", self._chat)]

    @staticmethod
    def markdown(url: str, alt: str = "image") -> str:
        return f"Here is your try-on image:\n\n![{alt}]({url})\n"

    @staticmethod
    def answer(content: Any, *, finish_reason: str = "stop", **message: Any) -> Reply:
        """A scripted 200 answer whose first choice's message carries `content`."""
        return Reply(json={
            "id": "chatcmpl-scripted", "object": "chat.completion", "created": int(time.time()),
            "model": "fake-image", "choices": [{"index": 0, "finish_reason": finish_reason,
                                                "message": {"role": "assistant",
                                                            "content": content, **message}}],
        })

    @staticmethod
    def error(status: int, code: str, message: str = "", kind: str = "invalid_request_error",
              ) -> Reply:
        return Reply(status=status, json={"error": {"message": message or code, "type": kind,
                                                    "param": None, "code": code}})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        self.calls.append(body)
        self.authorizations.append(request.headers.get("Authorization", ""))
        if (scripted := await self.scripted("chat", request)) is not None:
            return scripted
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            reply = self.error(401, "invalid_api_key", "Incorrect API key provided",
                               "authentication_error")
            return web.json_response(reply.json, status=reply.status)
        if (problem := _invalid(body)) is not None:
            reply = self.error(400, "invalid_request", problem)
            return web.json_response(reply.json, status=reply.status)
        answer = self.answer(self.content).json
        answer["id"] = f"chatcmpl-{next(self._ids)}"
        answer["model"] = body["model"]
        answer["usage"] = {"prompt_tokens": 10, "completion_tokens": 1290, "total_tokens": 1300}
        return web.json_response(answer)


def _invalid(body: Any) -> str | None:
    """The gateway's check of a chat request with images, or None when it is acceptable."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "model is required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages is required"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("user", "system"):
            return "each message needs a role"
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            return "content must be a string or a list of parts"
        for part in content:
            if not isinstance(part, dict):
                return "content parts must be objects"
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                continue
            url = part.get("image_url", {}).get("url") if part.get("type") == "image_url" \
                else None
            if not isinstance(url, str) or not url.startswith(("data:image/", "https://", "http://")):
                return "image_url.url must be a data:image or http(s) URL"
    return None
