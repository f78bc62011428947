"""The prompt a job stores and sends: what the user typed, without terminal control codes.

Decision: a prompt is free text from a chat or a terminal. Control characters have no meaning
to a video model and are hostile in our own logs and terminals (an ESC colour code, BEL, a
carriage return that hides what came before), so they are removed where the prompt enters a
job; line breaks stay (a prompt may be written on several lines, "\\r\\n" and "\\r" become "\\n"),
a tab becomes a space. A whole ANSI escape sequence goes, not just its ESC, so "\\x1b[31mred"
becomes "red" and not "[31mred". Bidirectional overrides and isolates go too: they can make a
prompt read differently in a log than it does to the model. Other format characters (the
zero-width joiner inside emoji, for instance) stay.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["clean_prompt"]

# CSI (ESC [ … final byte, or the one-byte C1 CSI), OSC (ESC ] … BEL or ESC \), DCS/SOS/PM/APC
# strings (ESC P, X, ^, _ … ESC \), and two-character escapes (ESC and one byte).
_ESCAPE: Final = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
)
_BIDI: Final = frozenset({*range(0x202A, 0x202F), *range(0x2066, 0x206A)})


def clean_prompt(text: str) -> str:
    """`text` with control characters and escape sequences removed and line breaks kept;
    leading and trailing white space goes too."""
    text = _ESCAPE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    kept = []
    for ch in text:
        if ch == "\n":
            kept.append(ch)
        elif ch == "\t":
            kept.append(" ")
        elif unicodedata.category(ch) != "Cc" and ord(ch) not in _BIDI:
            kept.append(ch)
    return "".join(kept).strip()
