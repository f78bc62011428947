"""Crash injection, for tests only: die on the spot at a named point of the code.

    crash_point("after_hold")   # no effect unless VIDEOFLY_CRASH_AT=after_hold

When the environment variable `VIDEOFLY_CRASH_AT` names the point, the process sends itself
SIGKILL there: no `finally`, no commit, no flush, exactly as a power cut or the OOM killer
would stop it. tests/integration/test_crash_recovery.py runs `videofly run` with it set, then
restarts the service and checks that every job ends completed and delivered once, or failed and
refunded. Unset (always, in production) the check is one dictionary lookup.

Points: `after_hold` (credits held, provider not called), `after_accept` (the provider accepted
and the task id is recorded), `mid_upload` (the result is in storage, its thumbnail not yet),
`after_settle` (the job completed and its message queued, not sent), `mid_send` (the message
claimed for sending, not sent).
"""

from __future__ import annotations

import os
import signal

__all__ = ["POINTS", "crash_point"]

POINTS = ("after_hold", "after_accept", "mid_upload", "after_settle", "mid_send")


def crash_point(name: str) -> None:
    """Kills this process with SIGKILL if VIDEOFLY_CRASH_AT names `name` (tests only)."""
    if os.environ.get("VIDEOFLY_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
