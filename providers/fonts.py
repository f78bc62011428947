"""A font with Chinese glyphs for what we draw ourselves (demo clips and images, /stats charts).

Decisions:
- Noto Sans CJK ships as a dependency: the `noto-cjk-sans-otc` package (SIL OFL 1.1, the
  Regular collection, about 19 MB installed) comes with `pip install -e .`, so Chinese renders
  on any machine. Where it is missing (a trimmed install), the usual system CJK fonts are tried
  (the Dockerfile installs `fonts-noto-cjk`); with none, callers fall back to their own font.
- In a collection the Simplified Chinese face is used (Chinese is our second language); every
  face of Noto Sans CJK covers Latin and all CJK ideographs, so it serves English text too.
- No font we can ship draws colour emoji. Characters the chosen font has no glyph for (read
  from its cmap with fontTools, which matplotlib already depends on) are dropped by `drawable`
  instead of being drawn as boxes (□).

Nothing heavy is imported at module level: Pillow and fontTools are loaded when first used, and
results are cached per process (font files do not change while we run).
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import re
import unicodedata
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["CJK_FONT_FILES", "FontFace", "cjk_face", "drawable", "glyphs"]

# System fonts with CJK glyphs, tried in order after the packaged one.
CJK_FONT_FILES: Final = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)
_PACKAGE: Final = "noto_cjk_sans_otc"
_PACKAGE_FILE: Final = "NotoSansCJK-Regular.ttc"
_PREFERRED_FACE: Final = "Noto Sans CJK SC"
# Zero-width joiner and variation selectors only glue emoji together; alone they draw nothing
# or a box, so they go with the emoji they belonged to.
_SPACES: Final = re.compile(" {2,}")
_GLUE: Final = frozenset({0x200D, *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)})


@dataclass(frozen=True, slots=True)
class FontFace:
    """A font file and the face inside it (a collection holds several)."""

    path: Path
    index: int = 0


def _packaged() -> Path | None:
    if importlib.util.find_spec(_PACKAGE) is None:
        return None
    path = Path(str(importlib.resources.files(_PACKAGE).joinpath(_PACKAGE_FILE)))
    return path if path.is_file() else None


@functools.cache
def cjk_face() -> FontFace | None:
    """The CJK font to draw with: the packaged Noto Sans CJK, else a system font, else None."""
    candidates = [p for p in (_packaged(),) if p is not None]
    candidates += [Path(p) for p in CJK_FONT_FILES]
    for path in candidates:
        if path.is_file():
            index = _face_index(path)
            if index is not None:
                return FontFace(path, index)
    return None


def _face_index(path: Path) -> int | None:
    """The Simplified Chinese face of a collection (else its first); None if unreadable."""
    from fontTools.ttLib import TTCollection, TTFont, TTLibError

    try:
        if path.suffix.lower() not in (".ttc", ".otc"):
            TTFont(str(path), lazy=True).close()
            return 0
        with TTCollection(str(path), lazy=True) as collection:
            names = [font["name"].getDebugName(1) for font in collection.fonts]
    except (OSError, TTLibError, KeyError, AssertionError):
        return None
    return names.index(_PREFERRED_FACE) if _PREFERRED_FACE in names else 0


@functools.cache
def glyphs(face: FontFace) -> frozenset[int]:
    """The code points this face has a glyph for."""
    from fontTools.ttLib import TTFont

    with TTFont(str(face.path), fontNumber=face.index, lazy=True) as font:
        return frozenset(font.getBestCmap() or {})


def drawable(text: str, covered: Container[int] | None) -> str:
    """`text` without the characters a font cannot draw (emoji, mostly) and without control
    characters; newlines stay. With `covered` None (a font whose cmap we cannot read, such as
    Pillow's built-in one) only Latin-1 is kept."""
    kept = []
    for ch in text:
        cp = ord(ch)
        if ch == "\n" or ch == " ":
            kept.append(ch)
        elif cp in _GLUE or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        elif ch.isspace():
            kept.append(" ")
        elif (cp in covered) if covered is not None else 0x20 <= cp <= 0xFF:
            kept.append(ch)
    # Dropping "🎉" between two words would leave two spaces.
    return _SPACES.sub(" ", "".join(kept))
