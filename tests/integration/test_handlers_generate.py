"""The generate conversation through `Handlers.handle`, on the real app with the demo provider:
first contact, the whole photo-to-video flow to the delivered video, credits short, cancel at
every step, out-of-date buttons, the idle timeout, a restart mid-conversation, and a double
Confirm racing on two instances."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update

from core.db import write
from generation.tables import jobs
from handlers import Media, Outbound, Text
from handlers.state import Step
from handlers.tables import chats, job_messages
from tests.factories import TestDatabase
from tests.integration._chat import PHOTO, User, chatting, choices, texts
from wallet.tables import grants


async def to_confirm(user: User) -> list[Outbound]:
    """Drives a new photo-to-video draft to its confirmation."""
    await user.send("/generate")
    await user.press("k:image-to-video")
    await user.photo(PHOTO)
    await user.send("a slow pan over a gradient")
    await user.press("m:demo-i2v")
    return list(await user.press("a:9:16"))


async def confirm(user: User) -> int:
    """Presses Confirm; the id of the job whose status message came back."""
    [status] = await user.press("go")
    assert isinstance(status, Text)
    assert status.track_job is not None
    return status.track_job


async def test_first_contact_welcomes_once_and_grants_the_bonus_once(
        database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        out = await user.send("/start")
        assert "Welcome to VideoFly" in texts(out)
        assert "You have 10 credits to start, free" in texts(out)
        assert "2026-03-31" in texts(out)
        assert "generate" in choices(out)  # the main menu
        assert await user.available() == 10
        again = await user.send("/start")
        assert "Welcome" not in texts(again)
        assert "What would you like to do?" in texts(again)
        async with h.app.engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(grants).where(
                grants.c.source == "bonus"))).scalar_one()
        assert count == 1
        # A Chinese-speaking user gets Chinese, and keeps it.
        zh = h.user("200", language="zh-hans")
        assert "欢迎使用 VideoFly" in texts(await zh.send("/balance"))
        zh.language = "en"
        assert "可用" in texts(await zh.send("/balance"))


async def test_photo_to_video_from_menu_to_the_delivered_video(database: TestDatabase,
                                                               tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        await user.send("/start")
        kinds = await user.press("g")
        assert choices(kinds) == ["kind:text-to-video", "kind:image-to-video", "kind:try-on",
                                  "cancel"]
        assert "Send the photo" in texts(await user.press("k:image-to-video"))
        assert "Describe what should happen" in texts(await user.photo(PHOTO))
        models = await user.send("a slow pan over a gradient")
        assert next(b.label for m in models if isinstance(m, Text) for row in m.buttons
                for b in row) == "Demo (offline, image to video) · 1 credit"
        shapes = await user.press("m:demo-i2v")  # one duration: not asked
        assert choices(shapes) == ["aspect:16:9", "aspect:9:16", "cancel"]
        confirm = texts(await user.press("a:9:16"))
        assert "Cost: 1 credit\n" in confirm
        assert "Balance now: 10" in confirm
        assert "Balance after: 9" in confirm
        assert "4 s, 9:16" in confirm

        started = await user.press("go")
        assert len(started) == 1
        assert isinstance(started[0], Text)
        job_id = started[0].track_job
        assert job_id is not None
        assert f"#{job_id}" in started[0].text
        assert (await user.chat()).step is Step.IDLE

        job = await h.finished(job_id)
        assert job.state == "completed", (job.failure, job.failure_detail)
        assert (job.duration, job.aspect_ratio, job.prompt) == (4, "9:16",
                                                                "a slow pan over a gradient")
        uid = await user.id()
        [video] = await h.news(uid, "job.completed")
        assert isinstance(video, Media)
        assert video.kind == "video"
        assert job.result_keys is not None
        assert video.key == job.result_keys[0]
        assert video.thumbnail_key == job.thumbnail_key
        assert "1 credit spent" in video.caption
        assert "balance 9" in video.caption
        # The status message ends with the outcome.
        ended = Text(text=f"✅ #{job_id} delivered")
        assert await h.handlers.job_status(job_id) == ("delivered", ended)
        assert "Available: 9 credits" in texts(await user.send("/balance"))


async def test_status_line_and_status_message(database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        await to_confirm(user)
        job_id = await confirm(user)
        await h.finished(job_id)
        for state, progress, key, shown in (("pending", None, "queued", "queued"),
                                            ("generating", 40, "making:40:m0", "40%"),
                                            ("generating", None, "making:0:m0", "making"),
                                            ("uploading", 100, "uploading", "almost ready"),
                                            ("completed", 100, "delivered", "delivered")):
            async with write(h.app.engine) as conn:  # the job's states, set by hand
                await conn.execute(update(jobs).where(jobs.c.id == job_id).values(
                    state=state, progress=progress))
            status = await h.handlers.job_status(job_id)
            assert status is not None
            assert status[0] == key
            assert shown in status[1].text
        await h.handlers.remember_status(job_id, channel="telegram", address="100",
                                         message_id="7")
        await h.handlers.remember_status(job_id, channel="telegram", address="100",
                                         message_id="8")
        async with h.app.engine.connect() as conn:
            rows = (await conn.execute(select(job_messages.c.message_id,
                                              job_messages.c.shown))).all()
        assert [tuple(r) for r in rows] == [("8", "delivered")]  # what it shows when sent


async def test_credits_short_says_what_is_missing_and_confirm_works_after_checkin(
        database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path,
                        env={"VIDEOFLY__CREDITS__NEW_USER_BONUS": "0"}) as h:
        user = h.user()
        shown = await to_confirm(user)
        confirm = texts(shown)
        assert "Balance after" not in confirm
        assert "You are 1 credit short" in confirm
        assert choices(shown) == ["topup", "checkin", "cancel"]  # no Confirm to be refused
        assert (await user.chat()).step is Step.CONFIRM  # the draft is kept
        after = await user.press("checkin")
        assert "+2 credits" in texts(after)
        assert "Balance after: 1 credit" in texts(after)  # the confirmation again, now payable
        assert "confirm" in choices(after)
        started = await user.press("confirm")
        job_id = started[0].track_job  # type: ignore[union-attr]
        assert job_id is not None
        assert (await h.finished(job_id)).state == "completed"
        assert await user.available() == 1


STEPS: list[tuple[str | bytes, Step]] = [
    ("/generate", Step.KIND), ("k:image-to-video", Step.PHOTO), (PHOTO, Step.PROMPT),
    ("a prompt", Step.MODEL), ("m:demo-i2v", Step.ASPECT), ("a:16:9", Step.CONFIRM)]


async def test_cancel_works_at_every_step_and_old_buttons_are_out_of_date(
        database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        for depth in range(1, len(STEPS) + 1):
            for action, _ in STEPS[:depth]:
                if isinstance(action, bytes):
                    await user.photo(action)
                elif action.startswith(("k:", "m:", "a:")):
                    await user.press(action)
                else:
                    await user.send(action)
            assert (await user.chat()).step is STEPS[depth - 1][1]
            cancel = "x" if depth % 2 else "/cancel"
            out = await (user.press(cancel) if cancel == "x" else user.send(cancel))
            assert "Cancelled." in texts(out)
            assert "generate" in choices(out)
            chat = await user.chat()
            assert chat.step is Step.IDLE
            assert chat.draft.kind is None
        stale = await user.press("go")
        assert "out of date" in texts(stale)
        assert "generate" in choices(stale)
        async with h.app.engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(jobs))).scalar() == 0


async def test_stale_buttons_and_free_text_repeat_the_question(database: TestDatabase,
                                                               tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        await user.send("/generate")
        await user.press("k:text-to-video")
        out = await user.press("k:image-to-video")  # the kind menu again, now out of date
        assert "out of date" in texts(out)
        assert "Describe what should happen" in texts(out)
        await user.send("a cat")
        again = await user.send("what now?")  # free text where a model button is expected
        assert texts(again) == "Choose a model:"
        assert "model:demo-t2v" in choices(again)
        assert "model:demo-i2v" not in choices(again)  # a model of another kind
        assert "out of date" in texts(await user.press("m:demo-i2v"))
        assert "out of date" in texts(await user.press("d:999"))


async def test_an_idle_conversation_times_out(database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        await user.send("/generate")
        await user.press("k:text-to-video")
        h.clock.advance(minutes=29)
        assert "Choose a model" in texts(await user.send("a cat"))  # not idle yet
        h.clock.advance(minutes=31)
        out = await user.press("m:demo-t2v")
        assert "timed out" in texts(out)
        assert "out of date" in texts(out)
        assert (await user.chat()).step is Step.IDLE


async def test_a_new_instance_continues_the_conversation(database: TestDatabase,
                                                         tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        await user.send("/generate")
        await user.press("k:image-to-video")
        await user.photo(PHOTO, caption="waves on a beach")  # the caption is the prompt
        restarted = h.with_deps()
        out = await user.press("m:demo-i2v", handlers=restarted)
        assert "Which shape?" in texts(out)
        confirm = texts(await user.press("a:16:9", handlers=h.with_deps()))
        assert "Cost: 1 credit\n" in confirm
        assert (await user.chat()).draft.prompt == "waves on a beach"


async def test_a_double_confirm_on_two_instances_starts_one_job(database: TestDatabase,
                                                                tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        await to_confirm(user)
        one, two = await asyncio.gather(user.press("go"), user.press("go", h.with_deps()))
        tracked = [m.track_job for m in [*one, *two] if isinstance(m, Text) and m.track_job]
        assert len(tracked) == 1
        assert "out of date" in texts([*one, *two])
        assert (await h.finished(tracked[0])).state == "completed"
        async with h.app.engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(jobs))).scalar() == 1


@pytest.mark.parametrize("data", [b"not an image at all", b"%PDF-1.4 ..."])
async def test_a_file_that_is_not_a_photo_is_refused(database: TestDatabase, tmp_path: Path,
                                                     data: bytes) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user()
        await user.send("/generate")
        await user.press("k:image-to-video")
        assert "JPEG, PNG or WEBP" in texts(await user.photo(data))
        assert (await user.chat()).step is Step.PHOTO


async def test_a_photo_over_the_download_limit_is_refused(database: TestDatabase,
                                                          tmp_path: Path) -> None:
    from tests.factories import BytesPhoto

    async with chatting(database, tmp_path) as h:
        user = h.user()
        await user.send("/generate")
        await user.press("k:image-to-video")
        big = BytesPhoto(PHOTO, declared=25 * 1024 * 1024)
        out = await user.send(photos=[big])
        assert "too large for me to download (limit 20 MB)" in texts(out)
        huge = BytesPhoto(b"\xff" * (20 * 1024 * 1024 + 1))  # the channel does not say
        assert "limit 20 MB" in texts(await user.send(photos=[huge]))


async def test_too_many_jobs_names_the_limit_and_writing_unblocks(database: TestDatabase,
                                                                  tmp_path: Path) -> None:
    async with chatting(database, tmp_path,
                        env={"VIDEOFLY__TIERS__FREE": "{ concurrency = 1 }"}) as h:
        user = h.user()
        await to_confirm(user)
        uid = await user.id()
        now = h.clock()
        async with write(h.app.engine) as conn:  # a job of the user's still running
            await conn.execute(insert(jobs).values(
                user_id=uid, model_id="demo-i2v", provider="demo", kind="image-to-video",
                prompt="p", inputs=[], credits=1, state="generating", deadline_at=now,
                created_at=now, updated_at=now))
            await conn.execute(update(chats).where(chats.c.user_id == uid).values(
                blocked_at=now))
        out = texts(await user.press("go"))
        assert "most jobs in progress at once (1)" in out
        assert (await user.chat()).step is Step.CONFIRM
        async with h.app.engine.connect() as conn:
            blocked = (await conn.execute(select(chats.c.blocked_at, chats.c.last_seen_at)
                                          .where(chats.c.user_id == uid))).one()
        assert blocked.blocked_at is None
        assert blocked.last_seen_at == now
