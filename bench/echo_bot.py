"""The baseline of `bench/startup.py`: python-telegram-bot's minimal echo bot, polling.

    python bench/echo_bot.py --base-url http://127.0.0.1:PORT/bot --token 123456:TEST-token_abc

It is PTB's echo example and nothing more: `Application.builder().token(...).build()` (pointed
at a local fake Bot API by `--base-url`), one `MessageHandler(filters.TEXT, ...)` answering
`reply_text(update.message.text)`, then `initialize`, `start` and `updater.start_polling`. When
polling has started it prints "ready" on stdout and idles until SIGINT or SIGTERM, when it
stops as PTB stops. `bench/startup.py` times process start → "ready" and reads its idle RSS.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: bench/ must not be first on sys.path (bench/telegram.py would shadow
    # python-telegram-bot's `telegram`).
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import asyncio
import signal

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Echoes the user's message."""
    if update.message is not None and update.message.text is not None:
        await update.message.reply_text(update.message.text)


async def main(base_url: str, token: str) -> None:
    app = Application.builder().token(token).base_url(base_url).build()
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=10)
        print("ready", flush=True)
        await stop.wait()
        await app.updater.stop()
        await app.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the fake Bot API's .../bot")
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.base_url, args.token))
