"""The first hour in the terminal, as a newcomer meets it: `videofly chat` from the shipped
config.toml in a fresh directory, typed lines on stdin, the printed conversation on stdout.
All three kinds of job, offline, in English and in Chinese: text to video (a Chinese prompt
with an emoji and a terminal colour code), photo to video (a mistyped path first, and "1" as
the prompt), and a virtual try-on whose picture is saved as a JPEG. After each result the
main menu comes back and its numbers start the next job; /redeem then the code works; the
prompt step shows no numbered choice. On the test database (SQLite, or PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import av
import pytest
from PIL import Image

from handlers.messages import t, tn
from providers._compose import BAND, COLUMN, PERSON
from tests.e2e.conftest import jpeg
from tests.e2e.test_console import WAIT, Terminal
from tests.factories import TestDatabase

ROOT = Path(__file__).resolve().parents[2]
LANG = {"en": "en_US.UTF-8", "zh": "zh_CN.UTF-8"}

pytestmark = pytest.mark.slow


@asynccontextmanager
async def terminal(database: TestDatabase, cwd: Path, lang: str) -> AsyncIterator[Terminal]:
    """`videofly chat` in `cwd` with $LANG for `lang`; it must end cleanly on /quit."""
    script = Path(sys.executable).with_name("videofly")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VIDEOFLY", "LC_", "LANG")) and k != "DATABASE_URL"}
    env |= {"DATABASE_URL": database.url, "LANG": LANG[lang],
            "VIDEOFLY__GENERATION__DEMO_DELAY_SECONDS": "0.3"}
    proc = await asyncio.create_subprocess_exec(
        *cmd, "--config", str(ROOT / "config.toml"), "chat", cwd=cwd, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    term = Terminal(proc, lang)
    try:
        yield term
        await term.type("/quit")
        await term.expect(t(term.lang, "console.bye"))  # in the language the user chose
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.stderr is not None
        async with asyncio.timeout(WAIT):
            err = (await proc.stderr.read()).decode()
            await proc.wait()
            await term.done()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in term.out + err


async def saved_file(term: Terminal, lang: str, cwd: Path) -> Path:
    """The path the chat printed for the delivered result."""
    lead = t(lang, "console.saved", path="")
    block = await term.expect(lead)
    line = next(li for li in block.splitlines() if li.startswith(lead))
    return cwd / line[len(lead):].strip()


async def confirm(term: Terminal, lang: str, block: str) -> None:
    """Chooses the demo model (and 16:9 where asked), confirms, and waits for the result."""
    assert "Demo" in block
    await term.choose(block, "Demo")
    nxt = await term.expect("\n1. ")
    if t(lang, "gen.aspect") in nxt:
        await term.choose(nxt, "16:9")
        nxt = await term.expect(t(lang, "btn.confirm"))
    await term.choose(nxt, t(lang, "btn.confirm"))


def frames(path: Path) -> int:
    with av.open(str(path)) as clip:
        return sum(1 for _ in clip.decode(video=0))


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_every_kind_of_job_offline(database: TestDatabase, tmp_path: Path,
                                         lang: str) -> None:
    person, shirt = tmp_path / "me.jpg", tmp_path / "shirt.png"
    person.write_bytes(jpeg(300, 400))
    Image.new("RGB", (200, 200), (200, 30, 60)).save(shirt)
    async with terminal(database, tmp_path, lang) as term:
        menu = await term.expect(t(lang, "menu.prompt"))

        # Text to video, with Chinese, an emoji and an ESC colour code in the prompt.
        await term.choose(menu, t(lang, "btn.generate"))
        kinds = await term.expect(t(lang, "gen.kind"))
        for kind in ("text-to-video", "image-to-video", "try-on"):
            assert t(lang, f"kind.{kind}") in kinds
        await term.choose(kinds, t(lang, "kind.text-to-video"))
        await term.expect(t(lang, "gen.prompt"))
        await term.type("一只猫在冲浪 🎉 \x1b[31mred\x1b[0m")
        await confirm(term, lang, await term.expect(t(lang, "gen.model")))
        clip = await saved_file(term, lang, tmp_path)
        assert clip.suffix == ".mp4"
        assert frames(clip) > 0

        # Photo to video, from the menu that came back after the clip.
        menu = await term.expect(t(lang, "menu.prompt"))
        await term.choose(menu, t(lang, "btn.generate"))
        await term.choose(await term.expect(t(lang, "gen.kind")),
                          t(lang, "kind.image-to-video"))
        await term.expect(t(lang, "gen.photo"))
        await term.type("/no/such/dir/me.jpg")  # absolute, mistyped
        await term.expect(t(lang, "console.no_file", path="/no/such/dir/me.jpg"))
        await term.type("photos/me.jpg")  # relative, mistyped
        await term.expect(t(lang, "console.no_file", path="photos/me.jpg"))
        await term.type(str(person))
        prompt = await term.expect(t(lang, "gen.prompt"))
        assert "1. " not in prompt  # no numbered choice at a free-text step
        await term.type("1")  # the prompt, not a menu choice
        await confirm(term, lang, await term.expect(t(lang, "gen.model")))
        clip = await saved_file(term, lang, tmp_path)
        assert clip.suffix == ".mp4"
        assert frames(clip) > 0

        # Virtual try-on: a person, a garment (a free user's one), the look, the model.
        await term.choose(await term.expect(t(lang, "menu.prompt")), t(lang, "btn.generate"))
        await term.choose(await term.expect(t(lang, "gen.kind")), t(lang, "kind.try-on"))
        await term.expect(t(lang, "gen.person"))
        await term.type(str(person))
        await term.expect(tn(lang, "gen.clothes", 1))
        await term.type(str(shirt))
        await term.expect(t(lang, "gen.prompt_tryon"))
        await term.type("影棚照片，全身")
        await confirm(term, lang, await term.expect(t(lang, "gen.model")))
        picture = await saved_file(term, lang, tmp_path)
        assert picture.suffix == ".jpg"
        with Image.open(picture) as img:
            assert img.format == "JPEG"
            assert img.size == (PERSON[0] + COLUMN, PERSON[1] + BAND)

        await term.expect(t(lang, "menu.prompt"))

        # /redeem, then the code on its own line (the terminal's user is its operator).
        await term.type("/code 5")
        lead = t(lang, "admin.code", code="@", credits=tn(lang, "n.credits", 5),
                 uses=tn(lang, "n.uses", 1), expiry="").split("@")[0]
        made = await term.expect(lead)
        found = re.search(re.escape(lead) + r"([A-Z0-9-]{4,32})", made)
        assert found is not None, made
        code = found.group(1)
        await term.type("/redeem")
        await term.expect(t(lang, "redeem.ask"))
        await term.type(code)
        await term.expect(t(lang, "redeem.done", credits=tn(lang, "n.credits", 5), balance=12))

        # Three jobs at 1 credit each, from the 10 free credits, and the code's 5.
        await term.type("/balance")
        await term.expect(t(lang, "balance.text", available=tn(lang, "n.credits", 12),
                                 held=tn(lang, "n.credits", 0)))


async def to_the_models(term: Terminal, lang: str, menu: str, prompt: str) -> str:
    """From the main menu `menu`: Make → text to video → `prompt`; the model choice shown."""
    await term.choose(menu, t(lang, "btn.generate"))
    await term.choose(await term.expect(t(lang, "gen.kind")), t(lang, "kind.text-to-video"))
    await term.expect(t(lang, "gen.prompt"))
    await term.type(prompt)
    return await term.expect(t(lang, "gen.model"))


async def test_after_language_zh_the_saved_line_is_chinese(database: TestDatabase,
                                                            tmp_path: Path) -> None:
    """Issue 13: an English terminal ($LANG) switched with /language: the result that arrives
    afterwards (through the outbox) says where it was saved in Chinese; the 1-credit model
    says "1 credit" before the switch and "1 积分" after it."""
    async with terminal(database, tmp_path, "en") as term:
        menu = await term.expect(t("en", "menu.prompt"))
        models = await to_the_models(term, "en", menu, "a cat surfing")
        assert re.search(r"Demo[^\n]* · 1 credit$", models, re.MULTILINE), models
        await term.type("/cancel")
        await term.expect(t("en", "cancelled"))

        await term.type("/language")
        await term.choose(await term.expect(t("en", "lang.choose")), t("zh", "lang.zh"))
        menu = await term.expect(t("zh", "lang.set"))
        term.lang = "zh"  # the goodbye too
        models = await to_the_models(term, "zh", menu, "一只猫在冲浪")
        assert re.search(r"Demo[^\n]* · 1 积分$", models, re.MULTILINE), models
        await confirm(term, "zh", models)
        clip = await saved_file(term, "zh", tmp_path)
        assert clip.suffix == ".mp4"
        assert clip.is_file()
        switched = term.out.index(t("zh", "lang.set"))
        assert t("en", "console.saved", path="") not in term.out[switched:]
