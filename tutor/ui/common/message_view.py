"""One view of a stored message, for `mailbox show`, the lesson and the dashboard.

The stored copy is shown as stored: every line in order, numbered as in the file, the
fields the server added marked `server>`, a folded field on as many lines as it was sent
on, and the empty line that ends the header section shown where it is, or said to be
missing (then everything is header text, RFC 5322 §2.1). UTF-8 header text (RFC 6532)
is shown decoded, never as mojibake; an RFC 2047 encoded-word gets its decoded text on a
line below. A long line wraps beside an empty gutter, so it never looks like a new line
or a folded one. Everything from the message goes through ui.safe.

The envelope-against-headers table pairs like with like: the sender beside From:, each
address beside the same address on the other side, `(none)` where a side never names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.box import ROUNDED, Box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from tutor.maildir.mailview import StoredMessage, envelope_recipients
from tutor.smtp.envelope import (
    COMPARED_LIMIT,
    DIFFERS,
    ENVELOPE_ONLY,
    HEADERS_ONLY,
    SAME,
    Comparison,
    Pair,
)
from tutor.smtp.headers import Field
from tutor.smtp.textsafe import clipped, clipped_bytes
from tutor.ui.common.mime_view import mime_tree_view
from tutor.ui.common.safe import join, untrusted, untrusted_bytes

VERDICTS = {
    SAME: ("same", "green"),
    DIFFERS: ("differs", "bold yellow"),
    ENVELOPE_ONLY: ("only in the envelope", "yellow"),
    HEADERS_ONLY: ("only in the headers", "yellow"),
}
ENVELOPE_COLUMN = "where it went: the envelope"
HEADERS_COLUMN = "what it claims: the headers"
NONE = "(none)"
BLANK_LINE = "(empty line: the headers end here, the body follows; RFC 5322 §2.1)"
NO_BLANK_LINE = (
    "(no empty line: everything is header text, so this message has no body, RFC 5322 §2.1)"
)
NOT_A_FIELD = "  ← not a header field (no name and colon): a mail program may start the body here"
ONLY_SPACES = "(only spaces: a folded line, not the empty line)"
LEGEND = (
    "Lines are numbered as in the stored file. server> marks the trace headers this server "
    "added (Return-Path = envelope sender, Received, Authentication-Results, Delivered-To); "
    "any other Received: line came in with the message text: a claim, not a record. An "
    "indented line continues the field above it (folding, RFC 5322 §2.2.3)."
)
NO_ENVELOPE = (
    "no trace headers from this server: the envelope is not known (this file did not come "
    "through smtp-tutor's server)"
)
SERVER_MARK = "server>"
WIDE = 100  # columns the envelope table needs to show addresses unfolded
PAIRS_SHOWN = 120  # rows of the envelope table: the 100 recipients the server takes, and more
NAMES_SHOWN = 20  # addresses named in one note
TAB = "    "


def message_view(
    message: StoredMessage, *, plain: bool, recipients: Sequence[str] | None = None
) -> RenderableType:
    """Envelope beside headers, then the whole stored copy. `recipients`: every envelope
    recipient when the caller knows them (an event); else read from the copies on disk."""
    if recipients is None:
        recipients = envelope_recipients(message)
    comparison = message.comparison(recipients)
    title = f"{message.ref}  id {message.queue_id}"
    if message.date:
        title += f"  received {message.date}"
    if message.ours:
        envelope = [envelope_table(comparison, plain=plain, title=title)]
        envelope += mismatch_notes(comparison)
    else:  # a file put into the Maildir some other way: nothing records its envelope
        envelope = [untrusted(title, "bold"), Text(NO_ENVELOPE, style="yellow")]
    tree = mime_tree_view(message.raw)  # None for a message without MIME structure
    return Group(
        *envelope,
        Text(""),
        Text("stored copy, line by line:", style="bold"),
        stored_copy(message, plain=plain),
        *([Text(""), tree] if tree is not None else []),
        Text(""),
        Text(LEGEND, style="dim"),
        join(Text("file: ", style="dim"), untrusted(str(message.path), "dim")),
    )


# --- envelope against headers -------------------------------------------------------------


def envelope_table(comparison: Comparison, *, plain: bool, title: str) -> RenderableType:
    """One row per pair; `(none)` on the side that names nothing to match."""
    return _EnvelopeTable(comparison.pairs(), title, plain=plain)


class _EnvelopeTable:
    """A table where there is room for three columns, labelled lines elsewhere (plain,
    or under WIDE columns, where folded addresses would be hard to read)."""

    def __init__(self, pairs: Sequence[Pair], title: str, *, plain: bool) -> None:
        self.pairs = pairs[:PAIRS_SHOWN]
        self.hidden = len(pairs) - len(self.pairs)
        self.title = title
        self.plain = plain

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.plain or options.max_width < WIDE:
            yield _pair_lines(self.pairs, self.title)
        else:
            yield self._table()
        if self.hidden > 0:
            yield Text(f"… and {self.hidden:,} more addresses named in the headers", style="dim")

    def _table(self) -> Table:
        table = Table(title=untrusted(self.title), title_justify="left", box=_rounded())
        table.add_column(ENVELOPE_COLUMN, overflow="fold")
        table.add_column(HEADERS_COLUMN, overflow="fold")
        table.add_column("", overflow="fold")
        for pair in self.pairs:
            table.add_row(_side(pair.envelope), _side(pair.header), _verdict(pair))
        return table


def _pair_lines(pairs: Sequence[Pair], title: str) -> RenderableType:
    """One labelled line per pair: `MAIL FROM:<a> | From: b | same`."""
    columns = Text(f"{ENVELOPE_COLUMN} | {HEADERS_COLUMN} | verdict", style="dim")
    rows = [(Text(""), columns)]
    for pair in pairs:
        text = join(_side(pair.envelope), " | ", _side(pair.header), " | ", _verdict(pair))
        rows.append((Text(f"  {pair.role + ':':<11}"), text))
    return Group(untrusted(title, "bold"), GutterLines(rows))


def _side(text: str | None) -> Text:
    return Text(NONE, style="dim") if text is None else untrusted(clipped(text, LINE_SHOWN))


def _verdict(pair: Pair) -> Text:
    words, style = VERDICTS[pair.verdict]
    return Text(words, style=style)


def _rounded() -> Box:
    return ROUNDED


def mismatch_notes(comparison: Comparison) -> list[Text]:
    """Each difference in one sentence, naming the addresses."""
    notes = []
    if not comparison.sender:  # MAIL FROM:<>: no bounce can go anywhere
        notes.append(
            Text(
                "! The envelope sender is empty (MAIL FROM:<>): if this message fails, no "
                "bounce is sent at all, whatever From: says (RFC 5321 §4.5.5).",
                style="yellow",
            )
        )
    elif not comparison.sender_matches:
        notes.append(
            Text(
                "! From: does not name the envelope sender: a bounce would go to MAIL FROM, "
                "never to the From: header.",
                style="yellow",
            )
        )
    if comparison.unnamed_recipients:
        notes.append(
            untrusted(
                "! Received by "
                + _names(comparison.unnamed_recipients)
                + " though To:/Cc: never name them: the envelope decides where mail goes.",
                "yellow",
            )
        )
    if comparison.named_not_recipients:
        notes.append(
            untrusted(
                "! To:/Cc: name "
                + _names(comparison.named_not_recipients)
                + ", who got nothing: headers are just text.",
                "yellow",
            )
        )
    return notes + _uncompared(comparison)


def _names(addresses: Sequence[str]) -> str:
    named = ", ".join(clipped(a, LINE_SHOWN) for a in addresses[:NAMES_SHOWN])
    more = len(addresses) - NAMES_SHOWN
    return f"{named} and {more:,} more" if more > 0 else named


def _uncompared(comparison: Comparison) -> list[Text]:
    """A field too long to compare whole says so (smtp/envelope.py, COMPARED_LIMIT)."""
    fields = (("From", comparison.header_from), ("To", comparison.header_to))
    return [
        Text(
            f"! {name}: is longer than {COMPARED_LIMIT:,} characters: only the addresses in "
            "that much of it were compared.",
            style="yellow",
        )
        for name, value in (*fields, ("Cc", comparison.header_cc))
        if len(value) > COMPARED_LIMIT
    ]


# --- the stored copy ----------------------------------------------------------------------


def stored_copy(
    message: StoredMessage, *, plain: bool, body_limit: int | None = None
) -> RenderableType:
    """Every line as stored: header fields (folded ones on their lines), the empty line or
    the word that it is missing, then the body (at most `body_limit` lines). What is shown
    is bounded whatever the message holds (LINE_SHOWN, FIELD_LINES_SHOWN, COPY_LINES_SHOWN,
    COPY_BYTES_SHOWN): a 9 MB folded header costs the view no more than a real one."""
    rows = _Rows()
    for index, field in enumerate(message.fields):
        if rows.full:
            return rows.rest_not_shown(message.raw)
        rows.add_field(field, ours=index < message.ours)
    section = message.section
    if section.blank_line:
        rows.add(rows.next_number(), Text(BLANK_LINE, style="dim"))
    else:
        rows.add(None, Text(NO_BLANK_LINE, style="bold yellow"))
    body = message.body_lines()
    shown = body if body_limit is None else body[:body_limit]
    for line in shown:
        if rows.full:
            return rows.rest_not_shown(message.raw)
        rows.add(rows.next_number(), _line(line), size=len(line))
    if len(shown) < len(body):
        rows.add(None, Text(f"… {len(body) - len(shown)} more lines", style="dim"))
    return GutterLines(rows.rows)


# What the stored copy shows at most. Far beyond any real message, so nothing real is cut:
LINE_SHOWN = 998  # bytes of one line: RFC 5322 §2.1.1's limit, so a standard line is whole
FIELD_LINES_SHOWN = 40  # lines of one field: a long DKIM-Signature folds onto a dozen
COPY_LINES_SHOWN = 2000  # lines of the whole copy (rendering costs per line, too)
COPY_BYTES_SHOWN = 256 * 1024  # bytes of the whole copy
RAW_HINT = "`smtp-tutor mailbox show ID --raw` writes the whole file"


class _Rows:
    """(gutter, text) rows, the gutter holding the line number and the server> mark."""

    def __init__(self) -> None:
        self.rows: list[tuple[Text, Text]] = []
        self.number = 0  # the file's line number
        self.shown_lines = 0
        self.shown_bytes = 0

    @property
    def full(self) -> bool:
        """The copy has shown all it may (COPY_LINES_SHOWN or COPY_BYTES_SHOWN)."""
        return self.shown_lines >= COPY_LINES_SHOWN or self.shown_bytes >= COPY_BYTES_SHOWN

    def next_number(self) -> int:
        self.number += 1
        return self.number

    def add(self, number: int | None, text: Text, mark: str = "", *, size: int = 0) -> None:
        gutter = Text(f"{number:>4} " if number is not None else " " * 5, style="dim")
        gutter.append(f"{mark:<{len(SERVER_MARK)}} ", style="bold magenta")
        self.rows.append((gutter, text))
        self.shown_lines += 1
        self.shown_bytes += min(size, LINE_SHOWN)

    def add_field(self, field: Field, *, ours: bool) -> None:
        mark = SERVER_MARK if ours else ""
        style = "magenta" if ours else ""
        for position, raw in enumerate(field.lines[:FIELD_LINES_SHOWN]):
            text = _line(raw, style)
            if not field.name:
                text.append(NOT_A_FIELD, style="bold yellow")
            elif position and not raw.strip():
                text.append(Text(ONLY_SPACES, style="dim"))
            self.add(self.next_number(), text, mark, size=len(raw))
        hidden = len(field.lines) - FIELD_LINES_SHOWN
        if hidden > 0:  # numbering goes on as in the file
            self.number += hidden
            note = f"… {hidden:,} more lines of this field {_size(field.size)}"
            self.add(None, Text(note, style="dim"), mark)
        decoded = field.decoded
        if decoded is not None:
            label = Text("= decoded (RFC 2047 encoded-words): ", style="dim")
            shown = clipped(f"{field.name}: {decoded}", LINE_SHOWN)
            self.add(None, join(label, untrusted(shown)), mark, size=len(shown))

    def rest_not_shown(self, raw: bytes) -> GutterLines:
        """The rows so far and one saying which lines of the file were left out."""
        last = raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)
        note = (
            f"… lines {self.number + 1:,} to {last:,} not shown ({len(raw):,} bytes in all; "
            f"{RAW_HINT})"
        )
        self.add(None, Text(note, style="dim"))
        return GutterLines(self.rows)


def _size(size: int) -> str:
    return f"({size:,} bytes in all)"


def _line(raw: bytes, style: str = "") -> Text:
    """A stored line made visible, its leading spaces and tabs kept as indentation, and
    cut after LINE_SHOWN bytes, saying its size."""
    start, note = clipped_bytes(raw, LINE_SHOWN)
    rest = start.lstrip(b" \t")
    indent = start[: len(start) - len(rest)].decode("ascii").replace("\t", TAB)
    return join(Text(indent), untrusted_bytes(rest, style), Text(note, style="dim"))


class GutterLines:
    """Rows of (gutter, text): a text too long for the width wraps beside an empty gutter,
    so a wrapped line is never mistaken for a line of its own or for a folded one."""

    def __init__(self, rows: Iterable[tuple[Text, Text]]) -> None:
        self.rows = list(rows)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        gutter = max((left.cell_len for left, _ in self.rows), default=0)
        width = max(8, options.max_width - gutter)
        blank = Text(" " * gutter)
        for left, text in self.rows:
            if left.cell_len < gutter:  # a line number longer than four digits
                left = join(" " * (gutter - left.cell_len), left)
            for index, line in enumerate(text.wrap(console, width, overflow="fold")):
                line.rstrip()
                yield join(left if index == 0 else blank, line)
