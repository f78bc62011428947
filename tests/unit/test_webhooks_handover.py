"""The background handover of callbacks: one runner per job, in order, errors logged."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from generation import JobNotFound
from providers import CallbackHint, TaskState, TaskStatus
from webhooks import Handover

WAIT = 5.0


def hint(task: str = "t1", progress: int | None = None) -> CallbackHint:
    status = TaskStatus(task_id=task, state=TaskState.RUNNING, progress=progress)
    return CallbackHint(task_id=task, verified=False, status=status)


class Sink:
    """Records calls; each call waits for `gate` when one is set."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, CallbackHint]] = []
        self.running: dict[int, int] = {}
        self.most_at_once: dict[int, int] = {}
        self.gate: asyncio.Event | None = None
        self.fail: BaseException | None = None

    async def on_callback(self, provider: str, job_id: int, hint: CallbackHint) -> None:
        self.running[job_id] = self.running.get(job_id, 0) + 1
        self.most_at_once[job_id] = max(self.most_at_once.get(job_id, 0),
                                        self.running[job_id])
        try:
            if self.gate is not None:
                await self.gate.wait()
            self.calls.append((provider, job_id, hint))
            if self.fail is not None:
                raise self.fail
        finally:
            self.running[job_id] -= 1


async def idle(handover: Handover) -> None:
    async with asyncio.timeout(WAIT):
        await handover.wait_idle()


async def test_a_callback_runs_in_the_background() -> None:
    sink = Sink()
    handover = Handover(sink)
    assert handover.submit("kie", 1, hint())
    assert handover.in_flight == 1
    assert sink.calls == []
    await idle(handover)
    assert sink.calls == [("kie", 1, hint())]
    assert handover.in_flight == 0


async def test_a_running_handover_is_not_garbage_collected() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    handover = Handover(sink)
    handover.submit("kie", 1, hint())
    await asyncio.sleep(0)
    gc.collect()
    sink.gate.set()
    await idle(handover)
    assert len(sink.calls) == 1


async def test_callbacks_for_one_job_run_one_at_a_time_in_order() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    handover = Handover(sink)
    for progress in (10, 20, 30):
        assert handover.submit("kie", 1, hint(progress=progress))
    handover.submit("kie", 2, hint("t2"))
    await asyncio.sleep(0.01)
    assert handover.in_flight == 2  # one runner per job
    sink.gate.set()
    await idle(handover)
    assert [h.status.progress for _, j, h in sink.calls if j == 1 and h.status] == [10, 20, 30]
    assert sink.most_at_once == {1: 1, 2: 1}


async def test_a_redelivery_already_waiting_is_not_queued_twice() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    handover = Handover(sink)
    for _ in range(3):
        handover.submit("kie", 1, hint())
    await asyncio.sleep(0.01)  # the runner has taken the first and is busy with it
    for _ in range(3):
        handover.submit("kie", 1, hint())
    sink.gate.set()
    await idle(handover)
    assert len(sink.calls) == 2  # the one that ran first, and one identical that waited


async def test_too_many_distinct_waiting_callbacks_are_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    handover = Handover(sink, max_pending=2)
    assert handover.submit("kie", 7, hint(progress=0))
    await asyncio.sleep(0.01)
    with caplog.at_level(logging.WARNING, logger="webhooks.handover"):
        for progress in range(1, 5):
            assert handover.submit("kie", 7, hint(progress=progress))  # dropped, not refused
    assert caplog.text.count("job 7") == 2
    sink.gate.set()
    await idle(handover)
    assert [h.status.progress for _, _, h in sink.calls if h.status] == [0, 1, 2]


async def test_at_most_concurrency_jobs_run_at_once() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    handover = Handover(sink, concurrency=2)
    for job_id in range(1, 6):
        handover.submit("kie", job_id, hint())
    await asyncio.sleep(0.01)
    assert sum(sink.running.values()) == 2
    assert handover.in_flight == 5
    sink.gate.set()
    await idle(handover)
    assert sorted(j for _, j, _ in sink.calls) == [1, 2, 3, 4, 5]


async def test_a_full_backlog_refuses_and_frees_up_as_jobs_finish(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    handover = Handover(sink, concurrency=1, max_backlog=2)
    assert handover.submit("kie", 1, hint())
    assert handover.submit("kie", 2, hint())
    assert handover.submit("kie", 1, hint(progress=5))  # a job already in the backlog: fine
    with caplog.at_level(logging.WARNING, logger="webhooks.handover"):
        assert not handover.submit("kie", 3, hint())
    assert "refused" in caplog.text
    sink.gate.set()
    await idle(handover)
    assert handover.submit("kie", 3, hint())
    await idle(handover)
    assert sorted(j for _, j, _ in sink.calls) == [1, 1, 2, 3]


async def test_a_job_submitted_as_the_last_worker_returns_still_gets_one() -> None:
    handover: Handover

    class Chained(Sink):
        async def on_callback(self, provider: str, job_id: int, hint: CallbackHint) -> None:
            await super().on_callback(provider, job_id, hint)
            if job_id == 1:
                # Runs after the worker has returned, before its done callback: the moment a
                # worker that is gone still sits in the set of workers.
                asyncio.get_running_loop().call_soon(handover.submit, "kie", 2, hint)

    sink = Chained()
    handover = Handover(sink, concurrency=1)
    handover.submit("kie", 1, hint())
    await idle(handover)
    await asyncio.sleep(0.01)
    await idle(handover)
    assert [j for _, j, _ in sink.calls] == [1, 2]


async def test_an_error_is_logged_with_the_job_id_and_the_next_callback_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    sink.fail = RuntimeError("boom")
    handover = Handover(sink)
    handover.submit("kie", 42, hint(progress=1))
    handover.submit("kie", 42, hint(progress=2))
    with caplog.at_level(logging.ERROR, logger="webhooks.handover"):
        sink.gate.set()
        await idle(handover)
    assert len(sink.calls) == 2
    failures = [r for r in caplog.records if "job 42" in r.getMessage()]
    assert len(failures) == 2
    assert all(r.exc_info for r in failures)


async def test_a_vanished_job_is_a_warning_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Sink()
    sink.fail = JobNotFound(9)
    handover = Handover(sink)
    with caplog.at_level(logging.WARNING, logger="webhooks.handover"):
        handover.submit("evolink", 9, hint())
        await idle(handover)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "job 9" in record.getMessage()
    assert record.exc_info is None


async def test_close_waits_for_running_handovers() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    handover = Handover(sink)
    handover.submit("kie", 1, hint())
    asyncio.get_running_loop().call_later(0.05, sink.gate.set)
    await handover.close(grace=WAIT)
    assert len(sink.calls) == 1
    assert handover.in_flight == 0


async def test_close_cancels_what_outlives_the_grace(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    sink.gate = asyncio.Event()  # never set
    handover = Handover(sink)
    handover.submit("kie", 1, hint(progress=1))
    await asyncio.sleep(0.01)
    handover.submit("kie", 1, hint(progress=2))
    with caplog.at_level(logging.WARNING, logger="webhooks.handover"):
        async with asyncio.timeout(WAIT):
            await handover.close(grace=0.05)
    assert handover.in_flight == 0
    assert sink.calls == []
    assert "cancelled" in caplog.text
    assert "1 kie callbacks unhandled" in caplog.text
    assert handover.submit("kie", 1, hint())  # the job's slot was freed
    sink.gate.set()
    await idle(handover)
