"""A fake kie.ai jobs API: createTask, recordInfo, result files and callbacks.

    async with KieFake(api_key="k") as kie:
        client = KieClient(http, api_key="k", base_url=kie.url)
        kie.progression = ("waiting", "generating", "success")  # states shown query by query
        kie.script_next("create", Reply(json={"code": 402, "msg": "no credit"}))
        await kie.send_callback(task_id, webhook_key="secret")   # POST to the task's callBackUrl

Business errors are HTTP 200 with the code in the body, as kie does; script other shapes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from providers import kie_signature

from ._server import FakeServer, Reply, post_json

__all__ = ["KieFake", "KieTask", "Reply", "signed_headers"]


@dataclass
class KieTask:
    task_id: str
    model: str
    input: dict[str, Any]
    callback_url: str | None
    states: list[str]  # what each query shows, in order; the last one sticks
    result_urls: list[str]
    fail_code: str = "500"
    fail_msg: str = "internal error, please try again later"
    queries: int = 0
    created_at: int = field(default_factory=lambda: int(time.time() * 1000))

    @property
    def state(self) -> str:
        """The state the next query shows."""
        return self.states[min(self.queries, len(self.states) - 1)]


def signed_headers(task_id: str, key: str, timestamp: int | None = None) -> dict[str, str]:
    """kie's optional callback signature headers."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {"X-Webhook-Timestamp": stamp,
            "X-Webhook-Signature": kie_signature(task_id, stamp, key)}


class KieFake(FakeServer):
    def __init__(self, *, api_key: str = "kie-test-key",
                 progression: tuple[str, ...] = ("waiting", "generating", "success"),
                 msg_key: str = "msg") -> None:
        super().__init__()
        self.api_key = api_key
        self.progression = progression
        self.msg_key = msg_key  # "msg", or "message" as some copies of the docs say
        self.tasks: dict[str, KieTask] = {}
        self.video_bytes = b"\x00\x00\x00\x18ftypmp42fake-kie-video"

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/v1/jobs/createTask", self._create),
                web.get("/api/v1/jobs/recordInfo", self._query),
                web.get("/files/{name}", self._file)]

    def envelope(self, code: int, msg: str, data: Any = None) -> dict[str, Any]:
        return {"code": code, self.msg_key: msg, "data": data}

    def record(self, task_id: str, state: str | None = None, *,
               callback: bool = False) -> dict[str, Any]:
        """The recordInfo answer for a task in `state`; a callback's body is the same, but
        with code 501 for a failed task."""
        task = self.tasks[task_id]
        state = state or task.state
        failed = state == "fail"
        data = {
            "taskId": task.task_id, "model": task.model, "state": state,
            "param": json.dumps({"model": task.model, "callBackUrl": task.callback_url,
                                 "input": task.input}),
            "resultJson": json.dumps({"resultUrls": task.result_urls})
            if state == "success" else "",
            "failCode": task.fail_code if failed else "",
            "failMsg": task.fail_msg if failed else "",
            "costTime": 1000 if state in ("success", "fail") else None,
            "completeTime": task.created_at + 1000 if state in ("success", "fail") else None,
            "createTime": task.created_at,
        }
        if failed and callback:
            return self.envelope(501, task.fail_msg, data)
        return self.envelope(200, "success", data)

    def callback_body(self, task_id: str, state: str | None = None) -> bytes:
        """The body kie POSTs to callBackUrl: the record at the task's final state."""
        final = state or self.tasks[task_id].states[-1]
        return json.dumps(self.record(task_id, final, callback=True)).encode()

    async def send_callback(self, task_id: str, *, webhook_key: str | None = None,
                            timestamp: int | None = None, state: str | None = None,
                            headers: dict[str, str] | None = None) -> int:
        """POSTs the callback to the task's callBackUrl (signed if a key is given)."""
        task = self.tasks[task_id]
        assert task.callback_url, "task was created without callBackUrl"
        signed = signed_headers(task_id, webhook_key, timestamp) if webhook_key else {}
        return await post_json(task.callback_url, self.callback_body(task_id, state),
                               {**signed, **(headers or {})})

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
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response(self.envelope(401, "You do not have access permissions"))
        if (problem := _invalid(body)) is not None:
            return web.json_response(self.envelope(422, problem))
        task_id = f"kie-task-{next(self._ids)}"
        self.tasks[task_id] = KieTask(
            task_id=task_id, model=body["model"], input=body["input"],
            callback_url=body.get("callBackUrl"), states=list(self.progression),
            result_urls=[f"{self.url}/files/{task_id}.mp4"])
        return web.json_response(self.envelope(200, "success", {"taskId": task_id}))

    async def _query(self, request: web.Request) -> web.StreamResponse:
        task_id = request.query.get("taskId", "")
        self.query_calls.append(task_id)
        self.authorizations.append(request.headers.get("Authorization", ""))
        if (scripted := await self.scripted("query", request)) is not None:
            return scripted
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response(self.envelope(401, "You do not have access permissions"))
        if task_id not in self.tasks:
            return web.json_response(self.envelope(404, "task not found"))
        answer = self.record(task_id)
        self.tasks[task_id].queries += 1
        return web.json_response(answer)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.video_bytes, content_type="video/mp4")


def _invalid(body: Any) -> str | None:
    """kie's validation of a createTask body, or None when it is acceptable."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "model is required"
    fields = body.get("input")
    if not isinstance(fields, dict) or not isinstance(fields.get("prompt"), str) \
            or not fields["prompt"]:
        return "input.prompt is required"
    if fields.get("aspect_ratio", "landscape") not in ("portrait", "landscape"):
        return "input.aspect_ratio must be portrait or landscape"
    if fields.get("n_frames", "10") not in ("10", "15"):  # a string: the int 10 is refused
        return "input.n_frames must be \"10\" or \"15\""
    urls = fields.get("image_urls")
    if "image-to-video" in body["model"] and (
            not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls)):
        return "input.image_urls is required for image-to-video"
    if not isinstance(body.get("callBackUrl", ""), str):
        return "callBackUrl must be a string"
    return None
