"""/videos through `Handlers.handle`: re-send a finished job, retry a job whose result could not
be stored, make a failed job again through the same confirmation, and refuse other users' jobs.
Failure news (`job.failed`) renders with the reason and the credits back."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from generation import JobService
from handlers import Media, Text
from handlers.state import Step
from tests.factories import TestDatabase
from tests.integration._chat import chatting, choices, texts
from tests.integration.test_handlers_generate import confirm, to_confirm


async def test_resend_a_finished_video_and_refuse_someone_elses(database: TestDatabase,
                                                                tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user, other = h.user("100"), h.user("101")
        await to_confirm(user)
        job_id = await confirm(user)
        await h.finished(job_id)
        listing = await user.send("/videos")
        assert f"#{job_id} Demo (offline, image to video) · done" in texts(listing)
        assert choices(listing) == [f"video:resend:{job_id}"]
        [video] = await user.press(f"vs:{job_id}")
        assert isinstance(video, Media)
        assert video.kind == "video"
        assert "balance 9" in video.caption
        await other.send("/start")
        assert texts(await other.press(f"vs:{job_id}")) == "I can't find that."
        assert texts(await other.press(f"va:{job_id}")) == "I can't find that."
        assert "You have no videos yet" in texts(await other.send("/videos"))
        job = await h.app.jobs.get(job_id)
        assert job.result_keys is not None
        await h.app.storage.delete(job.result_keys[0])  # archived meanwhile
        assert "no longer stored" in texts(await user.press(f"vs:{job_id}"))


async def test_retry_a_job_whose_result_could_not_be_stored(database: TestDatabase,
                                                            tmp_path: Path) -> None:
    # Results over 1000 bytes cannot be stored: the job fails with "storage", credits back.
    async with chatting(database, tmp_path,
                        env={"VIDEOFLY__GENERATION__RESULT_MAX_BYTES": "1000"}) as h:
        user = h.user()
        await to_confirm(user)
        job_id = await confirm(user)
        failed = await h.finished(job_id)
        assert (failed.state, failed.failure, failed.retryable) == ("failed", "storage", True)
        uid = await user.id()
        [news] = await h.news(uid, "job.failed")
        assert isinstance(news, Text)
        assert "the result could not be saved" in news.text
        assert "1 credits are back" in news.text
        assert choices([news]) == [f"video:retry:{job_id}"]
        assert await user.available() == 10
        assert choices(await user.send("/videos")) == [f"video:retry:{job_id}"]

        # The operator raises the limit; the retry stores the result the provider still has.
        jobs = h.app.jobs
        roomy = JobService(engine=jobs.engine, wallet=jobs.wallet, catalogue=jobs.catalogue,
                           providers=jobs.providers, storage=jobs.storage, http=jobs.http,
                           config=replace(jobs.config, result_max_bytes=500_000_000),
                           public_url=h.app.config.http.public_url, callback_secret="unused",
                           clock=jobs.clock)
        out = await user.press(f"vr:{job_id}", handlers=h.with_deps(jobs=roomy))
        assert "being saved again" in texts(out)
        assert (await h.app.jobs.get(job_id)).state == "completed"
        assert [k for k, _ in await h.outbox(uid)] == ["job.failed", "job.completed"]
        assert await user.available() == 9
        assert "cannot be retried" in texts(await user.press(f"vr:{job_id}"))


async def test_make_a_failed_job_again(database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        await to_confirm(user)
        job_id = await confirm(user)
        # What the deadline sweep does to a job that never finished.
        assert await h.app.jobs.fail(job_id, "deadline", "no result before the deadline")
        uid = await user.id()
        assert "it took too long" in texts(await h.news(uid, "job.failed"))
        assert choices(await user.send("/videos")) == [f"video:again:{job_id}"]
        question = await user.press(f"va:{job_id}")
        assert "Cost: 1 credits" in texts(question)
        assert "Balance after: 9" in texts(question)
        assert (await user.chat()).step is Step.CONFIRM
        again = await confirm(user)
        assert again != job_id
        new, old = await h.finished(again), await h.app.jobs.get(job_id)
        assert new.state == "completed"
        assert (new.inputs, new.prompt, new.aspect_ratio) == (old.inputs, old.prompt,
                                                              old.aspect_ratio)
        # Its photos gone (cleaned up), a failed job cannot be made again.
        assert await h.app.jobs.fail(again, "deadline", "x") is False
        for key in old.inputs:
            await h.app.storage.delete(key)
        assert "no longer stored" in texts(await user.press(f"va:{job_id}"))
