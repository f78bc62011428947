"""`videofly chat`: the whole service in one process, talking to one user in the terminal.

A free port on 127.0.0.1 is bound first and that address becomes this process's public URL
(the demo provider calls back through it, and fetches its clip from it), whatever `[http]`
says: a terminal session is never reached from outside. Then the app is built as `videofly run`
builds it, with the console as its only channel and the outbox dispatcher. The welcome and the
first menu come first; the HTTP server and the scheduler start right after, before the first
typed line is handled (a newcomer waits for the menu, not for aiohttp's import). Answers to
a typed line are printed at once; what happens later (the video is ready, the status moved on)
arrives through the outbox dispatcher, as on Telegram.

Each typed line goes through the shared answer path (`bot.answer.Answerer`), as WeChat's and
Telegram's updates do: a number picks from the numbered menu kept with the chat row. The answer
path and the dispatcher share one in-process `Turns` (no lease: one terminal, one process), so
a notice that shows a menu goes out between two answers, never inside one.

Stdin is read by a daemon thread that hands lines to the event loop: a blocked `readline` then
never holds up the exit, and it works alike for a terminal, a pipe or a file. The session ends
on end of input, `/quit` (or `/exit`), or Ctrl-C (SIGINT) and SIGTERM, each time cleanly: the
dispatcher finishes the message in flight, the server and the scheduler stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from core.config import Config, Secrets
from handlers import Inbound
from handlers.messages import t
from handlers.notify import user_lang

from .answer import Answerer
from .app import build_app, serve
from .console import ADDRESS, ConsoleChannel, missing_path
from .dispatcher import Dispatcher
from .ordering import Turns

__all__ = ["QUIT", "chat"]

log = logging.getLogger("bot.console")

QUIT = ("/quit", "/exit")


def _reader(stream: TextIO, loop: asyncio.AbstractEventLoop,
            lines: asyncio.Queue[str | None]) -> threading.Thread:
    """Feeds `stream`'s lines to `lines` from a daemon thread; None marks the end."""

    def run() -> None:
        try:
            for line in stream:
                loop.call_soon_threadsafe(lines.put_nowait, line)
        except (OSError, ValueError):  # closed under us
            pass
        with contextlib.suppress(RuntimeError):  # the loop is already gone
            loop.call_soon_threadsafe(lines.put_nowait, None)

    thread = threading.Thread(target=run, name="stdin", daemon=True)
    thread.start()
    return thread


def _printer(out: TextIO) -> Callable[[str], None]:
    def write(text: str) -> None:
        out.write(text + "\n\n")
        out.flush()

    return write


async def _goodbye_language(console: ConsoleChannel) -> str:
    """The user's language (the one /language chose), or $LANG's if the database is gone."""
    try:
        return await console.user_lang()
    except Exception:  # the goodbye must not fail: the session is over either way
        log.warning("the user's language could not be read for the goodbye", exc_info=True)
        return console.lang


async def chat(config: Config, secrets: Secrets, *, stdin: TextIO | None = None,
               stdout: TextIO | None = None) -> int:
    """Runs the terminal session until end of input, /quit or a signal."""
    write = _printer(stdout or sys.stdout)
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
            loop.add_signal_handler(sig, lines.put_nowait, None)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = replace(config, http=replace(config.http, host="127.0.0.1",
                                              port=sock.getsockname()[1], public_url=url))
        async with build_app(config, secrets) as app:
            console = ConsoleChannel.for_language(
                storage=app.storage, data_dir=Path(config.app.data_dir),
                default=config.app.default_language, write=write)
            # The one user's turn, in this process only (one terminal, one reader): a notice
            # that writes the numbered menu waits for the typed line being answered.
            turns = Turns(None, lease=False)
            dispatcher = Dispatcher(engine=app.engine, handlers=app.handlers,
                                    channels={console.name: console}, turns=turns)
            answers = Answerer(engine=app.engine, handlers=app.handlers, channel=console,
                               default_language=config.app.default_language, turns=turns)

            async def user_language() -> str:
                user_id = await app.wallet.open_account(console.name, ADDRESS)
                return await user_lang(app.handlers.deps, user_id)

            console.language = user_language
            async with dispatcher:
                write(t(console.lang, "console.hello"))
                log.info("console session on %s", url)
                _reader(stdin or sys.stdin, loop, lines)
                await answers.answer(Inbound(channel=console.name, address=ADDRESS,
                                             text="/start", language=console.hint))
                # The first menu is on screen: now the server and the scheduler (aiohttp's and
                # APScheduler's imports are most of the wait the user would otherwise see).
                # Lines typed meanwhile wait in `lines`; no job is made before the server is up.
                async with serve(app.web_app, sock=sock), app.scheduler:
                    while (line := await lines.get()) is not None:
                        if line.strip().lower() in QUIT:
                            break
                        if (path := missing_path(line)) is not None:  # a mistyped path
                            write(t(await console.user_lang(), "console.no_file", path=path))
                            continue
                        inbound = console.inbound(line)
                        if inbound is not None:
                            await answers.answer(inbound)
                            dispatcher.notify()
            write(t(await _goodbye_language(console), "console.bye"))
    return 0
