"""Text cut to WeChat's size: a customer-service or passive text is best kept under 2048 bytes
of UTF-8, so a longer one goes out in parts. A part ends at the last paragraph break, else line
break, else space in its second half, and never inside a character."""

from __future__ import annotations

__all__ = ["split_utf8"]


def split_utf8(text: str, limit: int) -> list[str]:
    """`text` in parts of at most `limit` UTF-8 bytes (one empty text gives no parts)."""
    if limit < 4:
        raise ValueError("limit must hold one character of UTF-8")
    parts: list[str] = []
    rest = text
    while len(rest.encode("utf-8")) > limit:
        head = rest.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
        cut = len(head)
        for sep in ("\n\n", "\n", " "):
            at = head.rfind(sep)
            if at >= len(head) // 2:
                cut = at + len(sep)
                break
        part, rest = rest[:cut].rstrip(), rest[cut:].lstrip("\n")
        if part:
            parts.append(part)
    if rest.strip():
        parts.append(rest)
    return parts
