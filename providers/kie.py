"""kie.ai "market" jobs API (Sora 2 and others): create, query, callbacks.

Every answer is an envelope `{"code": 200, "msg" | "message": "...", "data": {...}}`; a code
other than 200 is an error whatever the HTTP status. Callbacks carry the query answer's body.

Callback verification: kie may sign a callback with `X-Webhook-Timestamp` and
`X-Webhook-Signature` = base64(HMAC-SHA256(taskId + "." + timestamp, webhook_key)).
- no webhook key configured, or an unsigned callback: `verified=False` (a hint; re-query);
- a signature that does not match, or a timestamp more than 5 minutes away: `BadSignature`
  (a `BadCallback`);
- a matching signature: `verified=True`. It covers only the task id, never the body, so the
  status in the hint still is not evidence for moving money: re-query the task.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ._base import CallbackHint, TaskRequest, TaskState, TaskStatus
from ._exceptions import BadCallback, BadSignature, ProviderBadInput, ProviderProtocolError
from ._http import Caller, RetryPolicy, json_object, raise_for_code, retry_after
from ._spec import ProviderSpec, Setup

__all__ = ["SPEC", "KieClient", "kie_signature"]

DEFAULT_BASE_URL = "https://api.kie.ai"
SIGNATURE_MAX_AGE = 300.0  # seconds

_ASPECT = {"16:9": "landscape", "9:16": "portrait"}
_DURATIONS = frozenset({10, 15})
_STATES = {
    "waiting": TaskState.PENDING,
    "queuing": TaskState.PENDING,
    "generating": TaskState.RUNNING,
    "success": TaskState.SUCCEEDED,
    "fail": TaskState.FAILED,
}


def kie_signature(task_id: str, timestamp: str, key: str) -> str:
    """The value kie puts in X-Webhook-Signature for this task and timestamp."""
    mac = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


class KieClient:
    """kie.ai jobs API over the caller's shared httpx client."""

    name = "kie"

    def __init__(self, client: httpx.AsyncClient, *, api_key: str,
                 base_url: str = DEFAULT_BASE_URL, webhook_key: str | None = None,
                 retry: RetryPolicy | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._base = base_url.rstrip("/")
        self._webhook_key = webhook_key or None
        self._clock = clock
        self._http = Caller(client, provider=self.name, api_key=api_key,
                            policy=retry or RetryPolicy())

    def __repr__(self) -> str:
        return f"KieClient(base_url={self._base!r})"

    async def create_task(self, req: TaskRequest) -> TaskStatus:
        body: dict[str, Any] = {"model": req.model, "input": self._input(req)}
        if req.callback_url:
            body["callBackUrl"] = req.callback_url
        return await self._http.call("POST", f"{self._base}/api/v1/jobs/createTask",
                                     self._parse_created, idempotent=False, json_body=body)

    async def query_task(self, task_id: str) -> TaskStatus:
        return await self._http.call("GET", f"{self._base}/api/v1/jobs/recordInfo",
                                     self._parse_record, idempotent=True,
                                     params={"taskId": task_id})

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackHint:
        try:
            envelope = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadCallback(self.name, "body is not JSON") from exc
        data = envelope.get("data") if isinstance(envelope, dict) else None
        task_id = data.get("taskId") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(task_id, str) or not task_id:
            raise BadCallback(self.name, "no data.taskId in body")
        verified = self._verify(headers, task_id)
        try:
            status: TaskStatus | None = self._status(data)
        except ProviderProtocolError:
            status = None  # still a usable hint: the caller re-queries the task
        return CallbackHint(task_id=task_id, verified=verified, status=status)

    def _input(self, req: TaskRequest) -> dict[str, Any]:
        fields: dict[str, Any] = {"prompt": req.prompt}
        if req.image_urls:
            fields["image_urls"] = list(req.image_urls)
        if req.aspect_ratio is not None:
            if req.aspect_ratio not in _ASPECT:
                raise self._bad(f"aspect ratio {req.aspect_ratio!r} not in {sorted(_ASPECT)}")
            fields["aspect_ratio"] = _ASPECT[req.aspect_ratio]
        if req.duration is not None:
            if req.duration not in _DURATIONS:
                raise self._bad(f"duration {req.duration}s not in {sorted(_DURATIONS)}")
            fields["n_frames"] = str(req.duration)
        return fields

    def _bad(self, reason: str) -> ProviderBadInput:
        return ProviderBadInput(self.name, code="local", reason=reason)

    def _verify(self, headers: Mapping[str, str], task_id: str) -> bool:
        lower = {k.lower(): v for k, v in headers.items()}
        stamp = lower.get("x-webhook-timestamp")
        signature = lower.get("x-webhook-signature")
        if self._webhook_key is None or not stamp or not signature:
            return False
        try:
            age = abs(self._clock() - int(stamp))
        except ValueError as exc:
            raise BadSignature(self.name, "timestamp is not a number") from exc
        if age > SIGNATURE_MAX_AGE:
            raise BadSignature(self.name, "timestamp outside the 5 minute window")
        expected = kie_signature(task_id, stamp, self._webhook_key)
        # "replace": a header may carry any byte (0xFF arrives as a lone surrogate).
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise BadSignature(self.name, "signature does not match")
        return True

    def _parse_created(self, resp: httpx.Response) -> TaskStatus:
        data = self._data(resp)
        task_id = data.get("taskId")
        if not isinstance(task_id, str) or not task_id:
            raise ProviderProtocolError(self.name, "create answer has no data.taskId")
        return TaskStatus(task_id=task_id, state=TaskState.PENDING)

    def _parse_record(self, resp: httpx.Response) -> TaskStatus:
        return self._status(self._data(resp, record=True))

    def _data(self, resp: httpx.Response, *, record: bool = False) -> dict[str, Any]:
        """The envelope's `data`, or the mapped error for any code but 200 (and, for a task
        record, 501 "generation failed" with the failed task's data, as callbacks carry)."""
        envelope = json_object(resp) or {}
        reason = envelope.get("msg") or envelope.get("message") or resp.reason_phrase
        code: int = envelope["code"] if _is_int(envelope.get("code")) else resp.status_code
        if not resp.is_success:
            code = code if code != 200 else resp.status_code
        elif not _is_int(envelope.get("code")):
            raise ProviderProtocolError(self.name, "answer is not a kie envelope")
        data = envelope.get("data")
        if record and code == 501 and isinstance(data, dict) and data.get("state") == "fail":
            return data
        if code != 200:
            raise_for_code(self._http, code, reason=reason, retry_after=retry_after(resp))
        if not isinstance(data, dict):
            raise ProviderProtocolError(self.name, "answer has no data object")
        return data

    def _status(self, data: Mapping[str, Any]) -> TaskStatus:
        task_id, raw_state = data.get("taskId"), data.get("state")
        if not isinstance(task_id, str) or raw_state not in _STATES:
            raise ProviderProtocolError(
                self.name, f"unexpected task state {self._http.safe(raw_state)!r}")
        state = _STATES[raw_state]
        progress = data.get("progress") if _is_int(data.get("progress")) else None
        urls: tuple[str, ...] = ()
        error = None
        if state is TaskState.SUCCEEDED:
            urls = self._result_urls(data.get("resultJson"))
            progress = 100
        elif state is TaskState.FAILED:
            error = self._http.safe(data.get("failMsg") or data.get("failCode") or "failed")
        return TaskStatus(task_id=task_id, state=state, progress=progress,
                          result_urls=urls, error=error)

    def _result_urls(self, raw: object) -> tuple[str, ...]:
        try:
            result = json.loads(raw) if isinstance(raw, str | bytes) else raw
        except ValueError as exc:
            raise ProviderProtocolError(self.name, "resultJson is not JSON") from exc
        urls = result.get("resultUrls") if isinstance(result, dict) else None
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            raise ProviderProtocolError(self.name, "success without resultJson.resultUrls")
        return tuple(urls)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _build(s: Setup) -> KieClient:
    return KieClient(s.http, api_key=s.api_key)


SPEC = ProviderSpec(name="kie", key_variable="KIE_API_KEY", build=_build)
