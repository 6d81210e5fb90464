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

# A field name is printable ASCII but the colon (§3.6.8); §4.5.3 allows space before it.
_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_FOLDING = (b" ", b"\t")


def text_of(raw: bytes) -> str:
    """Bytes as text: UTF-8 where valid (RFC 6532), `\\xNN` for every other byte."""
    return raw.decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Field:
    """One header field with its lines as stored (no line endings); name "" for a line
    in the header section that is no field at all (no name and colon)."""

    name: str
    lines: tuple[bytes, ...]

    @property
    def value(self) -> str:
        """The value unfolded (§2.2.3: the line breaks removed, the whitespace kept)."""
        first = self.lines[0].partition(b":")[2] if self.name else self.lines[0]
        return text_of(b"".join((first, *self.lines[1:]))).strip()

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
    return b"\r\n" if raw.partition(b"\n")[0].endswith(b"\r") else b"\n"


def body_lines(raw: bytes, section: HeaderSection) -> list[bytes]:
    """The body's lines as stored, without their endings."""
    lines = raw[section.body_offset :].split(_newline(raw))
    if lines[-1] == b"":
        lines.pop()  # the last line's ending, not an empty line
    return lines


def header_section(raw: bytes) -> HeaderSection:
    """Every line up to the first empty line, grouped into fields; the body left unread."""
    newline = _newline(raw)
    fields: list[tuple[str, list[bytes]]] = []
    offset = 0
    while offset < len(raw):
        end = raw.find(newline, offset)
        stop = len(raw) if end < 0 else end
        line = raw[offset:stop]
        offset = len(raw) if end < 0 else end + len(newline)
        if line == b"":
            return HeaderSection(_fields(fields), True, offset)
        if line[:1] in _FOLDING and fields and fields[-1][0]:
            fields[-1][1].append(line)
            continue
        match = _FIELD_NAME.match(line)
        fields.append((match.group(1).decode("ascii") if match else "", [line]))
    return HeaderSection(_fields(fields), False, len(raw))


def _fields(found: list[tuple[str, list[bytes]]]) -> tuple[Field, ...]:
    return tuple(Field(name, tuple(lines)) for name, lines in found)


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
