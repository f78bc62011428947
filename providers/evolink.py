"""evolink.ai unified video API (Sora 2 and others): create, query, callbacks.

A task answer is `{"id", "status", "progress", "results", ...}`; errors come with an HTTP error
status and `{"error": {"code", "message", "type", "param"}}`. Callbacks carry the query answer
and are not signed, so every hint is `verified=False`: re-query before money moves (polling
alone must also work for this provider).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from ._base import CallbackHint, TaskRequest, TaskState, TaskStatus
from ._exceptions import BadCallback, ProviderBadInput, ProviderProtocolError
from ._http import Caller, RetryPolicy, json_object, openai_style_error
from ._spec import ProviderSpec, Setup

__all__ = ["SPEC", "EvolinkClient"]

DEFAULT_BASE_URL = "https://api.evolink.ai"

_ASPECTS = frozenset({"16:9", "9:16"})
_STATES = {
    "pending": TaskState.PENDING,
    "processing": TaskState.RUNNING,
    "completed": TaskState.SUCCEEDED,
    "failed": TaskState.FAILED,
}


class EvolinkClient:
    """evolink.ai video generation over the caller's shared httpx client."""

    name = "evolink"

    def __init__(self, client: httpx.AsyncClient, *, api_key: str,
                 base_url: str = DEFAULT_BASE_URL, retry: RetryPolicy | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._http = Caller(client, provider=self.name, api_key=api_key,
                            policy=retry or RetryPolicy())

    def __repr__(self) -> str:
        return f"EvolinkClient(base_url={self._base!r})"

    async def create_task(self, req: TaskRequest) -> TaskStatus:
        return await self._http.call("POST", f"{self._base}/v1/videos/generations",
                                     self._parse, idempotent=False, json_body=self._body(req))

    async def query_task(self, task_id: str) -> TaskStatus:
        return await self._http.call("GET", f"{self._base}/v1/tasks/{quote(task_id, safe='')}",
                                     self._parse, idempotent=True)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackHint:
        try:
            task = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadCallback(self.name, "body is not JSON") from exc
        task_id = task.get("id") if isinstance(task, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise BadCallback(self.name, "no task id in body")
        try:
            status: TaskStatus | None = self._status(task)
        except ProviderProtocolError:
            status = None  # still a usable hint: the caller re-queries the task
        return CallbackHint(task_id=task_id, verified=False, status=status)

    def _body(self, req: TaskRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": req.model, "prompt": req.prompt}
        if len(req.image_urls) > 1:
            raise ProviderBadInput(self.name, code="local",
                                   reason=f"at most one image, got {len(req.image_urls)}")
        if req.image_urls:
            body["image_urls"] = list(req.image_urls)
        if req.aspect_ratio is not None:
            if req.aspect_ratio not in _ASPECTS:
                raise ProviderBadInput(self.name, code="local",
                                       reason=f"aspect ratio {req.aspect_ratio!r} not supported")
            body["aspect_ratio"] = req.aspect_ratio
        if req.duration is not None:
            body["duration"] = req.duration
        if req.callback_url:
            body["callback_url"] = req.callback_url
        return body

    def _parse(self, resp: httpx.Response) -> TaskStatus:
        task = json_object(resp)
        if not resp.is_success:
            openai_style_error(self._http, resp, task)
        if task is None:
            raise ProviderProtocolError(self.name, "answer is not a JSON object")
        return self._status(task)

    def _status(self, task: Mapping[str, Any]) -> TaskStatus:
        task_id, raw_state = task.get("id"), task.get("status")
        if not isinstance(task_id, str) or not task_id or raw_state not in _STATES:
            raise ProviderProtocolError(
                self.name, f"unexpected task state {self._http.safe(raw_state)!r}")
        state = _STATES[raw_state]
        progress = task.get("progress")
        if not isinstance(progress, int) or isinstance(progress, bool):
            progress = None
        urls: tuple[str, ...] = ()
        error = None
        if state is TaskState.SUCCEEDED:
            results = task.get("results")
            if not isinstance(results, list) or not results or not all(
                    isinstance(u, str) for u in results):
                raise ProviderProtocolError(self.name, "completed task without results")
            urls = tuple(results)
        elif state is TaskState.FAILED:
            error = self._http.safe(_error_message(task.get("error")) or "failed")
        return TaskStatus(task_id=task_id, state=state, progress=progress,
                          result_urls=urls, error=error)


def _error_message(error: object) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or "")
    return str(error or "")


def _build(s: Setup) -> EvolinkClient:
    return EvolinkClient(s.http, api_key=s.api_key)


SPEC = ProviderSpec(name="evolink", key_variable="EVOLINK_API_KEY", build=_build)
