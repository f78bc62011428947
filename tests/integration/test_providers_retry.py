"""The create-task retry rule over real sockets: a POST is retried only when it provably never
reached the provider (connection refused) or was explicitly rate-limited."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from providers import (
    EvolinkClient,
    ImageClient,
    KieClient,
    Provider,
    ProviderError,
    ProviderUnavailable,
    RetryPolicy,
    TaskRequest,
    TaskState,
)
from tests.fakes import TIGHT, http_client
from tests.fakes.evolink import EvolinkFake
from tests.fakes.image import ImageFake
from tests.fakes.kie import KieFake, Reply

FAST = RetryPolicy(attempts=3, backoff=0.01)
REQ = TaskRequest(model="sora-2-text-to-video", prompt="p", duration=10)


class Attempts:
    """Counts the requests the client starts, and can act before the n-th leaves."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.before: dict[int, Callable[[], Awaitable[None]]] = {}

    async def __call__(self, request: httpx.Request) -> None:
        self.urls.append(request.url.path)
        if (action := self.before.get(len(self.urls))) is not None:
            await action()


@pytest.fixture
def attempts() -> Attempts:
    return Attempts()


@pytest.fixture
async def http(attempts: Attempts) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(TIGHT, event_hooks={"request": [attempts]}) as client:
        yield client


@pytest.fixture
async def closed_kie() -> AsyncIterator[KieFake]:
    """A kie fake that was started and stopped: its port now refuses connections."""
    fake = KieFake()
    await fake.start()
    await fake.stop()
    yield fake
    await fake.stop()


async def test_refused_create_is_retried_until_the_bound(http: httpx.AsyncClient,
                                                         attempts: Attempts,
                                                         closed_kie: KieFake) -> None:
    kie = KieClient(http, api_key=closed_kie.api_key, base_url=closed_kie.url, retry=FAST)
    with pytest.raises(ProviderUnavailable, match="could not connect") as info:
        await kie.create_task(REQ)
    assert not info.value.maybe_created  # nothing reached the provider: safe to try later
    assert attempts.urls == ["/api/v1/jobs/createTask"] * 3


async def test_refused_then_up_creates_exactly_one_task(http: httpx.AsyncClient,
                                                        attempts: Attempts,
                                                        closed_kie: KieFake) -> None:
    attempts.before[2] = lambda: closed_kie.start(closed_kie.port)  # the provider is back
    kie = KieClient(http, api_key=closed_kie.api_key, base_url=closed_kie.url, retry=FAST)
    status = await kie.create_task(REQ)
    assert status.state is TaskState.PENDING
    assert len(attempts.urls) == 2
    assert len(closed_kie.create_calls) == 1
    assert list(closed_kie.tasks) == [status.task_id]


async def test_one_attempt_policy_never_retries(http: httpx.AsyncClient, attempts: Attempts,
                                                closed_kie: KieFake) -> None:
    kie = KieClient(http, api_key=closed_kie.api_key, base_url=closed_kie.url,
                    retry=RetryPolicy(attempts=1))
    with pytest.raises(ProviderUnavailable):
        await kie.create_task(REQ)
    assert len(attempts.urls) == 1


async def test_rate_limited_create_is_retried_once_landed_once(http: httpx.AsyncClient) -> None:
    async with KieFake() as fake:
        fake.script_next("create", Reply(json=fake.envelope(429, "too many")))
        kie = KieClient(http, api_key=fake.api_key, base_url=fake.url, retry=FAST)
        status = await kie.create_task(REQ)
        assert len(fake.create_calls) == 2
        assert list(fake.tasks) == [status.task_id]


@pytest.mark.parametrize("fail", [Reply(status=500, json={}), Reply(delay=1.0, json={}),
                                  Reply(drop=True)], ids=["500", "read-timeout", "dropped"])
async def test_no_create_is_retried_once_sent(http: httpx.AsyncClient, attempts: Attempts,
                                              fail: Reply) -> None:
    """Every provider: a create that reached the server is sent once, whatever happens next."""
    async with KieFake() as kie, EvolinkFake() as evo, ImageFake() as img:
        for fake, op in ((kie, "create"), (evo, "create"), (img, "chat")):
            fake.script_next(op, fail)
        clients: list[Provider] = [
            KieClient(http, api_key=kie.api_key, base_url=kie.url, retry=FAST),
            EvolinkClient(http, api_key=evo.api_key, base_url=evo.url, retry=FAST),
            ImageClient(http, api_key=img.api_key, base_url=img.url, retry=FAST),
        ]
        for client in clients:
            with pytest.raises(ProviderError) as info:
                await client.create_task(TaskRequest(model="sora-2", prompt="p"))
            assert info.value.maybe_created, info.value
        assert (len(kie.create_calls), len(evo.create_calls), len(img.calls)) == (1, 1, 1)
    assert len(attempts.urls) == 3
