"""A message's header section as stored: its fields, its folding, its blank line (stdlib only).

RFC 5322 §2.1: the header section ends at the first empty line and the body follows it;
without an empty line the whole message is header text. §2.2.3: a line that starts with
a space or a tab continues the field above it (folding). Each line is kept as stored, so
a view can show the folding and the blank line exactly where they are.

Header text is UTF-8 where it is valid (RFC 6532); any other byte stays visible as
`\\xNN`. RFC 2047 encoded-words are decoded for display only, and only after addresses
have been parsed, because a decoded word may hold commas or angle brackets.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

from tutor.smtp.textsafe import clipped_bytes, size_note

# A field name is printable ASCII but the colon (§3.6.8); §4.5.3 allows space before it.
_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_FOLDING = (b" ", b"\t")
# Unfolded, a field reads with each run of folding whitespace as one space (§2.2.3). Only
# these: str.split() would also take U+2028, NEL, VT, FF and FS-RS for spaces, and they
# must reach the screen as escapes (textsafe.visible), not vanish.
_FOLDING_SPACE = re.compile(r"[ \t\r\n]+")
# One line (without its ending), and one field: a line and the folded lines after it.
_LF_LINE = rb"[^\n]*"
_CRLF_LINE = rb"[^\r]*(?:\r(?!\n)[^\r]*)*"  # with CRLF endings, a lone CR or LF is text
_PATTERNS = {
    b"\n": (re.compile(_LF_LINE + rb"(?:\n[ \t]" + _LF_LINE + rb")*"), re.compile(_LF_LINE)),
    b"\r\n": (
        re.compile(_CRLF_LINE + rb"(?:\r\n[ \t]" + _CRLF_LINE + rb")*"),
        re.compile(_CRLF_LINE),
    ),
}
# How much of a field's value is read: views show at most a line of it and addresses are
# compared in its first 32 KiB (envelope.py), so a 9 MB field is never unfolded whole.
VALUE_LIMIT = 64 * 1024
# Characters of a header value in a one-line summary (mailbox list, dashboard, serve log):
# a To: of a dozen addresses fits, a 9 MB one costs a summary no more than that.
SUMMARY_LIMIT = 300


def text_of(raw: bytes) -> str:
    """Bytes as text: UTF-8 where valid (RFC 6532), `\\xNN` for every other byte."""
    return raw.decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Field:
    """One header field with its lines as stored (no line endings); name "" for a line
    in the header section that is no field at all (no name and colon)."""

    name: str
    lines: tuple[bytes, ...]
    ending: int = 1  # the length of each line's ending in the file: 1 (LF) or 2 (CRLF)

    @property
    def value(self) -> str:
        """The value unfolded (§2.2.3: the line breaks removed, the whitespace kept), read
        from the field's first VALUE_LIMIT bytes (`size` tells how long it is)."""
        first = self.lines[0].partition(b":")[2] if self.name else self.lines[0]
        pieces, length = [first], len(first)
        for line in self.lines[1:]:
            if length >= VALUE_LIMIT:
                break
            pieces.append(line)
            length += len(line)
        start, _cut = clipped_bytes(b"".join(pieces), VALUE_LIMIT)
        return text_of(start).strip(" \t\r")

    @property
    def size(self) -> int:
        """Its size in the stored file, in bytes, line endings included."""
        return sum(len(line) for line in self.lines) + self.ending * len(self.lines)

    @property
    def decoded(self) -> str | None:
        """The value with its RFC 2047 encoded-words decoded, when it holds any."""
        decoded = decode_words(self.value)
        return decoded if decoded != self.value else None


@dataclass(frozen=True)
class HeaderSection:
    fields: tuple[Field, ...]
    blank_line: bool  # an empty line ends the section (without one, there is no body)
    body_offset: int  # where the body starts in the stored bytes (len(raw) without one)


def _newline(raw: bytes) -> bytes:
    """LF, the Maildir custom, unless the first line ends in CRLF (a file from elsewhere)."""
    end = raw.find(b"\n")
    return b"\r\n" if end > 0 and raw[end - 1] == 0x0D else b"\n"


def body_lines(raw: bytes, section: HeaderSection) -> list[bytes]:
    """The body's lines as stored, without their endings."""
    lines = raw[section.body_offset :].split(_newline(raw))
    if lines[-1] == b"":
        lines.pop()  # the last line's ending, not an empty line
    return lines


def header_section(raw: bytes) -> HeaderSection:
    """Every line up to the first empty line, grouped into fields; the body left unread."""
    fields, end = _read_fields(raw, None)
    return HeaderSection(fields, end is not None, len(raw) if end is None else end)


def first_fields(raw: bytes, count: int) -> tuple[Field, ...]:
    """The first `count` fields (the trace fields on top), read without the rest."""
    return _read_fields(raw, count)[0]


def _read_fields(raw: bytes, count: int | None) -> tuple[tuple[Field, ...], int | None]:
    """The fields (at most `count`) and where the body starts (None: no empty line).

    Each field, its folded lines included, is one regular-expression match, so a field of
    a million folded lines is read in C and the loop here runs once per field: linear."""
    newline = _newline(raw)
    field_pattern, line_pattern = _PATTERNS[newline]
    fields: list[tuple[str, list[bytes]]] = []
    offset = 0
    while offset < len(raw) and len(fields) != count:
        if raw.startswith(newline, offset):  # the empty line: the body follows it
            return _fields(fields, newline), offset + len(newline)
        name = _FIELD_NAME.match(raw, offset)
        # A folded line continues a field; after a line that is no field, it stands alone.
        match = (field_pattern if name else line_pattern).match(raw, offset)
        assert match is not None  # both match the empty string
        fields.append((name.group(1).decode("ascii") if name else "", match[0].split(newline)))
        offset = match.end() + len(newline)
    return _fields(fields, newline), None


def one_line(value: str, *, size: int | None = None) -> str:
    """A header value for a one-line summary: RFC 2047 encoded-words decoded (for display
    only), folding squeezed, cut after SUMMARY_LIMIT characters saying its size: `size`,
    the fields' size in the file, when the caller knows it ("… (N bytes in all)"), else
    the size of the value at hand, which may itself be a cut ("… (N bytes)")."""
    shown = decode_words(squeezed(value[:VALUE_LIMIT]))
    longest = max(len(value), size or 0)
    if len(shown) <= SUMMARY_LIMIT and longest <= VALUE_LIMIT:
        return shown
    if size is None:
        return f"{shown[:SUMMARY_LIMIT]}… ({len(value.encode('utf-8', 'replace')):,} bytes)"
    return shown[:SUMMARY_LIMIT] + size_note(size)


def squeezed(value: str) -> str:
    """A value with each run of spaces, tabs and line endings as one space: a folded field
    as it reads on one line. Other separators stay, to be shown as escapes."""
    return _FOLDING_SPACE.sub(" ", value).strip(" ")


def _fields(found: list[tuple[str, list[bytes]]], newline: bytes) -> tuple[Field, ...]:
    return tuple(Field(name, tuple(lines), len(newline)) for name, lines in found)


def decode_words(text: str) -> str:
    """RFC 2047 encoded-words decoded; the space between two adjacent ones dropped (§6.2).
    A word in an unknown charset or a broken encoding stays as written."""
    pieces: list[str] = []
    end = 0
    after_word = False
    for match in _ENCODED_WORD.finditer(text):
        gap = text[end : match.start()]
        decoded = _decode_word(*match.groups())
        if decoded is None:
            pieces += [gap, match.group(0)]
        else:
            if not (after_word and gap.strip(" \t") == ""):
                pieces.append(gap)
            pieces.append(decoded)
        after_word = decoded is not None
        end = match.end()
    pieces.append(text[end:])
    return "".join(pieces)


def _decode_word(charset: str, encoding: str, payload: str) -> str | None:
    charset = charset.partition("*")[0]  # RFC 2231 adds a language: utf-8*de
    try:
        data = payload.encode("ascii")
        if encoding in "bB":
            data = binascii.a2b_base64(data + b"=" * (-len(data) % 4), strict_mode=True)
        else:
            data = binascii.a2b_qp(data, header=True)
        return data.decode(charset, "backslashreplace")
    except (LookupError, ValueError):  # UnicodeError and binascii.Error are ValueErrors
        return None
