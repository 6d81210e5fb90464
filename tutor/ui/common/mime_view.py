"""The MIME tree of a stored message (smtp/mime.py), and the `/b64` `/qp` helpers' lines.

Every content type, file name, boundary and decoded text here came from a message, so
each reaches the screen through safe.py (control characters and escapes made visible).
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from tutor.smtp.authcodec import b64_report
from tutor.smtp.mime import MimePart, base64_lines, is_mime, parse_message, quoted_printable_lines
from tutor.smtp.textsafe import wire_lines
from tutor.ui.common.safe import join, untrusted
from tutor.ui.common.words import counted

TEXT_LINES_SHOWN = 12  # of one part's decoded text
TREE_TITLE = "MIME structure (RFC 2045, RFC 2046): each part, its encoding, its decoded text"


def mime_tree_view(raw: bytes) -> RenderableType | None:
    """The tree of a MIME message; None for a message that declares no MIME structure."""
    if not is_mime(raw):
        return None
    rows: list[Text] = [Text(TREE_TITLE, style="bold")]
    for part in parse_message(raw).walk():
        rows.extend(_part_rows(part))
    return Group(*rows)


def _part_rows(part: MimePart) -> list[Text]:
    depth = part.number.count(".")
    indent = "  " * depth
    rows = [join(Text(indent), _summary(part))]
    inner = indent + "    "
    if part.text is not None:
        lines = wire_lines(part.text) or [""]
        for line in lines[:TEXT_LINES_SHOWN]:
            rows.append(join(Text(inner + "│ ", style="dim"), untrusted(line)))
        hidden = len(lines) - TEXT_LINES_SHOWN
        if hidden > 0 or part.truncated:
            more = f"{hidden:,} more lines" if hidden > 0 else "more text"
            rows.append(Text(f"{inner}│ … {more} not shown", style="dim"))
    for problem in part.problems:
        rows.append(join(Text(inner + "! ", style="yellow"), untrusted(problem, "yellow")))
    return rows


def _summary(part: MimePart) -> Text:
    pieces: list[Text | str] = [Text(part.number, style="dim"), " ", untrusted(part.content_type)]
    if part.charset:
        pieces += ["; charset=", untrusted(part.charset)]
    if part.is_multipart:
        pieces += ["  boundary ", untrusted(part.boundary, "bold")]
        pieces.append(Text(f"  {len(part.children)} parts, {part.size:,} bytes", style="dim"))
        return join(*pieces)
    pieces += ["  ", untrusted(part.encoding, "bold")]
    size = f"  {part.size:,} bytes"
    if part.decoded_size is not None and part.encoding in ("base64", "quoted-printable"):
        size += f", {part.decoded_size:,} decoded"
    pieces.append(Text(size, style="dim"))
    if part.filename:
        pieces += ["  file ", untrusted(part.filename, "bold")]
    return join(*pieces)


# --- /b64 and /qp ---------------------------------------------------------------------------


def encoded_view(kind: str, text: str) -> RenderableType:
    """TEXT encoded as base64 or quoted-printable, one message line per row, to type as
    shown; nothing is sent."""
    if not text:
        word = "/b64" if kind == "base64" else "/qp"
        return Text(f"Type {word} and the text to encode after it, e.g. {word} café", style="dim")
    if kind == "base64":
        lines = base64_lines(text)
        rule = "base64, lines of at most 76 characters (RFC 2045 §6.8)"
        header = "Content-Transfer-Encoding: base64"
    else:
        lines = quoted_printable_lines(text)
        rule = "quoted-printable, a soft break = ends a line that goes on (RFC 2045 §6.7)"
        header = "Content-Transfer-Encoding: quoted-printable"
    octets = len(text.encode("utf-8"))
    rows: list[Text] = [
        join(
            Text(f"{kind} of "),
            untrusted(f'"{text}"'),
            Text(f" ({counted(octets, 'octet')} of UTF-8), {counted(len(lines), 'line')} to type:"),
        )
    ]
    rows += [untrusted(line, "bold") for line in lines]
    decoded = b64_report(text).decoded if kind == "base64" else None
    if decoded is not None:
        shown_text = decoded.decode("utf-8", "backslashreplace")
        rows.append(join(Text("(it is base64 itself, of: "), untrusted(shown_text), Text(")")))
    rows.append(Text(f"{rule}. Nothing was sent.", style="dim"))
    rows.append(Text(f"The part's header says so with: {header}", style="dim"))
    return Group(*rows)
