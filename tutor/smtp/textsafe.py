"""Untrusted text made visible: the one escaping rule, stdlib only.

See docs/architecture.md, "Three promises".

Anything that came over the network, from a file or from a lesson author may hold
control characters, terminal escape sequences or bidi overrides. `visible()` turns each
into a printable escape (ESC -> "\\x1b", U+202E -> "\\u202e") so it is shown, never
obeyed. The UI wraps the result in rich Text objects, so markup is never parsed either.
"""

from __future__ import annotations

import unicodedata

# Bidi embedding/override/isolate marks and other invisible direction changers.
_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def is_unsafe(char: str) -> bool:
    """Control (Cc), format (Cf: bidi, zero-width), surrogate, private or unassigned."""
    if char in _BIDI:
        return True
    return unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def visible(text: str, *, keep_tabs: bool = False, keep_newlines: bool = False) -> str:
    """Escape every character that could act on a terminal instead of being shown.

    keep_newlines keeps LF for multi-line text we lay out ourselves (lesson Markdown).
    """
    # isdisjoint walks the string in C: this check runs for every line serve logs.
    if text.isprintable() and _BIDI.isdisjoint(text):
        return text
    out = []
    for char in text:
        if (keep_tabs and char == "\t") or (keep_newlines and char == "\n"):
            out.append(char)
        elif is_unsafe(char):
            out.append(_escape(char))
        else:
            out.append(char)
    return "".join(out)


def visible_bytes(data: bytes) -> str:
    """Bytes as text: UTF-8 where valid, \\xNN for the rest, then made visible."""
    return visible(data.decode("utf-8", "backslashreplace"))


def visible_line(raw: bytes) -> str:
    """A raw line with its ending made visible: `HELO x␍␊`, `HELO x␊` (bare LF)."""
    body = raw
    ending = ""
    if body.endswith(b"\r\n"):
        body, ending = body[:-2], "␍␊"
    elif body.endswith(b"\n"):
        body, ending = body[:-1], "␊"
    return visible_bytes(body) + ending
