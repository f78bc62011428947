"""The message catalogue: `t(lang, key, **params)` is the one way to a user-facing text.

Two languages, English (`messages_en`) and Chinese (`messages_zh`), as plain dicts of
`str.format` templates: a Python module is checked by the type checker and the tests import it
directly, where TOML files would need package data and a loader. A key missing in Chinese falls
back to English, and a key missing everywhere raises `KeyError` (a bug, which the unit test
`test_messages.py` catches by scanning the source for every key used).

`language_of(hint, default)` turns a channel's language hint ("zh-hans", "en-US") into one of ours.
"""

from __future__ import annotations

from typing import Any

from . import messages_en, messages_zh

__all__ = ["CATALOGUES", "LANGUAGES", "language_of", "t"]

CATALOGUES: dict[str, dict[str, str]] = {"en": messages_en.TEXTS, "zh": messages_zh.TEXTS}
LANGUAGES = tuple(CATALOGUES)


def t(lang: str, key: str, /, **params: Any) -> str:
    """The text for `key` in `lang` (English when that language lacks it), filled in."""
    template = CATALOGUES.get(lang, messages_en.TEXTS).get(key)
    if template is None:
        template = messages_en.TEXTS[key]
    return template.format(**params)


def language_of(hint: str | None, default: str) -> str:
    """"zh…" → "zh"; any other hint, or none, → `default`."""
    if hint and hint.strip().lower().startswith("zh"):
        return "zh"
    return default if default in CATALOGUES else "en"
