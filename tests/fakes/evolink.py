"""A fake evolink.ai video API: generations, tasks, result files and (unsigned) callbacks.

    async with EvolinkFake(api_key="k") as evo:
        client = EvolinkClient(http, api_key="k", base_url=evo.url)
        evo.progression = (("pending", 0), ("processing", 40), ("completed", 100))
        evo.script_next("create", Reply(status=429, json=EvolinkFake.error("rate_limited")))
        await evo.send_callback(task_id)   # POST to the task's callback_url

Errors are HTTP error statuses with `{"error": {"code", "message", "type", "param"}}`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ._server import FakeServer, Reply, post_json

__all__ = ["EvolinkFake", "EvolinkTask", "Reply"]

_ASPECTS = ("16:9", "9:16", "1280x720", "720x1280")
_DURATIONS = (4, 8, 12)


@dataclass
class EvolinkTask:
    task_id: str
    model: str
    request: dict[str, Any]
    callback_url: str | None
    states: list[tuple[str, int]]  # (status, progress) each query shows; the last one sticks
    result_urls: list[str]
    error_code: str = "generation_failed"
    error_message: str = "the video could not be generated"
    queries: int = 0
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def state(self) -> tuple[str, int]:
        """The (status, progress) the next query shows."""
        return self.states[min(self.queries, len(self.states) - 1)]


class EvolinkFake(FakeServer):
    def __init__(self, *, api_key: str = "evo-test-key",
                 progression: tuple[tuple[str, int], ...] = (
                     ("pending", 0), ("processing", 50), ("completed", 100))) -> None:
        super().__init__()
        self.api_key = api_key
        self.progression = progression
        self.tasks: dict[str, EvolinkTask] = {}
        self.video_bytes = b"\x00\x00\x00\x18ftypmp42fake-evolink-video"

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/videos/generations", self._create),
                web.get("/v1/tasks/{task_id}", self._query),
                web.get("/files/{name}", self._file)]

    @staticmethod
    def error(code: str, message: str = "", *, kind: str = "invalid_request_error",
              param: str | None = None) -> dict[str, Any]:
        return {"error": {"code": code, "message": message or code, "type": kind,
                          "param": param}}

    def task_body(self, task_id: str, state: tuple[str, int] | None = None) -> dict[str, Any]:
        """The task answer (also the callback body) in `state`."""
        task = self.tasks[task_id]
        status, progress = state or task.state
        body: dict[str, Any] = {
            "id": task.task_id, "object": "video.generation.task", "model": task.model,
            "created": task.created, "status": status, "progress": progress, "type": "video",
            "task_info": {"can_cancel": status == "pending", "estimated_time": 120},
            "usage": {"billing_rule": "per_call", "credits_reserved": 10},
        }
        if status == "completed":
            body["results"] = task.result_urls
        if status == "failed":
            body["error"] = {"code": task.error_code, "message": task.error_message}
        return body

    def callback_body(self, task_id: str, state: tuple[str, int] | None = None) -> bytes:
        """The body evolink POSTs to callback_url: the task at its final state."""
        return json.dumps(self.task_body(task_id, state or self.tasks[task_id].states[-1]),
                          ).encode()

    async def send_callback(self, task_id: str, *, state: tuple[str, int] | None = None) -> int:
        """POSTs the (unsigned) callback to the task's callback_url."""
        task = self.tasks[task_id]
        assert task.callback_url, "task was created without callback_url"
        return await post_json(task.callback_url, self.callback_body(task_id, state))

    def _denied(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return web.json_response(self.error("unauthorized", "Invalid API key",
                                            kind="authentication_error"), status=401)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        self.create_calls.append(body)
        self.authorizations.append(request.headers.get("Authorization", ""))
        if (scripted := await self.scripted("create", request)) is not None:
            return scripted
        if (denied := self._denied(request)) is not None:
            return denied
        if (problem := _invalid(body)) is not None:
            param, message = problem
            return web.json_response(self.error("invalid_parameter", message, param=param),
                                     status=400)
        task_id = f"task-unified-{int(time.time())}-{next(self._ids):08d}"
        self.tasks[task_id] = EvolinkTask(
            task_id=task_id, model=body["model"], request=body,
            callback_url=body.get("callback_url"), states=list(self.progression),
            result_urls=[f"{self.url}/files/{task_id}.mp4"])
        return web.json_response(self.task_body(task_id, self.progression[0]))

    async def _query(self, request: web.Request) -> web.StreamResponse:
        task_id = request.match_info["task_id"]
        self.query_calls.append(task_id)
        self.authorizations.append(request.headers.get("Authorization", ""))
        if (scripted := await self.scripted("query", request)) is not None:
            return scripted
        if (denied := self._denied(request)) is not None:
            return denied
        if task_id not in self.tasks:
            return web.json_response(self.error("task_not_found", "Task not found"), status=404)
        answer = self.task_body(task_id)
        self.tasks[task_id].queries += 1
        return web.json_response(answer)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.video_bytes, content_type="video/mp4")


def _invalid(body: Any) -> tuple[str, str] | None:
    """evolink's validation of a generation request: (param, message), or None if fine."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "model", "model is required"
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        return "prompt", "prompt is required"
    if body.get("aspect_ratio", "16:9") not in _ASPECTS:
        return "aspect_ratio", f"aspect_ratio must be one of {', '.join(_ASPECTS)}"
    duration = body.get("duration", 4)
    if isinstance(duration, bool) or duration not in _DURATIONS:  # an int: "8" is refused
        return "duration", "duration must be 4, 8 or 12"
    urls = body.get("image_urls", [])
    if not isinstance(urls, list) or len(urls) > 1 or not all(isinstance(u, str) for u in urls):
        return "image_urls", "image_urls takes at most one URL"
    return None
