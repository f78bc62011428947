"""`videofly chat` as a user meets it: the installed command in a fresh working directory, the
shipped config.toml, typed lines on stdin, the printed conversation on stdout. First contact →
check-in → long lines (issue 9) → photo to video with a JPEG file → model → shape → confirm →
the saved video's path → /balance shows the spend. On the test database (SQLite, or PostgreSQL
when named)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import av
import pytest

from handlers.messages import t
from tests.e2e.conftest import jpeg
from tests.factories import TestDatabase

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0  # bound on one answer; the demo video takes about a second to render
MENU_LINE = re.compile(r"^(\d+)\. (.+)$", re.MULTILINE)

pytestmark = pytest.mark.slow


class Terminal:
    """The chat process, with what it printed so far."""

    def __init__(self, proc: asyncio.subprocess.Process, lang: str = "en") -> None:
        self.proc = proc
        self.lang = lang  # the user's language as the chat knows it (a test follows /language)
        self.out = ""
        self.seen = 0  # where the next `expect` starts looking
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := await self.proc.stdout.read(4096):
            self.out += chunk.decode()

    async def expect(self, text: str) -> str:
        """Waits (bounded) for `text` after the last match; returns the output up to its
        block's end."""
        async with asyncio.timeout(WAIT):
            while (at := self.out.find(text, self.seen)) < 0 or "\n\n" not in self.out[at:]:
                assert not self._reader.done(), f"chat ended before {text!r}:\n{self.out}"
                await asyncio.sleep(0.02)
        end = self.out.index("\n\n", at)
        block = self.out[self.seen:end]
        self.seen = end
        return block

    async def done(self) -> None:
        await self._reader

    async def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def choose(self, block: str, label: str) -> None:
        """Types the number of the last menu entry in `block` whose label contains `label`."""
        numbers = [n for n, shown in MENU_LINE.findall(block) if label in shown]
        assert numbers, f"no {label!r} in the menu:\n{block}"
        await self.type(numbers[-1])


async def test_the_whole_happy_path_in_the_terminal(database: TestDatabase,
                                                    tmp_path: Path) -> None:
    photo = tmp_path / "my photo.jpg"  # a space in the name: the path is typed unquoted
    photo.write_bytes(jpeg())
    script = Path(sys.executable).with_name("videofly")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VIDEOFLY", "LC_", "LANG")) and k != "DATABASE_URL"}
    env |= {"DATABASE_URL": database.url, "LANG": "en_US.UTF-8",
            "VIDEOFLY__GENERATION__DEMO_DELAY_SECONDS": "0.3"}
    proc = await asyncio.create_subprocess_exec(
        *cmd, "--config", str(ROOT / "config.toml"), "chat", cwd=tmp_path, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    term = Terminal(proc)
    try:
        menu = await term.expect(t("en", "menu.prompt"))
        assert t("en", "console.hello") in menu
        assert t("en", "welcome") in menu
        await term.type("/checkin")
        await term.expect(t("en", "checkin.done", credits="2 credits", balance=12))
        for line in ("a" * 300, "视" * 86):  # issue 9: over 255 bytes, not a path: text
            await term.type(line)
            await term.expect(t("en", "menu.hint"))
        await term.choose(menu, t("en", "btn.generate"))
        await term.choose(await term.expect(t("en", "kind.image-to-video")),
                          t("en", "kind.image-to-video"))
        await term.expect(t("en", "gen.photo"))
        await term.type(str(photo))
        await term.expect(t("en", "gen.prompt"))
        await term.type("p" * 10_000)  # a 10,000-character prompt: refused, the chat goes on
        await term.expect(t("en", "gen.prompt_too_long", max=2000))
        await term.type("a slow pan over a gradient")
        await term.choose(await term.expect(t("en", "gen.model")), "Demo")
        await term.choose(await term.expect(t("en", "gen.aspect")), "16:9")
        await term.choose(await term.expect(t("en", "btn.confirm")), t("en", "btn.confirm"))
        saved = await term.expect(t("en", "console.saved", path="data/videos/"))
        path = tmp_path / saved.rsplit(t("en", "console.saved", path=""), 1)[1].strip()
        assert path.suffix == ".mp4"
        with av.open(str(path)) as clip:
            assert clip.streams.video
            assert sum(1 for _ in clip.decode(video=0)) > 0
        await term.type("/balance")
        await term.expect(t("en", "balance.text", available="11 credits", held="0 credits"))
        await term.type("/quit")
        await term.expect(t("en", "console.bye"))
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.stderr is not None
        async with asyncio.timeout(WAIT):
            err = await proc.stderr.read()
            await proc.wait()
            await term.done()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in term.out + err.decode()
    log = (tmp_path / "data" / "videofly.log").read_text()
    assert "console session on http://127.0.0.1:" in log  # logs went to the file, not here
    assert "console session" not in term.out
