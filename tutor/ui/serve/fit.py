"""Tables and lines that fit the terminal's width (docs/dashboard.md, "Widths").

A narrow terminal gets fewer columns, not narrower ones: each column has a priority, and
the least important go first until the rest fit. Only columns of names and sentences
may be shortened, never below MIN_WIDTH, and a shortened text ends at a word or keeps at
least MIN_KEPT letters of the word it cuts, so nothing reads "c…". A wide terminal shows
every column and every name whole.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.containers import Lines
from rich.rule import Rule
from rich.text import Text

MIN_WIDTH = 8  # a shortened column keeps at least this many cells
LOW_PRIORITY = 3  # columns dropped before a name is shortened (see layout)
MIN_KEPT = 3  # letters of a cut word kept before the ellipsis; fewer: cut before the word
ELLIPSIS = "…"
_WORD_END = re.compile(r"\w+\Z")
Justify = Literal["left", "right"]
KeyHints = list[tuple[str, str, int]]  # a footer's (keys, what they do, drop as a Column's)


@dataclass(frozen=True)
class Column:
    """header; drop: 0 is always shown, higher numbers are dropped first, and from
    LOW_PRIORITY on before any name is shortened below its comfortable width; flexible:
    names and sentences, which may be shortened (to min_width at the least) and share the
    room left; a column that is not flexible is shown whole or not at all."""

    header: str
    drop: int = 0
    flexible: bool = False
    min_width: int = MIN_WIDTH
    comfort: int = 16  # a flexible column narrower than this is a shortened one
    max_width: int | None = None
    justify: Justify = "left"


def shorten(text: Text, width: int) -> Text:
    """The text in at most `width` cells: as it is if it fits, else cut and ended with
    "…", at a word's end unless MIN_KEPT letters of the cut word fit."""
    plain = text.plain
    size = len(plain) if plain.isascii() else cell_len(plain)
    if size <= width:
        return text
    if width <= 1:
        return Text(ELLIPSIS[:width])
    end = _cut_at(plain, _cells_to_index(plain, width - 1))
    short = text[:end]
    short.append(ELLIPSIS)
    return short


def _cut_at(plain: str, end: int) -> int:
    """Where to cut: at `end`, or before the last word kept when fewer than MIN_KEPT of
    its letters would be left ("nc -C…" reads as a word cut short: "nc…" does not)."""
    word = _WORD_END.search(plain, 0, end)
    if word is not None and word.start() > 0 and end - word.start() < MIN_KEPT:
        end = word.start()
    while end > 0 and not plain[end - 1].isalnum() and plain[end - 1] not in ")]>\"'":
        end -= 1  # no space or dash just before the ellipsis
    return end


def _cells_to_index(plain: str, cells: int) -> int:
    """How many characters of plain fill at most `cells` cells."""
    if plain.isascii():
        return min(cells, len(plain))
    used = 0
    for index, char in enumerate(plain):
        used += cell_len(char)
        if used > cells:
            return index
    return len(plain)


def layout(
    columns: Sequence[Column], rows: Sequence[Sequence[Text]], width: int, *, gap: int = 1
) -> list[tuple[int, int]]:
    """The columns shown, as (index, width) in their order.

    First the low-priority columns (drop >= LOW_PRIORITY) go, most droppable first, until
    every name and sentence fits at its comfortable width; then those are shortened, down
    to their minimum width; only then do the other droppable columns go. The room left
    is shared among the shortened ones."""
    natural = []
    for index, column in enumerate(columns):
        cells = [_cell_width(row[index]) for row in rows]
        wanted = max([cell_len(column.header), *cells])
        if column.max_width is not None:
            wanted = min(wanted, column.max_width)
        natural.append(wanted)
    least = [
        min(natural[i], column.min_width) if column.flexible else natural[i]
        for i, column in enumerate(columns)
    ]
    comfortable = [
        min(natural[i], max(column.min_width, column.comfort)) if column.flexible else natural[i]
        for i, column in enumerate(columns)
    ]
    shown = list(range(len(columns)))

    def used(widths: list[int]) -> int:
        return sum(widths[i] for i in shown) + gap * max(0, len(shown) - 1)

    for widths, lowest in ((comfortable, LOW_PRIORITY), (least, 1)):
        while used(widths) > width:
            droppable = [i for i in shown if columns[i].drop >= lowest]
            if not droppable:
                break
            shown.remove(max(droppable, key=lambda i: (columns[i].drop, i)))
    sizes = {i: least[i] for i in shown}
    room = width - used(least)
    wanting = [i for i in shown if sizes[i] < natural[i]]
    while room > 0 and wanting:
        share = max(1, room // len(wanting))
        for i in list(wanting):
            given = min(share, natural[i] - sizes[i], room)
            sizes[i] += given
            room -= given
            if sizes[i] >= natural[i]:
                wanting.remove(i)
            if room == 0:
                break
    return [(i, sizes[i]) for i in shown]


def _cell_width(text: Text) -> int:
    plain = text.plain
    if "\n" in plain:
        return max(cell_len(line) for line in plain.split("\n"))
    return len(plain) if plain.isascii() else cell_len(plain)


def fitted_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Text]],
    width: int,
    *,
    shown: tuple[int, int] | None = None,
    styles: Sequence[str] = (),
) -> list[Text]:
    """A borderless table in `width` cells, one Text per screen line (its header first):
    columns chosen and sized by layout() from every row (so they keep still while the
    list scrolls), rows[start:end] shown, each cell shortened by shorten(). styles: per
    shown row. Built from Text alone: rich's Table costs some 0.15 ms a cell, and a
    roster of 40 is redrawn 8 times a second."""
    chosen = layout(columns, rows, width)
    lines = [_line([(Text(columns[i].header), size, columns[i].justify) for i, size in chosen])]
    lines[0].stylize("bold")
    start, end = shown if shown is not None else (0, len(rows))
    for number, row in enumerate(rows[start:end]):
        cells = [(row[i], size, columns[i].justify) for i, size in chosen]
        style = styles[number] if number < len(styles) else ""
        for line in _lines_of(cells):
            if style:
                line.stylize(style)
            lines.append(line)
    return lines


def _lines_of(cells: list[tuple[Text, int, Justify]]) -> list[Text]:
    """A row's screen lines: a cell of two lines (a warning under a reply) makes two."""
    if not any("\n" in cell.plain for cell, _, _ in cells):
        return [_line(cells)]
    split = [(cell.split("\n"), size, justify) for cell, size, justify in cells]
    height = max(len(parts) for parts, _, _ in split)
    return [
        _line([_part(parts, n, size, justify) for parts, size, justify in split])
        for n in range(height)
    ]


def _part(parts: Lines, number: int, size: int, justify: Justify) -> tuple[Text, int, Justify]:
    return (parts[number] if number < len(parts) else Text(), size, justify)


def _line(cells: list[tuple[Text, int, Justify]]) -> Text:
    line = Text(no_wrap=True, overflow="crop")
    for number, (cell, size, justify) in enumerate(cells):
        if number:
            line.append(" ")
        short = shorten(cell, size)
        padding = " " * max(0, size - short.cell_len)
        if justify == "right":
            line.append(padding)
            line.append_text(short)
        else:
            line.append_text(short)
            line.append(padding)
    return line


@dataclass(frozen=True)
class Part:
    """A piece of a one-line bar (title, footer); drop as for a Column."""

    text: Text
    drop: int = 0


def fitted_line(parts: Sequence[Part], width: int) -> Text:
    """The parts that fit in `width` cells, in order: the least important dropped first;
    what still does not fit is shortened at its end."""
    kept = list(parts)
    while sum(part.text.cell_len for part in kept) > width:
        droppable = [part for part in kept if part.drop > 0]
        if not droppable:
            break
        kept.remove(max(droppable, key=lambda part: (part.drop, kept.index(part))))
    line = Text()
    for part in kept:
        line.append_text(part.text)
    line = shorten(line, width)
    line.no_wrap = True
    line.overflow = "crop"
    return line


def key_parts(keys: KeyHints) -> list[Part]:
    """Footer hints (keys, what they do, drop), each a part of its own."""
    parts = [Part(Text(" KEYS ", style="bold reverse"))]
    for number, (key, what, drop) in enumerate(keys):
        text = Text("  " if number == 0 else " · ")
        text.append(key, style="bold")
        text.append(" " + what)
        parts.append(Part(text, drop))
    return parts


class Heading(Rule):
    """A section's heading: its title on a heavy rule, shortened as shorten() does when
    the terminal is narrower than the title."""

    def __init__(self, title: Text) -> None:
        super().__init__(title, align="left", characters="━", style="bold")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        title = self.title if isinstance(self.title, Text) else Text(self.title)
        fitted = Rule(
            shorten(title, max(1, options.max_width - 2)),
            align="left",
            characters=self.characters,
            style=self.style,
        )
        yield from fitted.__rich_console__(console, options)


class FittedLine:
    """A one-line bar fitted (fitted_line) to the width it is drawn in; `right`, if any,
    stays whole at the right end (the title bar's LIVE / PAUSED)."""

    def __init__(self, parts: Sequence[Part], right: Text | None = None) -> None:
        self.parts = parts
        self.right = right

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        right = self.right if self.right is not None else Text()
        line = fitted_line(self.parts, max(1, width - right.cell_len - (1 if self.right else 0)))
        if self.right is not None:
            line.append(" " * max(1, width - line.cell_len - right.cell_len))
            line.append_text(right)
        yield line


class FittedTable:
    """fitted_table() at the width it is drawn in."""

    def __init__(
        self,
        columns: Sequence[Column],
        rows: Sequence[Sequence[Text]],
        *,
        styles: Sequence[str] = (),
    ) -> None:
        self.columns = columns
        self.rows = rows
        self.styles = styles

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from fitted_table(self.columns, self.rows, options.max_width, styles=self.styles)
