"""Generation jobs against fake kie and evolink servers speaking their wire formats, with real
storage and a real database. Every test ends with the wallet audit clean (the `wallet` fixture).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import GenerationConfig, ModelConfig
from core.outbox import outbox
from generation import Catalogue, InvalidChoice, JobService, TooManyJobs, sweeps
from generation.tables import jobs
from providers import (
    CallbackHint,
    EvolinkClient,
    ImageClient,
    KieClient,
    Provider,
    RetryPolicy,
    TaskRequest,
    TaskState,
    TaskStatus,
)
from providers._render import render_clip
from storage import LocalStorage
from tests.factories import FakeClock, funded_user
from tests.fakes import Reply
from tests.fakes.evolink import EvolinkFake
from tests.fakes.image import PNG_1X1, PNG_DATA_URL, ImageFake
from tests.fakes.kie import KieFake
from wallet import InsufficientCredits, Wallet
from wallet.tables import ledger

MODELS = [
    ModelConfig(id="sora-kie", name="Sora (kie)", provider="kie", kind="text-to-video",
                provider_model="sora-2-text-to-video", credits_per_second=2, durations=(10, 15),
                aspect_ratios=("16:9", "9:16")),
    ModelConfig(id="sora-evo", name="Sora (evolink)", provider="evolink", kind="text-to-video",
                provider_model="sora-2", credits=5, durations=(4, 8), aspect_ratios=("16:9",)),
    ModelConfig(id="i2v-kie", name="Sora i2v", provider="kie", kind="image-to-video",
                provider_model="sora-2-image-to-video", credits=7, durations=(10,)),
]
FAST = RetryPolicy(attempts=2, backoff=0.01)
CONFIG = GenerationConfig(poll_after_seconds=10,
                          poll_max_seconds=60, deadline_minutes=30)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("clip") / "c.mp4"
    render_clip(path, prompt="fake provider result", seconds=1, fps=6, width=160)
    return path.read_bytes()


@dataclass
class Pipeline:
    service: JobService
    kie: KieFake
    evo: EvolinkFake
    storage: LocalStorage
    wallet: Wallet

    def with_config(self, config: GenerationConfig, *, allow_fakes: bool = True) -> JobService:
        """The same service with another generation config (e.g. other limits); the fakes'
        origins allowed (plain http on 127.0.0.1) unless `allow_fakes` is False."""
        s = self.service
        if allow_fakes:
            config = replace(config, allow_hosts=(self.kie.url, self.evo.url))
        return JobService(engine=s.engine, wallet=s.wallet, catalogue=s.catalogue,
                          providers=s.providers, storage=s.storage, http=s.http,
                          config=config, public_url="http://127.0.0.1:9", callback_secret="cb",
                          clock=s.clock)


def build_service(engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient, kie: KieFake,
                  evo: EvolinkFake, storage: LocalStorage, clock: FakeClock,
                  config: GenerationConfig = CONFIG) -> JobService:
    config = replace(config, allow_hosts=(*config.allow_hosts, kie.url, evo.url))
    providers: dict[str, Provider] = {
        "kie": KieClient(http, api_key=kie.api_key, base_url=kie.url, retry=FAST),
        "evolink": EvolinkClient(http, api_key=evo.api_key, base_url=evo.url, retry=FAST)}
    return JobService(engine=engine, wallet=wallet, catalogue=Catalogue(MODELS),
                      providers=providers, storage=storage, http=http, config=config,
                      public_url="http://127.0.0.1:9", callback_secret="cb", clock=clock)


@pytest.fixture
async def pipe(engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient, clock: FakeClock,
               tmp_path: Path, clip: bytes) -> AsyncIterator[Pipeline]:
    storage = LocalStorage(tmp_path / "media", public_base="http://127.0.0.1:9",
                           link_secret="x" * 32)
    async with KieFake(progression=("generating", "success")) as kie, \
            EvolinkFake(progression=(("processing", 40), ("completed", 100))) as evo:
        kie.video_bytes = evo.video_bytes = clip
        yield Pipeline(build_service(engine, wallet, http, kie, evo, storage, clock),
                       kie, evo, storage, wallet)


async def kie_callback(pipe: Pipeline, job_id: int, task_id: str,
                       state: str | None = None) -> None:
    body = pipe.kie.callback_body(task_id, state)
    hint = pipe.service.providers["kie"].parse_callback({}, body)
    await pipe.service.on_callback("kie", job_id, hint)


async def outbox_kinds(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(outbox.c.kind).order_by(outbox.c.id))).scalars())


async def test_a_job_completes_from_a_callback_and_spends_once(pipe: Pipeline,
                                                               engine: AsyncEngine) -> None:
    uid = await funded_user(pipe.wallet, 50)
    job = await pipe.service.start(uid, "sora-kie", prompt="a cat surfing", duration=15)
    assert (job.state, job.credits, job.task_id) == ("generating", 30, "kie-task-1")
    sent = pipe.kie.create_calls[0]
    assert sent["input"]["n_frames"] == "15"
    assert sent["callBackUrl"] == pipe.service.callback_url("kie", job.id)
    assert (await pipe.wallet.balance(uid)).held == 30
    await kie_callback(pipe, job.id, "kie-task-1")
    assert pipe.kie.query_calls == ["kie-task-1"]  # re-queried: kie's body is not signed
    assert (await pipe.service.get(job.id)).state == "generating"  # query said generating
    await kie_callback(pipe, job.id, "kie-task-1")
    done = await pipe.service.get(job.id)
    assert done.state == "completed"
    assert done.result_keys is not None
    assert done.thumbnail_key is not None
    assert pipe.storage.file_path(done.result_keys[0]).read_bytes() == pipe.kie.video_bytes
    assert pipe.storage.file_path(done.thumbnail_key).read_bytes()[:2] == b"\xff\xd8"
    bal = await pipe.wallet.balance(uid)
    assert (bal.available, bal.held) == (20, 0)
    assert await outbox_kinds(engine) == ["job.completed"]


async def test_polling_alone_finishes_a_job(pipe: Pipeline, clock: FakeClock) -> None:
    uid = await funded_user(pipe.wallet, 10)
    job = await pipe.service.start(uid, "sora-evo", prompt="sunrise")
    assert await sweeps.poll_due(pipe.service) == 0  # not due yet
    for _ in range(5):
        clock.advance(seconds=CONFIG.poll_max_seconds)
        await sweeps.poll_due(pipe.service)
        if (await pipe.service.get(job.id)).state == "completed":
            break
    assert (await pipe.service.get(job.id)).state == "completed"
    assert pipe.evo.query_calls == [job.task_id] * 2  # processing, then completed
    assert (await pipe.wallet.balance(uid)).available == 5


async def test_a_failed_task_gives_the_credits_back(pipe: Pipeline, engine: AsyncEngine) -> None:
    uid = await funded_user(pipe.wallet, 30)
    pipe.kie.progression = ("generating", "fail")
    job = await pipe.service.start(uid, "sora-kie", prompt="x", duration=10)
    await kie_callback(pipe, job.id, job.task_id or "", state="fail")
    await kie_callback(pipe, job.id, job.task_id or "", state="fail")
    failed = await pipe.service.get(job.id)
    assert (failed.state, failed.failure) == ("failed", "provider")
    assert (await pipe.wallet.balance(uid)).available == 30
    assert await outbox_kinds(engine) == ["job.failed"]


async def test_a_rejected_submission_fails_at_once(pipe: Pipeline) -> None:
    uid = await funded_user(pipe.wallet, 30)
    pipe.kie.script_next("create", Reply(json={"code": 422, "msg": "prompt refused"}))
    job = await pipe.service.start(uid, "sora-kie", prompt="x", duration=10)
    assert (job.state, job.failure) == ("failed", "rejected")
    assert "prompt refused" in (job.failure_detail or "")
    assert (await pipe.wallet.balance(uid)).available == 30


async def test_an_unconfirmed_submission_is_never_resubmitted(pipe: Pipeline,
                                                              clock: FakeClock) -> None:
    uid = await funded_user(pipe.wallet, 30)
    pipe.kie.script_next("create", Reply(status=500, json={"code": 500, "msg": "oops"}))
    job = await pipe.service.start(uid, "sora-kie", prompt="x", duration=10)
    assert (job.state, job.task_id) == ("generating", None)
    clock.advance(minutes=CONFIG.deadline_minutes - 1)
    await sweeps.poll_due(pipe.service)
    assert len(pipe.kie.create_calls) == 1
    assert await sweeps.fail_overdue(pipe.service) == 0
    clock.advance(minutes=2)
    assert await sweeps.fail_overdue(pipe.service) == 1
    assert (await pipe.service.get(job.id)).failure == "deadline"
    assert (await pipe.wallet.balance(uid)).available == 30


async def test_start_refuses_what_it_cannot_pay_or_allow(pipe: Pipeline,
                                                         engine: AsyncEngine) -> None:
    uid = await funded_user(pipe.wallet, 12)
    with pytest.raises(InsufficientCredits) as err:
        await pipe.service.start(uid, "sora-kie", prompt="x", duration=10)
    assert err.value.missing == 8
    with pytest.raises(InvalidChoice):
        await pipe.service.start(uid, "sora-kie", prompt="x", duration=12)
    with pytest.raises(InvalidChoice):
        await pipe.service.start(uid, "i2v-kie", prompt="x")  # needs a photo
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(
            select(outbox).subquery()))).scalar() == 0
    assert pipe.kie.create_calls == []
    limited = pipe.with_config(replace(CONFIG, concurrency={"default": 2}))
    await limited.start(uid, "sora-evo", prompt="a")
    await limited.start(uid, "sora-evo", prompt="b")
    with pytest.raises(TooManyJobs):
        await limited.start(uid, "sora-evo", prompt="c")
    assert (await pipe.wallet.balance(uid)).held == 10


async def test_a_callback_and_polls_racing_complete_the_job_once(
    pipe: Pipeline, engine: AsyncEngine, clock: FakeClock,
) -> None:
    uid = await funded_user(pipe.wallet, 30)
    pipe.kie.progression = ("success",)
    job = await pipe.service.start(uid, "sora-kie", prompt="race", duration=10)
    clock.advance(minutes=5)
    await asyncio.gather(
        kie_callback(pipe, job.id, "kie-task-1"), kie_callback(pipe, job.id, "kie-task-1"),
        pipe.service.poll(job.id), sweeps.poll_due(pipe.service), pipe.service.poll(job.id))
    assert (await pipe.service.get(job.id)).state == "completed"
    async with engine.connect() as conn:
        settles = (await conn.execute(select(func.count()).select_from(ledger).where(
            ledger.c.kind == "settle"))).scalar()
    assert settles == 1
    assert await outbox_kinds(engine) == ["job.completed"]
    assert (await pipe.wallet.balance(uid)).available == 10


async def test_late_and_out_of_order_callbacks_change_nothing(pipe: Pipeline,
                                                              clock: FakeClock) -> None:
    uid = await funded_user(pipe.wallet, 30)
    pipe.kie.progression = ("success",)
    job = await pipe.service.start(uid, "sora-kie", prompt="x", duration=10)
    clock.advance(minutes=CONFIG.deadline_minutes + 1)
    assert await sweeps.fail_overdue(pipe.service) == 1
    await kie_callback(pipe, job.id, "kie-task-1")  # the result arrives after the deadline
    await kie_callback(pipe, job.id, "kie-task-1", state="generating")
    assert (await pipe.service.get(job.id)).state == "failed"
    assert (await pipe.wallet.balance(uid)).available == 30
    await pipe.service.on_callback("evolink", job.id, pipe.service.providers[
        "kie"].parse_callback({}, pipe.kie.callback_body("kie-task-1")))  # wrong provider


async def test_too_large_result_fails_then_retries_storage_without_a_new_task(
    pipe: Pipeline, engine: AsyncEngine,
) -> None:
    uid = await funded_user(pipe.wallet, 30)
    pipe.kie.progression = ("success",)
    small = pipe.with_config(replace(CONFIG, result_max_bytes=100))
    job = await small.start(uid, "sora-kie", prompt="x", duration=10)
    await small.poll(job.id)
    failed = await small.get(job.id)
    assert (failed.state, failed.failure, failed.retryable) == ("failed", "storage", True)
    assert (await pipe.wallet.balance(uid)).available == 30
    assert list((pipe.storage.root).rglob("*.mp4")) == []
    await pipe.service.retry_storage(job.id)
    assert (await pipe.service.get(job.id)).state == "completed"
    assert len(pipe.kie.create_calls) == 1
    assert (await pipe.wallet.balance(uid)).available == 10
    assert await outbox_kinds(engine) == ["job.failed", "job.completed"]


async def test_a_result_on_a_private_address_is_refused(pipe: Pipeline) -> None:
    uid = await funded_user(pipe.wallet, 30)
    pipe.kie.progression = ("success",)
    strict = pipe.with_config(CONFIG, allow_fakes=False)
    job = await strict.start(uid, "sora-kie", prompt="x", duration=10)
    await strict.poll(job.id)
    failed = await strict.get(job.id)
    assert (failed.state, failed.failure) == ("failed", "storage")
    assert "UnsafeURL" in (failed.failure_detail or "")
    assert (await pipe.wallet.balance(uid)).available == 30


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_a_try_on_job_sends_photos_inline_and_stores_the_images(
    engine: AsyncEngine, wallet: Wallet, http: httpx.AsyncClient, clock: FakeClock,
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path / "media", public_base="http://127.0.0.1:9",
                           link_secret="x" * 32)
    model = ModelConfig(id="tryon", name="Try-on", provider="image", kind="try-on", credits=3,
                        provider_model="gemini-2.5-flash-image")
    async with ImageFake() as fake:
        service = JobService(
            engine=engine, wallet=wallet, catalogue=Catalogue([model]),
            providers={"image": ImageClient(http, api_key=fake.api_key, base_url=fake.url)},
            storage=storage, http=http, config=CONFIG, public_url="http://127.0.0.1:9",
            callback_secret="cb", clock=clock)
        keys = []
        for name in ("person", "shirt"):
            key = f"uploads/{name}.png"
            await storage.put(key, _one(PNG_1X1), content_type="image/png")
            keys.append(key)
        uid = await funded_user(wallet, 3)
        job = await service.start(uid, "tryon", prompt="wear the shirt", image_keys=keys)
        sent = fake.calls[0]["messages"][0]["content"]
    assert [p["type"] for p in sent] == ["text", "image_url", "image_url"]
    assert sent[1]["image_url"]["url"] == PNG_DATA_URL
    assert job.state == "completed"
    assert job.result_keys is not None
    assert job.result_keys[0].endswith(".png")
    assert storage.file_path(job.result_keys[0]).read_bytes() == PNG_1X1
    assert job.thumbnail_key is None
    assert (await wallet.balance(uid)).available == 0


async def test_cleanup_deletes_old_failures_and_archives_old_results(
    pipe: Pipeline, engine: AsyncEngine, clock: FakeClock,
) -> None:
    uid = await funded_user(pipe.wallet, 60)
    pipe.kie.progression = ("success",)
    done = await pipe.service.start(uid, "sora-kie", prompt="keep", duration=10)
    await pipe.service.poll(done.id)
    pipe.kie.script_next("create", Reply(json={"code": 422, "msg": "no"}))
    failed = await pipe.service.start(uid, "sora-kie", prompt="drop", duration=10)
    done = await pipe.service.get(done.id)
    assert (done.state, failed.state) == ("completed", "failed")
    files = [pipe.storage.file_path(k) for k in [*(done.result_keys or []), done.thumbnail_key
                                                 or ""]]
    assert all(f.exists() for f in files)
    clock.advance(days=CONFIG.failed_retention_days - 1)
    assert await sweeps.cleanup(pipe.service) == (0, 0)
    clock.advance(days=2)
    assert await sweeps.cleanup(pipe.service) == (1, 0)
    clock.advance(days=CONFIG.completed_retention_days)
    assert await sweeps.cleanup(pipe.service) == (0, 1)
    assert await sweeps.cleanup(pipe.service) == (0, 0)
    assert not any(f.exists() for f in files)
    recent = await pipe.service.recent(uid)
    assert [j.id for j in recent] == [done.id]
    async with engine.connect() as conn:
        assert (await conn.execute(select(jobs.c.archived).where(
            jobs.c.id == done.id))).scalar() is True


def test_a_job_token_is_checked_in_constant_time_and_never_raises(pipe: Pipeline) -> None:
    good = pipe.service.job_token("kie", 7)
    assert pipe.service.check_token("kie", 7, good)
    assert not pipe.service.check_token("kie", 8, good)
    assert not pipe.service.check_token("evolink", 7, good)
    assert not pipe.service.check_token("kie", 7, "éé")


class EagerProvider:
    """A provider whose signed success callback lands before its create_task returns."""

    name = "eager"

    def __init__(self, result_url: str) -> None:
        self.result_url = result_url
        self.service: JobService | None = None

    async def create_task(self, req: TaskRequest) -> TaskStatus:
        assert self.service is not None
        assert req.callback_url is not None
        job_id = int(parse_qs(urlsplit(req.callback_url).query)["job"][0])
        done = TaskStatus(task_id="t1", state=TaskState.SUCCEEDED, progress=100,
                          result_urls=(self.result_url,))
        await self.service.on_callback(self.name, job_id, CallbackHint(
            task_id="t1", verified=True, status=done, body_signed=True))
        return TaskStatus(task_id="t1", state=TaskState.PENDING)

    async def query_task(self, task_id: str) -> TaskStatus:
        raise AssertionError("the signed callback was enough; no poll expected")

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackHint:
        raise AssertionError("not used")


async def test_a_callback_before_create_task_returns_completes_the_job(
    pipe: Pipeline, engine: AsyncEngine, clock: FakeClock,
) -> None:
    eager = EagerProvider(f"{pipe.kie.url}/files/x.mp4")
    model = ModelConfig(id="eager", name="Eager", provider="eager", kind="text-to-video",
                        credits=4)
    service = JobService(
        engine=engine, wallet=pipe.wallet, catalogue=Catalogue([model]),
        providers={"eager": eager}, storage=pipe.storage, http=pipe.service.http,
        config=replace(CONFIG, allow_hosts=(pipe.kie.url,)), public_url="http://127.0.0.1:9",
        callback_secret="cb", clock=clock)
    eager.service = service
    uid = await funded_user(pipe.wallet, 4)
    job = await service.start(uid, "eager", prompt="fast")
    assert (job.state, job.task_id) == ("completed", "t1")
    assert (await pipe.wallet.balance(uid)).available == 0
    assert await outbox_kinds(engine) == ["job.completed"]
