"""The message catalogue: `t(lang, key, **params)` is the one way to a user-facing text.

Two languages, English (`messages_en`) and Chinese (`messages_zh`), as plain dicts of
`str.format` templates: a Python module is checked by the type checker and the tests import it
directly, where TOML files would need package data and a loader. A key missing in Chinese falls
back to English, and a key missing everywhere raises `KeyError` (a bug, which the unit test
`test_messages.py` catches by scanning the source for every key used).

`language_of(hint, default)` turns a channel's language hint ("zh-hans", "en-US") into one of ours.

Plural forms: `tn(lang, key, count)` picks the variant `key#<category>` for the CLDR plural
category of `count` in `lang`, as Babel's locale data says (English: one, other; Chinese: other
only), and fills `{count}` in. A catalogue has exactly the categories its language uses, always
with `other`; no rules of our own. Sentences take counted phrases ("n.credits": "1 credit",
"2 credits") where the rest of the sentence does not change with the number.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from . import messages_en, messages_zh

__all__ = ["CATALOGUES", "LANGUAGES", "language_of", "plural_category", "t", "tn"]

CATALOGUES: dict[str, dict[str, str]] = {"en": messages_en.TEXTS, "zh": messages_zh.TEXTS}
LANGUAGES = tuple(CATALOGUES)


def t(lang: str, key: str, /, **params: Any) -> str:
    """The text for `key` in `lang` (English when that language lacks it), filled in."""
    template = CATALOGUES.get(lang, messages_en.TEXTS).get(key)
    if template is None:
        template = messages_en.TEXTS[key]
    return template.format(**params)


@functools.cache
def _plural_rule(lang: str) -> Callable[[int], str]:
    from babel import Locale  # loaded on first use: the catalogue stays a light import

    return Locale.parse(lang).plural_form


def plural_category(lang: str, count: int) -> str:
    """The CLDR plural category ("one", "few", "other", …) of `count` in `lang`."""
    return str(_plural_rule(lang)(abs(count)))


def tn(lang: str, key: str, count: int, /, **params: Any) -> str:
    """The plural variant of `key` for `count` in `lang` (English when that language lacks
    the key), with `{count}` and `params` filled in."""
    if lang not in CATALOGUES or f"{key}#other" not in CATALOGUES[lang]:
        lang = "en"
    catalogue = CATALOGUES[lang]
    template = catalogue.get(f"{key}#{plural_category(lang, count)}") or \
        catalogue[f"{key}#other"]
    return template.format(count=count, **params)


def language_of(hint: str | None, default: str) -> str:
    """"zh…" → "zh"; any other hint, or none, → `default`."""
    if hint and hint.strip().lower().startswith("zh"):
        return "zh"
    return default if default in CATALOGUES else "en"
