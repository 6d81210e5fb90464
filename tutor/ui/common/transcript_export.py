"""Transcripts to hand out: Markdown, HTML, SVG or plain text, written as they go, capped.

A `TranscriptWriter` appends rows (rich Text, one screen row each) to its file as they
come, so a long session never sits in memory, and after every append the file is whole:
what a format needs at its end (the closing fence, `</pre></body></html>`, `</svg>`) is
written after the rows and overwritten by the next append, and what its start must know
(the fence's length, the SVG's height) is a fixed-width header rewritten in place. A
serve killed mid-session leaves a valid file. Past its cap a transcript is cut: the rest
is only counted, and the file ends with a note saying how much was not written, then the
last lines the caller kept (docs/server.md, "Exports: transcripts that cannot be broken
out of").

Nothing in a transcript can break out of it, whatever the client sent:

- every row goes through `textsafe.visible` again (it changes nothing already visible),
  so no control character, CR, U+2028 or bidi override reaches the file;
- Markdown: one fenced code block whose fence is always longer than the longest backtick
  run of its content (CommonMark closes a fence only with at least as many backticks);
  rows too wide for the page are wrapped with a hanging indent, and a row indented four
  spaces can never close a fence; the title is backslash-escaped;
- HTML and SVG: every text is escaped (`&`, `<`, `>`, quotes); tags and attributes are
  only this module's own, with colours computed here (never rich's links).

`write()` exports what a recording console printed (learn and demo --transcript) through
the same writer; `serve --transcripts` feeds one writer per session (ui/serve/).
"""

from __future__ import annotations

import functools
import html
import io
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rich.cells import cell_len
from rich.color import blend_rgb
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.terminal_theme import DEFAULT_TERMINAL_THEME, SVG_EXPORT_THEME, TerminalTheme
from rich.text import Text

from tutor.errors import UsageError
from tutor.smtp.textsafe import visible, wire_lines
from tutor.ui.common.theme import ThemedConsole

KIB = 1024
MIB = 1024 * KIB

FORMATS = {
    ".md": "Markdown",
    ".markdown": "Markdown",
    ".html": "HTML",
    ".htm": "HTML",
    ".svg": "SVG",
    ".txt": "text",
}


@dataclass(frozen=True)
class Cap:
    """How much of a session a transcript writes before it is cut.

    `rows` is what a reader can use, the same in every format; `size` is the bound on the
    file in bytes, its end (the cut note and the last rows) included, whatever the rows
    hold. docs/server.md, "Exports: …", gives the sizes these were chosen from.
    """

    rows: int
    size: int


# A lesson's session by hand is 20-60 rows; 50 messages sent by smtplib on one connection
# about 1,000 (54 KB as text, 148 KB as HTML, 280 KB as SVG). So a class exercise fits and
# only floods and load tests are cut. An SVG is a picture, drawn whole by whatever opens
# it: it stops at 1,000 rows, an image 18,000 pixels tall.
SESSION_CAPS = {"text": Cap(2_000, MIB), "SVG": Cap(1_000, MIB)}
# learn and demo --transcript: a whole lesson on screen is 240 to 650 rows.
RECORDING_CAPS = {"text": Cap(10_000, 4 * MIB), "SVG": Cap(2_000, 4 * MIB)}
# A cut transcript ends with the note, then at most this many of its last rows.
END_ROWS = 100
# Kept free under `size` for that end, however wide its rows.
END_ROOM = 64 * KIB


def cap_for(path: Path, caps: dict[str, Cap] = SESSION_CAPS) -> Cap:
    return caps["SVG"] if FORMATS[path.suffix.lower()] == "SVG" else caps["text"]


# Bytes a title takes in a header, escaped and padded with spaces: serve learns a session's
# student as it goes, and the title changes in place without moving the rows after it.
TITLE_ROOM = 512

# Continuation rows of a wrapped line start this far in: four spaces or more can never
# close a Markdown fence, and the line's own start stays visible at the left.
HANGING_INDENT = 6

_BACKTICK_RUN = re.compile(r"`+")
# Every character that means something in a CommonMark inline (a heading's text).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()<>!&#~|{}])")


def check_path(path: Path) -> Path:
    """Refuse an unknown extension or a missing folder before the session starts."""
    if path.suffix.lower() not in FORMATS:
        known = ", ".join(sorted({k for k in FORMATS if k not in (".htm", ".markdown")}))
        raise UsageError(f"--transcript {path}: use one of these extensions: {known}")
    if not path.parent.exists():
        raise UsageError(f"--transcript {path}: the folder {path.parent} does not exist")
    return path


# --- the formats ---------------------------------------------------------------------------


class _Format:
    """One file format: a fixed-width header, rows, and an end that is rewritten."""

    height_in_header = False  # the header is written again after every append

    def __init__(self, title: str, width: int) -> None:
        self.title = visible(title)
        self.width = width
        self.rows = 0  # rows formatted so far (the writer winds it back over what it drops)
        self.header_changed = False  # the header must be written again (same length)

    def header(self) -> str:
        return ""

    def retitle(self, title: str) -> None:
        """A new title, written with the header the next time the file is written."""
        self.title = visible(title)
        self.header_changed = True

    def row(self, row: Text, console: Console) -> str:
        self.rows += 1
        return visible(row.plain).rstrip() + "\n"

    def footer(self) -> str:
        return ""


class _Markdown(_Format):
    """A heading, a line, and one fenced code block holding every row.

    The opening fence line is padded to a fixed width so that the fence can grow in
    place when a longer backtick run arrives: rows are at most `width` cells, so a fence
    of width + 1 backticks is always enough.
    """

    def __init__(self, title: str, width: int) -> None:
        super().__init__(title, width)
        self.room = max(width + 1, 4)
        self.fence = 3

    def header(self) -> str:
        opening = "`" * self.fence + "text" + " " * (self.room - self.fence)
        heading, spaces = title_slot(self.title, markdown_escape)  # a heading's end is trimmed
        return f"# {heading}{spaces}\n\nRecorded by smtp-tutor.\n\n{opening}\n"

    def row(self, row: Text, console: Console) -> str:
        self.rows += 1
        line = visible(row.plain).rstrip()
        longest = max((len(run) for run in _BACKTICK_RUN.findall(line)), default=0)
        if longest >= self.fence:
            if longest < self.room:
                self.fence = longest + 1
                self.header_changed = True
            else:  # wider than any laid-out row: indented, it cannot close the fence
                line = " " * 4 + line
        return line + "\n"

    def footer(self) -> str:
        return "`" * self.fence + "\n"


@functools.lru_cache(maxsize=32)  # an SVG writes its header (its height) at every append
def title_slot(title: str, escape: Callable[[str], str], room: int = TITLE_ROOM) -> tuple[str, str]:
    """The title escaped for its format, and the spaces that make it `room` bytes (the
    caller puts them where its format ignores them); a title too long is cut, with "…"."""
    text = escape(title[:room])
    cut = min(len(title), room)
    while len(text.encode()) > room:
        cut -= 1
        text = escape(title[:cut] + "…")
    return text, " " * (room - len(text.encode()))


def markdown_escape(text: str) -> str:
    """Text for a Markdown heading or paragraph: every inline construct backslashed."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(wire_lines(text)))


_FONTS = "Menlo, 'DejaVu Sans Mono', Consolas, 'Courier New', monospace"


def _colours(style: Style, theme: TerminalTheme) -> tuple[str, str | None]:
    """A style's text and background colours on this theme (background None: none)."""
    color = style.color
    fg = (
        theme.foreground_color
        if color is None or color.is_default
        else color.get_truecolor(theme, foreground=True)
    )
    bgcolor = style.bgcolor
    bg = (
        None
        if bgcolor is None or bgcolor.is_default
        else bgcolor.get_truecolor(theme, foreground=False)
    )
    if style.reverse:
        fg, bg = bg or theme.background_color, fg
    if style.dim:
        fg = blend_rgb(fg, bg or theme.background_color, 0.4)
    return fg.hex, (bg.hex if bg is not None else None)


def _escape(text: str) -> str:
    return html.escape(visible(text), quote=True)


class _Html(_Format):
    """A page with one <pre>: each segment a <span> with inline colours, text escaped."""

    def __init__(self, title: str, width: int) -> None:
        super().__init__(title, width)
        self.theme = DEFAULT_TERMINAL_THEME
        self._css: dict[Style, str] = {}

    def header(self) -> str:
        fg, bg = self.theme.foreground_color.hex, self.theme.background_color.hex
        title, spaces = title_slot(self.title, _escape)
        return (
            '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
            f"<title>{title}</title>{spaces}\n</head>\n"
            f'<body style="color: {fg}; background-color: {bg}">\n'
            f'<pre style="font-family: {_FONTS}"><code>'
        )

    def row(self, row: Text, console: Console) -> str:
        self.rows += 1
        parts = []
        for segment in _segments(row, console):
            text = _escape(segment.text)
            css = self._style(segment.style) if segment.style else ""
            parts.append(f'<span style="{css}">{text}</span>' if css else text)
        return "".join(parts) + "\n"

    def _style(self, style: Style) -> str:
        css = self._css.get(style)
        if css is None:
            fg, bg = _colours(style, self.theme)
            rules = [f"color: {fg}"]
            if bg is not None:
                rules.append(f"background-color: {bg}")
            rules += _font_rules(style)
            css = self._css[style] = html.escape("; ".join(rules), quote=True)
        return css

    def footer(self) -> str:
        return "</code></pre>\n</body>\n</html>\n"


def _segments(row: Text, console: Console) -> list[Segment]:
    """A row's segments, neighbours of one style merged, trailing blanks without a
    background dropped (rich pads rows to the console's width)."""
    base = console.get_style(row.style) if row.style else None  # render leaves it out
    segments = list(Segment.simplify(Segment.apply_style(row.render(console), base)))
    while segments and not (segments[-1].style and segments[-1].style.bgcolor):
        last = segments[-1]
        text = last.text.rstrip()
        if text:
            segments[-1] = Segment(text, last.style)
            break
        segments.pop()
    return segments


def _font_rules(style: Style) -> list[str]:
    rules = []
    if style.bold:
        rules.append("font-weight: bold")
    if style.italic:
        rules.append("font-style: italic")
    if style.underline or style.strike:
        rules.append(f"text-decoration: {'underline' if style.underline else 'line-through'}")
    return rules


class _Svg(_Format):
    """A picture of a terminal: a background, a title row, then one <text> per row.

    Its height grows with every row: the header holds it as a zero-padded number, so it
    is rewritten in place without moving anything after it.
    """

    height_in_header = True
    FONT_SIZE = 14
    CHAR_WIDTH = 8.4  # FONT_SIZE * 0.6, the advance of a monospace font
    LINE_HEIGHT = 18
    PADDING = 12

    def __init__(self, title: str, width: int, *, light: bool) -> None:
        super().__init__(title, width)
        self.theme = DEFAULT_TERMINAL_THEME if light else SVG_EXPORT_THEME
        self.rows = 0
        self._attributes: dict[Style, tuple[str, str | None]] = {}

    @property
    def pixel_width(self) -> int:
        return int(self.PADDING * 2 + self.width * self.CHAR_WIDTH)

    @property
    def pixel_height(self) -> int:
        return self.PADDING * 2 + (self.rows + 2) * self.LINE_HEIGHT

    def header(self) -> str:
        width, height = self.pixel_width, f"{self.pixel_height:010d}"
        fg, bg = self.theme.foreground_color.hex, self.theme.background_color.hex
        baseline = self.PADDING + self.LINE_HEIGHT
        title, spaces = title_slot(self.title, _escape)
        shown, shown_spaces = title_slot(self.title, _svg_text)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">\n'
            f"<title>{title}</title>{spaces}\n"
            f'<rect width="100%" height="100%" fill="{bg}"/>\n'
            f'<g font-family="{_FONTS}" font-size="{self.FONT_SIZE}" fill="{fg}">\n'
            f'<text x="{self.PADDING}" y="{baseline}" font-weight="bold">'
            f"{shown}</text>{shown_spaces}\n"
        )

    def row(self, row: Text, console: Console) -> str:
        """Each segment its own <text>, placed at its column and stretched to its cells,
        so columns line up whatever font draws it (leading spaces are never collapsed)."""
        self.rows += 1
        baseline = self.PADDING + (self.rows + 1) * self.LINE_HEIGHT
        parts, column = [], 0
        for segment in _segments(row, console):
            cells = cell_len(segment.text)
            attributes, background = self._style(segment.style) if segment.style else ("", None)
            if background is not None:
                parts.append(
                    f'<rect x="{self._x(column):g}" y="{baseline - self.LINE_HEIGHT + 4}" '
                    f'width="{cells * self.CHAR_WIDTH:g}" height="{self.LINE_HEIGHT}" '
                    f'fill="{background}"/>'
                )
            text = segment.text.lstrip(" ")
            if text.strip():
                start = column + len(segment.text) - len(text)
                parts.append(
                    f'<text x="{self._x(start):g}" y="{baseline}" '
                    f'textLength="{cell_len(text) * self.CHAR_WIDTH:g}"{attributes}>'
                    f"{_svg_text(text)}</text>"
                )
            column += cells
        return "".join(parts) + "\n"

    def _x(self, column: int) -> float:
        return round(self.PADDING + column * self.CHAR_WIDTH, 1)

    def _style(self, style: Style) -> tuple[str, str | None]:
        known = self._attributes.get(style)
        if known is None:
            fg, bg = _colours(style, self.theme)
            attributes = f' fill="{fg}"'
            for rule in _font_rules(style):
                name, value = rule.split(": ")
                attributes += f' {name}="{value}"'
            known = self._attributes[style] = (attributes, bg)
        return known

    def footer(self) -> str:
        return "</g>\n</svg>\n"


def _svg_text(text: str) -> str:
    """Escaped, with spaces kept: no-break spaces, which no SVG renderer collapses."""
    return _escape(text).replace(" ", "&#160;")


def _format_for(path: Path, title: str, width: int, light: bool) -> _Format:
    kind = FORMATS[path.suffix.lower()]
    if kind == "Markdown":
        return _Markdown(title, width)
    if kind == "HTML":
        return _Html(title, width)
    if kind == "SVG":
        return _Svg(title, width, light=light)
    return _Format(title, width)


# --- writing as it goes --------------------------------------------------------------------


class OpenFiles:
    """The few transcript files kept open; the least recently used is closed first, so a
    thousand open sessions never hold a thousand file descriptors."""

    def __init__(self, limit: int = 16) -> None:
        self._limit = limit
        self._open: OrderedDict[Path, BinaryIO] = OrderedDict()

    def handle(self, path: Path, *, new: bool, exclusive: bool = False) -> BinaryIO:
        """The file open for writing; `new` creates it (only if it does not exist yet, for
        `exclusive`: FileExistsError rather than overwriting another file)."""
        handle = self._open.get(path)
        if handle is not None:
            self._open.move_to_end(path)
            return handle
        while len(self._open) >= self._limit:
            _, oldest = self._open.popitem(last=False)
            oldest.close()
        if not new:
            handle = path.open("r+b")
        else:
            handle = path.open("x+b") if exclusive else path.open("w+b")
        self._open[path] = handle
        return handle

    def close(self, path: Path) -> None:
        handle = self._open.pop(path, None)
        if handle is not None:
            handle.close()

    def close_all(self) -> None:
        for path in list(self._open):
            self.close(path)


def cut_note(lines: int, size: int, cap: Cap, tail: int) -> str:
    """What a cut transcript says where it was cut."""
    follow = f"; its last {tail} rows follow" if tail else ""
    return (
        f"… transcript cut here: {lines:,} more lines, {size:,} bytes not written "
        f"(a transcript stops at {cap.rows:,} rows or {cap.size // KIB:,} KiB){follow}"
    )


CUT_WHILE_OPEN = (
    "… transcript cut here: it reached its cap while the session went on; what was not "
    "written is counted when the session ends"
)


class TranscriptWriter:
    """One transcript file, appended to row by row, valid after every append, capped.

    `add` lays lines out (wrapping at `width` with a hanging indent) and appends them, or
    returns False once the transcript is cut: from then on the caller only counts, and
    `finish` ends the file with the cut note and the last lines it kept. Writing errors
    are OSError; `write()` turns them into one line for the command line.
    """

    def __init__(
        self,
        path: Path,
        title: str,
        console: Console,
        *,
        width: int = 100,
        cap: Cap | None = None,
        light: bool = False,
        files: OpenFiles | None = None,
        exclusive: bool = False,
    ) -> None:
        self.path = path
        self.console = console
        self.width = max(width, HANGING_INDENT + 10)
        self.format = _format_for(path, title, self.width, light)
        self.cap = cap or cap_for(path)
        self.cut = False
        self.finished = False
        self._files = files or OpenFiles(limit=1)
        self._header_size = 0
        self._end = 0  # where the next rows go: after the header and the rows so far
        self._rows = 0  # rows written
        self._size = 0  # the file's length now (rows + ending + footer)
        self._ending = b""  # between the rows and the footer: the cut note, the last lines
        self._write(b"", new=True, exclusive=exclusive)

    def add(self, lines: Iterable[Text]) -> bool:
        """Append these lines; False (nothing written) once the transcript is cut."""
        if self.cut or self.finished:
            return False
        rows = self._layout_all(lines)
        data = self._rows_of(rows)
        room = self.cap.size - min(END_ROOM, self.cap.size // 4) - len(self._footer())
        if self._end + len(data) > room or self._rows + len(rows) > self.cap.rows:
            self.cut = True
            self._ending = self._rows_of(self.layout(Text(CUT_WHILE_OPEN, style="bold yellow")))
            self._write(b"")
            return False
        self._write(data, rows_count=self.format.rows - self._rows)
        return True

    def retitle(self, title: str) -> None:
        """Change the title: the header is rewritten in place at the next write (the next
        rows, or `finish`)."""
        self.format.retitle(title)

    def move(self, target: Path, mover: Callable[[Path, Path], bool]) -> bool:
        """Move the file with `mover(source, target)` (False: it did not move), closed
        first (a file open elsewhere cannot be moved everywhere), then go on writing it
        wherever it is."""
        self._files.close(self.path)
        if not mover(self.path, target):
            return False
        self.path = target
        return True

    def finish(self, not_written: tuple[int, int] = (0, 0), last: Sequence[Text] = ()) -> None:
        """End the file: for a cut transcript, the note (lines and bytes the caller counted
        as not written) and then `last`, as much of it as fits under the cap."""
        if self.finished:
            return
        if self.cut:
            lines, size = not_written
            rows = self._layout_all(last)
            keep = self._rows_that_fit(rows)
            while True:
                for dropped in rows[: len(rows) - keep]:  # the oldest: counted instead
                    lines, size = lines + 1, size + _size_of(dropped)
                rows = rows[len(rows) - keep :]
                note = Text(cut_note(lines, size, self.cap, len(rows)), style="bold yellow")
                ending = self._rows_of([*self.layout(note), *rows])
                if not rows or self._end + len(ending) + len(self._footer()) <= self.cap.size:
                    break
                keep = len(rows) - 1
            self._ending = ending
        self._write(b"")
        self.finished = True
        self._files.close(self.path)

    def _rows_that_fit(self, rows: list[Text]) -> int:
        """How many of the last rows fit after the note: at most END_ROWS, and under the
        cap as each row is alone (a row's size hardly depends on where it stands)."""
        room = self.cap.size - self._end - len(self._footer()) - 2 * KIB  # the note
        keep = 0
        for row in reversed(rows[-END_ROWS:]):
            room -= len(self._rows_of([row])) + 16  # 16: its place, written longer
            if room < 0:
                break
            keep += 1
        return keep

    def layout(self, line: Text) -> list[Text]:
        """One line as rows of at most `width` cells; continuation rows indented."""
        plain = line.plain
        if "\n" not in plain and cell_len(plain) <= self.width:
            return [line]
        rows = line.wrap(self.console, self.width - HANGING_INDENT, overflow="fold")
        indent = " " * HANGING_INDENT
        return [rows[0], *(Text(indent).append_text(row) for row in rows[1:])]

    def _layout_all(self, lines: Iterable[Text]) -> list[Text]:
        return [row for line in lines for row in self.layout(line)]

    def _rows_of(self, rows: list[Text]) -> bytes:
        """Rows in the file's format, placed after the rows written (an SVG's rows know
        their height); what is not appended is wound back by the next call."""
        self.format.rows = self._rows
        return "".join(self.format.row(row, self.console) for row in rows).encode()

    def _footer(self) -> bytes:
        return self.format.footer().encode()

    def _write(
        self, rows: bytes, *, rows_count: int = 0, new: bool = False, exclusive: bool = False
    ) -> None:
        """Append rows, then the ending and the footer again; rewrite a changed header."""
        handle = self._files.handle(self.path, new=new, exclusive=exclusive)
        self._rows += rows_count
        self.format.rows = self._rows + (self._ending.count(b"\n") if self._ending else 0)
        if new or self.format.header_changed or self.format.height_in_header:
            header = self.format.header().encode()
            assert new or len(header) == self._header_size, "a header keeps its length"
            handle.seek(0)
            handle.write(header)
            self._header_size = len(header)
            self._end = max(self._end, self._header_size)
            self.format.header_changed = False
        handle.seek(self._end)
        ending = self._ending + self._footer()
        handle.write(rows + ending)
        self._end += len(rows)
        size = self._end + len(ending)
        if size < self._size:
            handle.truncate(size)
        self._size = size
        handle.flush()


# --- a recorded console, exported at once --------------------------------------------------


def _size_of(row: Text) -> int:
    """A row's bytes as text, its newline included."""
    return len(row.plain.encode("utf-8", "replace")) + 1


def recorded_rows(console: Console) -> list[Text]:
    """What a recording console printed, as rows of styled text.

    rich's own exporters read the record buffer the same way (it has no public reader).
    """
    with console._record_buffer_lock:
        segments = list(Segment.filter_control(console._record_buffer))
    rows = []
    for line in Segment.split_lines(segments):
        row = Text()
        for segment in line:
            row.append(segment.text, segment.style)
        rows.append(row)
    return rows


def write(console: Console, path: Path, title: str, *, cap: Cap | None = None) -> None:
    """Write what the console recorded (learn and demo --transcript); a cut one still
    ends with its last END_ROWS rows (where a lesson sums up)."""
    rows = recorded_rows(console)
    exporter = Console(
        file=io.StringIO(),
        width=console.width,
        color_system="truecolor",
        highlight=False,
        markup=False,
        emoji=False,
    )
    light = isinstance(console, ThemedConsole)
    try:
        cap = cap or cap_for(path, RECORDING_CAPS)
        writer = TranscriptWriter(path, title, exporter, width=console.width, cap=cap, light=light)
        for index, row in enumerate(rows):
            if not writer.add([row]):
                left = rows[index:]
                last = left[-END_ROWS:]
                skipped = left[: len(left) - len(last)]
                size = sum(_size_of(row) for row in skipped)
                writer.finish((len(skipped), size), last)
                break
        writer.finish()
    except OSError as error:
        raise UsageError(f"cannot write the transcript {path}: {error.strerror}") from error
