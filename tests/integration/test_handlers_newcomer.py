"""The first hour's conversation points (issue 13) through `Handlers.handle`: /cancel right
after Confirm says what happens to the job (cancelled with the credits back before the provider
accepted it, running on after), a free-text step shows no numbered choice on a channel without
buttons and takes "1" as text, plural forms in the confirmation, and every notification ends
with the main menu (checked by the harness's `news`)."""

from __future__ import annotations

from pathlib import Path

from bot.app import http_client
from core.config import ModelConfig, load_config
from handlers import Text
from handlers.state import Step
from providers import KieClient, RetryPolicy
from tests.factories import TestDatabase
from tests.fakes import Reply
from tests.fakes.kie import KieFake
from tests.integration._chat import ROOT, User, chatting, choices, texts

SHIPPED = load_config(ROOT / "config.toml", environ={}).models
KIE = ModelConfig(id="sora-kie", name="Sora (kie)", provider="kie", kind="text-to-video",
                  provider_model="sora-2-text-to-video", credits=2, durations=(10,),
                  aspect_ratios=("16:9",))


async def order(user: User) -> int:
    """A text-to-video job on the kie model, confirmed; its id."""
    await user.send("/generate")
    await user.press("kind:text-to-video")
    await user.send("a cat surfing")
    confirm = texts(await user.press("model:sora-kie"))
    assert "Cost: 2 credits\nBalance now: 10 credits\nBalance after: 8 credits" in confirm
    [status] = await user.press("confirm")
    assert isinstance(status, Text)
    assert status.track_job is not None
    return status.track_job


async def test_cancel_right_after_confirm_says_what_happens_to_the_job(
        database: TestDatabase, tmp_path: Path) -> None:
    async with KieFake(progression=("generating", "generating", "success")) as kie, \
            http_client() as http:
        client = KieClient(http, api_key=kie.api_key, base_url=kie.url,
                           retry=RetryPolicy(attempts=1, backoff=0.01))
        async with chatting(database, tmp_path, http=http, providers={"kie": client},
                            models=(*SHIPPED, KIE)) as h:
            user = h.user()
            # The provider never confirmed the task (a 500 after the request was sent).
            kie.script_next("create", Reply(status=500, json={"code": 500, "msg": "oops"}))
            first = await order(user)
            assert await user.available() == 8
            out = texts(await user.send("/cancel"))
            assert f"#{first} was not started yet, so it is cancelled: your 2 credits are " \
                   "back." in out
            assert out.endswith("Cancelled.\nWhat would you like to do?")
            job = await h.app.jobs.get(first)
            assert (job.state, job.failure) == ("failed", "cancelled")
            assert await user.available() == 10

            # Accepted by the provider: it cannot be stopped, and the user is told so.
            second = await order(user)
            out = texts(await user.send("/cancel"))
            assert f"#{second} is already being made and cannot be stopped; your video " \
                   "will arrive here" in out
            assert (await h.app.jobs.get(second)).state == "generating"
            assert await user.available() == 8

            # The status message of the cancelled job ends with the outcome.
            status = await h.handlers.job_status(first)
            assert status is not None
            assert status[1].text == f"✖ #{first} cancelled, 2 credits back"


async def test_a_free_text_step_shows_no_numbered_choice_without_buttons(
        database: TestDatabase, tmp_path: Path) -> None:
    async with chatting(database, tmp_path) as h:
        user = h.user("con", channel="console")
        await user.send("/start")
        await user.send("/generate")
        asked = await user.press("kind:text-to-video")
        assert choices(asked) == []  # nothing numbered: a typed "1" is the prompt
        assert [m.free_text for m in asked if isinstance(m, Text)] == [True]
        assert "/cancel" in texts(asked)
        models = await user.send("1")
        assert "Choose a model" in texts(models)
        assert (await user.chat()).draft.prompt == "1"
        assert "Cancelled." in texts(await user.send("/cancel"))  # /cancel always works
        assert (await user.chat()).step is Step.IDLE

        # /redeem without a code: the code comes next, as text, in Chinese too.
        zh = h.user("zh", channel="console", language="zh")
        await zh.send("/start")
        code = await h.app.wallet.create_code(3, max_uses=1)
        asked = await zh.send("/redeem")
        assert "请输入兑换码" in texts(asked)
        assert choices(asked) == []
        assert "+3 积分" in texts(await zh.send(code.code))


async def test_singular_and_plural_in_both_languages(database: TestDatabase,
                                                     tmp_path: Path) -> None:
    async with chatting(database, tmp_path,
                        env={"VIDEOFLY__CREDITS__NEW_USER_BONUS": "1"}) as h:
        en, zh = h.user("e"), h.user("z", language="zh")
        assert "You have 1 credit to start, free" in texts(await en.send("/start"))
        assert "Available: 1 credit\nReserved for running jobs: 0 credits" in \
            texts(await en.send("/balance"))
        assert "+2 credits" in texts(await en.send("/checkin"))
        assert "Available: 3 credits" in texts(await en.send("/balance"))
        assert "免费送你 1 积分" in texts(await zh.send("/start"))
        assert "可用：1 积分" in texts(await zh.send("/balance"))
