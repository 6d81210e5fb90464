"""Untrusted text made visible: the one escaping rule, stdlib only.

See docs/architecture.md, "Three promises".

Anything that came over the network, from a file or from a lesson author may hold
control characters, terminal escape sequences or bidi overrides. `visible()` turns each
into a printable escape (ESC -> "\\x1b", U+202E -> "\\u202e") so it is shown, never
obeyed. The UI wraps the result in rich Text objects, so markup is never parsed either.
"""

from __future__ import annotations

import re
import unicodedata
from typing import overload

# Bidi embedding/override/isolate marks and other invisible direction changers.
_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


# The only line endings of SMTP, of Maildir files and of a terminal. str.splitlines() also
# ends a line at VT, FF, FS, GS, RS, NEL, U+2028 and U+2029: `X: a\u2028Injected: yes`
# would look like two header fields. Those stay inside their line, shown as escapes.
_LINE_BREAK = re.compile(r"(\r\n|\r|\n)")


@overload
def wire_lines(text: str, *, keepends: bool = False) -> list[str]: ...
@overload
def wire_lines(text: bytes, *, keepends: bool = False) -> list[bytes]: ...
def wire_lines(text: str | bytes, *, keepends: bool = False) -> list[str] | list[bytes]:
    """Lines ended by CRLF, LF or CR, and by nothing else (unlike str.splitlines); like
    splitlines, a final line ending adds no empty line. Every text from the wire or a file
    is cut into lines here (tests/test_project.py forbids splitlines elsewhere)."""
    if isinstance(text, bytes):
        return text.splitlines(keepends)  # bytes.splitlines knows CR and LF only
    pieces = _LINE_BREAK.split(text)  # line, ending, line, ending, …, last line
    lines = pieces[0::2]
    if keepends:
        lines = [line + ending for line, ending in zip(lines, [*pieces[1::2], ""], strict=True)]
    if lines[-1] == "":
        lines.pop()  # the text ended with a line ending (or was empty)
    return lines


def size_note(size: int) -> str:
    """What a clipped text says after its start: `… (9,437,184 bytes in all)`."""
    return f"… ({size:,} bytes in all)"


def clipped(text: str, limit: int, *, size: int | None = None) -> str:
    """A text of at most `limit` characters as it is; a longer one as its start and its
    full size, so that one huge line never costs a view more than `limit` characters.
    `size`: its size as stored, when the caller knows it (else its UTF-8 length)."""
    if len(text) <= limit:
        return text
    if size is None:
        size = len(text.encode("utf-8", "surrogateescape"))
    return text[:limit] + size_note(size)


def clipped_bytes(raw: bytes, limit: int) -> tuple[bytes, str]:
    """At most `limit` bytes of a line, cut where a UTF-8 character ends, and the note to
    show after them ("" when nothing was cut)."""
    if len(raw) <= limit:
        return raw, ""
    start = raw[:limit]
    for back in range(1, min(4, len(start)) + 1):  # a lead byte whose sequence is cut short
        byte = start[-back]
        if byte < 0x80:
            break
        if byte >= 0xC0:  # the lead byte: keep its sequence only if it is complete
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            if length > back:
                start = start[:-back]
            break
    return start, size_note(len(raw))


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
