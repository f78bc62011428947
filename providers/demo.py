"""The demo provider: renders a real short clip on this machine and calls back like a provider.

No third party and no key: `create_task` answers PENDING with a fresh task id and starts a
background task that

1. fetches the first input image, if any, through the shared client (these are our own signed
   `/media` links, on our own server), at most `MAX_IMAGE_BYTES`;
2. renders the clip with `render_clip` in a worker thread into `out_dir/<task_id>.mp4` (the web
   server serves that directory at `{public_url}/demo/`); `_render` (PyAV, Pillow) is imported
   in that thread on the first render, so neither the service's start nor its loop pays for it;
3. waits until at least `delay` seconds have passed since `create_task`;
4. POSTs the callback to the request's `callback_url`: a JSON body
   `{"taskId", "state": "success" | "fail", "resultUrls": [...], "error": ...}` with header
   `X-Signature` = hex HMAC-SHA256 of the raw body with the secret (PROVIDER_CALLBACK_SECRET),
   retried with backoff on network errors, 429 and 5xx, a bounded number of times.

A rejected or unreadable image ends in a `fail` callback whose `error` is user-safe English.
Because the whole body is signed with a key we hold, `parse_callback` returns `verified=True`
and `body_signed=True` with the body's status, which the job layer may act on without
re-querying.

`query_task` answers from this process: RUNNING while the task renders and waits out `delay`;
from then on (while the callback is sent, and after) FAILED for a render that failed, SUCCEEDED
once the file is there; any other id raises `TaskNotFound`, because after a restart a task whose
file never appeared is not ours to invent. A finished clip found on disk after a restart is
reported SUCCEEDED, so a poll can still complete its job.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from ._base import CallbackHint, TaskRequest, TaskState, TaskStatus
from ._clip import MAX_IMAGE_BYTES, RenderError, frame_size
from ._exceptions import BadCallback, BadSignature, ProviderBadInput, TaskNotFound

__all__ = ["SIGNATURE_HEADER", "DemoProvider", "demo_signature"]

log = logging.getLogger("providers.demo")

SIGNATURE_HEADER = "X-Signature"
_TASK_ID = re.compile(r"[0-9a-f]{32}")
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_FETCH_FAILED = "The image could not be downloaded."
_KEEP_FAILED = 10_000  # failed task ids remembered for query_task
_RENDER_FAILED = "The demo could not render this clip."

def demo_signature(body: bytes, secret: str) -> str:
    """The value the demo puts in X-Signature for this raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _render(out_path: Path, **options: Any) -> None:
    """`render_clip`, imported here (in the worker thread): see the module docstring."""
    from ._render import render_clip

    render_clip(out_path, **options)


class _Fail(Exception):
    """A task that ends in a `fail` callback; the message is user-safe."""


class DemoProvider:
    """A local stand-in for a video provider, for `videofly chat`, demos and tests."""

    name = "demo"
    tasks_die_with_process = True  # a restart loses renders in progress (see sweeps.recover)

    def __init__(self, client: httpx.AsyncClient, *, secret: str, out_dir: Path,
                 public_url: str, delay: float, seconds: int = 4, attempts: int = 5,
                 backoff: float = 0.5, max_renders: int = 2) -> None:
        if not secret:
            raise ValueError("the demo provider needs a callback secret")
        if not 1 <= seconds <= 60 or delay < 0 or attempts < 1 or backoff < 0:
            raise ValueError("seconds must be 1..60, delay and backoff >= 0, attempts >= 1")
        self._client = client
        self._secret = secret
        self._out_dir = Path(out_dir)
        self._public_url = public_url.rstrip("/")
        self._delay = delay
        self._seconds = seconds
        self._attempts = attempts
        self._backoff = backoff
        self._renders = asyncio.Semaphore(max_renders)  # rendering is CPU work: bound it
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ready: set[str] = set()  # in flight, but done: its callback is being sent
        self._failed: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"DemoProvider(out_dir={str(self._out_dir)!r}, public_url={self._public_url!r})"

    @property
    def out_dir(self) -> Path:
        return self._out_dir

    @property
    def in_flight(self) -> int:
        """Tasks still rendering, waiting out the delay, or calling back."""
        return len(self._tasks)

    def result_url(self, task_id: str) -> str:
        return f"{self._public_url}/demo/{task_id}.mp4"

    # --- the Provider protocol -------------------------------------------------------------

    async def create_task(self, req: TaskRequest) -> TaskStatus:
        seconds = req.duration or self._seconds
        if not 1 <= seconds <= 60:
            raise ProviderBadInput(self.name, code="local", reason="duration must be 1..60 s")
        try:
            frame_size(req.aspect_ratio or "16:9")
        except ValueError as exc:
            raise ProviderBadInput(self.name, code="local", reason=str(exc)) from None
        task_id = uuid.uuid4().hex
        task = asyncio.create_task(self._run(task_id, req, seconds), name=f"demo:{task_id}")
        self._tasks[task_id] = task
        task.add_done_callback(lambda _: self._forget(task_id))
        return TaskStatus(task_id=task_id, state=TaskState.PENDING, progress=0)

    async def query_task(self, task_id: str) -> TaskStatus:
        if task_id in self._tasks and task_id not in self._ready:
            return TaskStatus(task_id=task_id, state=TaskState.RUNNING)
        if task_id in self._failed:
            return TaskStatus(task_id=task_id, state=TaskState.FAILED,
                              error=self._failed[task_id])
        if _TASK_ID.fullmatch(task_id) is not None:
            path = self._path(task_id)
            if await asyncio.to_thread(path.is_file):
                return self._succeeded(task_id)
        raise TaskNotFound(self.name, code="404", reason="no such demo task", status=404)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackHint:
        signature = next((v for k, v in headers.items() if k.lower() == "x-signature"), "")
        expected = demo_signature(body, self._secret)
        # "replace": a header may hold any byte (0xFF arrives as a lone surrogate), and a
        # value that cannot be encoded is simply a wrong signature.
        if not signature or not hmac.compare_digest(
                expected.encode(), signature.strip().encode("utf-8", "replace")):
            raise BadSignature(self.name, "missing or wrong X-Signature")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadCallback(self.name, "body is not JSON") from exc
        if not isinstance(data, dict):
            raise BadCallback(self.name, "body is not a JSON object")
        task_id, state = data.get("taskId"), data.get("state")
        urls, error = data.get("resultUrls") or [], data.get("error")
        if not isinstance(task_id, str) or not _TASK_ID.fullmatch(task_id):
            raise BadCallback(self.name, "no valid taskId in body")
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise BadCallback(self.name, "resultUrls is not a list of strings")
        if state == "success" and urls:
            status = TaskStatus(task_id=task_id, state=TaskState.SUCCEEDED, progress=100,
                                result_urls=tuple(urls))
        elif state == "fail":
            status = TaskStatus(task_id=task_id, state=TaskState.FAILED,
                                error=str(error)[:300] if error else "failed")
        else:
            raise BadCallback(self.name, "state is neither success (with resultUrls) nor fail")
        return CallbackHint(task_id=task_id, verified=True, status=status, body_signed=True)

    async def purge(self, older_than: float) -> int:
        """Deletes finished clips (and a crash's partial ones) older than `older_than` seconds;
        by then their jobs have long copied them into storage. Returns how many it deleted."""
        cutoff = time.time() - older_than
        busy = set(self._tasks)

        def sweep() -> int:
            removed = 0
            for path in self._out_dir.glob("*.mp4*"):  # <id>.mp4 and .<id>.mp4.<x>.part
                try:
                    task_id = path.name.lstrip(".")[:32]
                    if task_id not in busy and path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
            return removed

        return await asyncio.to_thread(sweep)

    async def aclose(self) -> None:
        """Cancels the tasks in flight and waits for them to end."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- the background task ---------------------------------------------------------------

    def _forget(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)
        self._ready.discard(task_id)

    def _path(self, task_id: str) -> Path:
        return self._out_dir / f"{task_id}.mp4"

    def _succeeded(self, task_id: str) -> TaskStatus:
        return TaskStatus(task_id=task_id, state=TaskState.SUCCEEDED, progress=100,
                          result_urls=(self.result_url(task_id),))

    async def _run(self, task_id: str, req: TaskRequest, seconds: int) -> None:
        try:
            await self._work(task_id, req, seconds)
        except Exception:  # a background task has no one to raise to
            log.exception("demo task %s: unexpected error", task_id)

    def _fail(self, task_id: str, reason: str) -> dict[str, Any]:
        self._failed[task_id] = reason
        while len(self._failed) > _KEEP_FAILED:
            del self._failed[next(iter(self._failed))]
        return {"taskId": task_id, "state": "fail", "resultUrls": [], "error": reason}

    async def _work(self, task_id: str, req: TaskRequest, seconds: int) -> None:
        started = time.monotonic()
        try:
            image = await self._fetch(req.image_urls[0]) if req.image_urls else None
            async with self._renders:
                await asyncio.to_thread(self._out_dir.mkdir, parents=True, exist_ok=True)
                await asyncio.to_thread(
                    _render, self._path(task_id), prompt=req.prompt, image=image,
                    seconds=seconds, aspect_ratio=req.aspect_ratio or "16:9")
            body: dict[str, Any] = {"taskId": task_id, "state": "success",
                                    "resultUrls": [self.result_url(task_id)], "error": None}
        except (_Fail, RenderError) as exc:
            log.info("demo task %s failed: %s", task_id, exc)
            body = self._fail(task_id, str(exc))
        except Exception:
            log.exception("demo task %s: rendering failed", task_id)
            body = self._fail(task_id, _RENDER_FAILED)
        await asyncio.sleep(max(0.0, self._delay - (time.monotonic() - started)))
        self._ready.add(task_id)  # from here a query answers as the callback does
        if req.callback_url:
            await self._call_back(task_id, req.callback_url, body)

    async def _fetch(self, url: str) -> bytes:
        """The input image, at most MAX_IMAGE_BYTES; a GET, so retried like the callback."""
        for attempt in range(1, self._attempts + 1):
            try:
                async with self._client.stream("GET", url) as resp:
                    if resp.status_code in _RETRY_STATUS and attempt < self._attempts:
                        await self._pause(attempt, f"image fetch answered {resp.status_code}")
                        continue
                    if not resp.is_success:
                        raise _Fail(_FETCH_FAILED)
                    data = bytearray()
                    async for chunk in resp.aiter_bytes():
                        data += chunk
                        if len(data) > MAX_IMAGE_BYTES:
                            raise _Fail("The image is larger than 20 MB.")
                    return bytes(data)
            except httpx.HTTPError as exc:
                if attempt == self._attempts:
                    raise _Fail(_FETCH_FAILED) from exc
                await self._pause(attempt, f"image fetch failed ({type(exc).__name__})")
        raise _Fail(_FETCH_FAILED)  # pragma: no cover - the loop always returns or raises

    async def _call_back(self, task_id: str, url: str, body: Mapping[str, Any]) -> None:
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json",
                   SIGNATURE_HEADER: demo_signature(raw, self._secret)}
        where = httpx.URL(url).path  # never the query: it carries the job's token
        for attempt in range(1, self._attempts + 1):
            try:
                resp = await self._client.post(url, content=raw, headers=headers)
            except httpx.HTTPError as exc:
                problem = f"failed ({type(exc).__name__})"
            else:
                if resp.is_success:
                    return
                if resp.status_code not in _RETRY_STATUS:
                    log.warning("demo task %s: callback to %s refused with %d", task_id,
                                where, resp.status_code)
                    return
                problem = f"answered {resp.status_code}"
            if attempt == self._attempts:
                log.warning("demo task %s: callback to %s %s; giving up after %d tries "
                            "(the job's poll will find the result)", task_id, where, problem,
                            attempt)
                return
            await self._pause(attempt, f"callback to {where} {problem}")

    async def _pause(self, attempt: int, problem: str) -> None:
        wait = self._backoff * 2 ** (attempt - 1)
        log.info("demo: %s; retry %d of %d in %.2fs", problem, attempt, self._attempts - 1,
                 wait)
        await asyncio.sleep(wait)
