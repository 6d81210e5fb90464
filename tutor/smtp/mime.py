"""The MIME tree of a stored message, read defensively, and the encoders of `/b64` `/qp`.

A message is an entity: header fields, an empty line, a body (RFC 2045 §2.4). A
`multipart/*` body is cut at its boundary lines, `--BOUNDARY` between parts and
`--BOUNDARY--` after the last (RFC 2046 §5.1.1), and each part is an entity again. A
leaf's body is decoded by its Content-Transfer-Encoding (RFC 2045 §6.7 quoted-printable,
§6.8 base64) and, for `text/*`, by its charset (RFC 2046 §4.1.2; US-ASCII when none).

What is read here came from the network, so everything is bounded and nothing raises: a
message is read up to SCAN_LIMIT octets, nesting up to MAX_DEPTH, MAX_PARTS parts in all,
DECODE_LIMIT octets of a part decoded and TEXT_LIMIT characters of its text kept. Bad
base64, an unknown charset, a missing boundary: each is a `problem` on its part. The text
keeps whatever characters the sender put there; the UI makes it visible (ui/common/safe.py).
Stdlib only.
"""

from __future__ import annotations

import binascii
import codecs
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from tutor.smtp.authcodec import b64_report, readable

SCAN_LIMIT = 1024 * 1024  # octets of a message read for its tree
HEADER_LIMIT = 64 * 1024  # octets of one part's header section parsed
MAX_DEPTH = 8  # multiparts inside multiparts
MAX_PARTS = 64  # parts in one tree
DECODE_LIMIT = 256 * 1024  # octets of one part's body decoded
TEXT_LIMIT = 2000  # characters of one part's decoded text kept
LINE_LIMIT = 76  # RFC 2045 §6.7 (5) and §6.8: encoded lines are at most 76 characters

_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_WHITESPACE = re.compile(rb"\s+")


@dataclass(frozen=True)
class MimePart:
    """One entity of the tree: `number` is its place ("1", "1.2", "1.2.1")."""

    number: str
    content_type: str  # lower case: "text/plain", "multipart/mixed"
    encoding: str  # Content-Transfer-Encoding, lower case; "7bit" when there is none
    charset: str = ""  # lower case; "" when the part names none
    filename: str = ""  # Content-Disposition's filename=, else Content-Type's name=
    boundary: str = ""  # of a multipart
    size: int = 0  # octets of the body as stored (encoded)
    decoded_size: int | None = None  # octets once the transfer encoding is undone
    text: str | None = None  # the decoded text (text/*, or readable UTF-8), bounded
    truncated: bool = False  # text or body cut at a limit
    children: tuple[MimePart, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    def walk(self) -> Iterator[MimePart]:
        """This part, then every part inside it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()


def is_mime(raw: bytes) -> bool:
    """The message declares MIME structure worth a tree: MIME-Version, or a Content-Type
    or Content-Transfer-Encoding field in its header section."""
    head = _split_entity(raw[:HEADER_LIMIT])[0].lower()
    return any(
        re.search(rb"(?m)^" + name + rb"\s*:", head)
        for name in (b"mime-version", b"content-type", b"content-transfer-encoding")
    )


def parse_message(raw: bytes) -> MimePart:
    """The tree of a whole message (header section and body), at most SCAN_LIMIT octets."""
    scanned = raw[:SCAN_LIMIT]
    root = _Reader().entity(scanned, "1", depth=0)
    if len(raw) > SCAN_LIMIT:
        note = f"only the first {SCAN_LIMIT:,} octets of {len(raw):,} were read"
        root = _with_problem(root, note)
    return root


def parse_body_lines(lines: Sequence[str]) -> MimePart | None:
    """The tree of a multipart body known only by its lines (a MessageStored event keeps
    the body, not the header section): the boundary is the one the body's own close
    delimiter `--BOUNDARY--` names. None when the body has no parts."""
    boundary = _closing_boundary(lines)
    if boundary is None:
        return None
    body = "\r\n".join(lines).encode("utf-8", "surrogateescape")[:SCAN_LIMIT]
    reader = _Reader()
    children, problems = reader.parts(body, boundary, "1", depth=0)
    return MimePart(
        "1",
        "multipart/*",
        "7bit",
        boundary=boundary,
        size=len(body),
        children=children,
        problems=problems,
    )


def _closing_boundary(lines: Sequence[str]) -> str | None:
    """The outermost boundary: of those closed by a `--B--` line, the first opened."""
    opened: dict[str, int] = {}
    closed: set[str] = set()
    for index, line in enumerate(lines):
        stripped = line.rstrip(" \t")
        if not stripped.startswith("--") or len(stripped) <= 2:
            continue
        if stripped.endswith("--") and stripped[2:-2] in opened:
            closed.add(stripped[2:-2])
        opened.setdefault(stripped[2:], index)
    return min(closed, key=lambda name: opened[name]) if closed else None


@dataclass
class _Reader:
    """Reads one tree, counting parts so that no input makes more than MAX_PARTS."""

    parts_seen: int = 0
    over: bool = False

    def entity(self, data: bytes, number: str, *, depth: int) -> MimePart:
        self.parts_seen += 1
        head, body = _split_entity(data)
        fields = _fields(head)
        content_type = fields.get_content_type().lower()
        encoding = str(fields.get("Content-Transfer-Encoding", "7bit")).strip().lower()
        charset = str(fields.get_param("charset", "") or "").strip().lower()
        filename = _filename(fields)
        if content_type.startswith("multipart/"):
            boundary = str(fields.get_param("boundary", "") or "")
            if not boundary:
                problem = "a multipart without boundary=: its parts cannot be found"
                return MimePart(number, content_type, encoding, size=len(body), problems=(problem,))
            children, problems = self.parts(body, boundary, number, depth=depth)
            return MimePart(
                number,
                content_type,
                encoding,
                boundary=boundary,
                size=len(body),
                children=children,
                problems=problems,
            )
        return _leaf(number, content_type, encoding, charset, filename, body)

    def parts(
        self, body: bytes, boundary: str, number: str, *, depth: int
    ) -> tuple[tuple[MimePart, ...], tuple[str, ...]]:
        """The parts between `--boundary` lines, and what is wrong with the multipart."""
        if depth + 1 >= MAX_DEPTH:
            return (), (f"nested more than {MAX_DEPTH} levels deep: not read further",)
        pieces, closed = _split_parts(body, boundary.encode("utf-8", "surrogateescape"))
        problems: list[str] = []
        if pieces is None:
            return (), (f"the boundary line --{boundary} never appears",)
        if not closed:
            problems.append(f"no closing line --{boundary}-- after the last part")
        children: list[MimePart] = []
        for index, piece in enumerate(pieces, start=1):
            if self.parts_seen >= MAX_PARTS:
                if not self.over:
                    problems.append(f"more than {MAX_PARTS} parts: the rest are not shown")
                self.over = True
                break
            children.append(self.entity(piece, f"{number}.{index}", depth=depth + 1))
        return tuple(children), tuple(problems)


def _split_entity(data: bytes) -> tuple[bytes, bytes]:
    """Header section and body: the body starts after the first empty line (CRLF or LF)."""
    if data.startswith((b"\r\n", b"\n")):  # no header fields at all
        return b"", data[2:] if data.startswith(b"\r\n") else data[1:]
    match = re.search(rb"\r?\n\r?\n", data)
    if match is None:
        return data, b""
    return data[: match.start()], data[match.end() :]


def _fields(head: bytes) -> Message:
    parsed = BytesHeaderParser(policy=compat32).parsebytes(head[:HEADER_LIMIT] + b"\r\n\r\n")
    assert isinstance(parsed, Message)
    return parsed


def _filename(fields: Message) -> str:
    for name, header in (("filename", "content-disposition"), ("name", "content-type")):
        try:
            value = fields.get_param(name, None, header=header)
        except (ValueError, LookupError, TypeError):
            continue
        if isinstance(value, tuple):  # RFC 2231 (charset, language, text)
            value = value[2]
        if value:
            return str(value)
    return ""


def _split_parts(body: bytes, boundary: bytes) -> tuple[list[bytes] | None, bool]:
    """The parts' bytes between delimiter lines (RFC 2046 §5.1.1: the CRLF before a
    delimiter belongs to it), and whether the close delimiter came. None: no delimiter."""
    delimiter, close = b"--" + boundary, b"--" + boundary + b"--"
    pieces: list[bytes] = []
    current: list[bytes] | None = None
    for line in body.split(b"\n"):
        bare = line.rstrip(b"\r").rstrip(b" \t")
        if bare == close:
            if current is not None:
                pieces.append(b"\r\n".join(current))
            return pieces, True
        if bare == delimiter:
            if current is not None:
                pieces.append(b"\r\n".join(current))
            current = []
        elif current is not None:
            current.append(line.rstrip(b"\r"))
    if current is None:
        return None, False
    pieces.append(b"\r\n".join(current))
    return pieces, False


def _leaf(
    number: str, content_type: str, encoding: str, charset: str, filename: str, body: bytes
) -> MimePart:
    problems: list[str] = []
    truncated = len(body) > DECODE_LIMIT
    decoded = _undo_transfer_encoding(body[:DECODE_LIMIT], encoding, problems)
    text = None
    if decoded is not None:
        if content_type.startswith("text/"):
            text = _text(decoded, charset or "us-ascii", problems)
        elif readable(decoded):
            text = decoded.decode("utf-8")
    if text is not None and len(text) > TEXT_LIMIT:
        text, truncated = text[:TEXT_LIMIT], True
    return MimePart(
        number,
        content_type,
        encoding,
        charset=charset,
        filename=filename,
        size=len(body),
        decoded_size=None if decoded is None else len(decoded),
        text=text,
        truncated=truncated,
        problems=tuple(problems),
    )


def _undo_transfer_encoding(body: bytes, encoding: str, problems: list[str]) -> bytes | None:
    if encoding == "base64":
        compact = _WHITESPACE.sub(b"", body)
        if len(compact) % 4 or not _BASE64.fullmatch(compact):
            problems.append("not valid base64 (RFC 2045 §6.8): decoded as far as it goes")
        try:
            return binascii.a2b_base64(compact + b"=" * (-len(compact) % 4))
        except binascii.Error:
            return None
    if encoding == "quoted-printable":
        if not body.isascii():
            problems.append("8-bit octets in quoted-printable: each should be =XX (RFC 2045 §6.7)")
        return binascii.a2b_qp(body)
    if encoding in ("7bit", "8bit", "binary"):
        if encoding == "7bit" and not body.isascii():
            problems.append("8-bit octets in a part that says 7bit (RFC 2045 §2.7)")
        return body
    problems.append(f"unknown Content-Transfer-Encoding {encoding!r}: not decoded")
    return None


def _text(data: bytes, charset: str, problems: list[str]) -> str:
    try:
        if not codecs.lookup(charset)._is_text_encoding:
            raise LookupError(charset)
        return data.decode(charset, "replace")
    except (LookupError, ValueError):
        problems.append(f"unknown charset {charset!r}: shown as UTF-8")
        return data.decode("utf-8", "replace")


def _with_problem(part: MimePart, problem: str) -> MimePart:
    return replace(part, problems=(*part.problems, problem))


# --- encoders, for the learner to type encoded lines ---------------------------------------


def base64_lines(text: str) -> list[str]:
    """base64 of the UTF-8 of `text` (a typed \\0 is a NUL, as in the sandbox's `/b64`),
    in lines of at most 76 characters (RFC 2045 §6.8)."""
    encoded = b64_report(text).encoded
    return [encoded[i : i + LINE_LIMIT] for i in range(0, len(encoded), LINE_LIMIT)] or [""]


def quoted_printable_lines(text: str) -> list[str]:
    """Quoted-printable of the UTF-8 of `text` (RFC 2045 §6.7): printable ASCII as itself
    but `=`; other octets as =XX; a space or tab before a line break encoded; lines of at
    most 76 characters, a soft break `=` ending each that continues. A `.` that would start
    a line is encoded too, so no line is taken for SMTP's end of data."""
    lines: list[str] = []
    for source_line in text.split("\n"):
        tokens = _qp_tokens(source_line.encode("utf-8"))
        lines.extend(_qp_wrap(tokens))
    return lines


def _qp_tokens(data: bytes) -> list[str]:
    tokens = []
    for index, octet in enumerate(data):
        char = chr(octet)
        last = index == len(data) - 1
        literal = (33 <= octet <= 126 and char != "=") or (char in " \t" and not last)
        tokens.append(char if literal else f"={octet:02X}")
    return tokens


def _qp_wrap(tokens: list[str]) -> list[str]:
    """Lines of at most 76 characters: up to 75 and a soft break `=` for each line that
    continues; an =XX is never split."""
    lines: list[str] = []
    current = ""
    for token in tokens:
        if len(current) + len(token) > LINE_LIMIT - 1:
            lines.append(current + "=")
            current = ""
        current += "=2E" if not current and token == "." else token
    lines.append(current)
    return lines
