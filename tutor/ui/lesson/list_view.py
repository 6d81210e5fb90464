"""The numbered lists of lessons and of challenges, with the learner's progress.

`smtp-tutor lessons` (and the menu) and `smtp-tutor challenge` lay their lists out alike:
a table at a terminal, numbered lines with the progress in brackets otherwise; a
challenge's summary goes under its title, because its goal is what the learner picks by.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from tutor.engine.model import Lesson
from tutor.engine.progress import progress_path
from tutor.ui.common.safe import join, untrusted


def progress_list(
    entries: Sequence[Lesson],
    progress_label: Callable[[Lesson], str],
    *,
    noun: str,
    summaries: bool,
    plain: bool,
) -> RenderableType:
    """A row per lesson file: its number, its title (and summary) and its progress."""
    if plain:
        out = Text()
        for entry in entries:
            out.append(join(*_plain_row(entry, progress_label(entry), summaries=summaries)))
        out.rstrip()
        return out
    table = Table(box=None, show_header=True, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column(noun)
    table.add_column("progress")
    for entry in entries:
        table.add_row(
            str(entry.number),
            _title_cell(entry, summaries=summaries),
            Text(progress_label(entry)),
        )
    return table


def where_from(plural: str, folder: Path) -> list[Text]:
    """The lines under a list: where its files are read from and where progress is kept."""
    return [
        join(Text(f"{plural} from: ", style="dim"), untrusted(str(folder), "dim")),
        join(Text("progress kept in: ", style="dim"), untrusted(str(progress_path()), "dim")),
    ]


def _plain_row(entry: Lesson, label: str, *, summaries: bool) -> list[Text]:
    row = [Text(f"{entry.number:>2}. "), untrusted(entry.title), untrusted(f"  [{label}]")]
    if summaries:
        row += [Text("\n    "), untrusted(entry.summary, "dim")]
    return [*row, Text("\n")]


def _title_cell(entry: Lesson, *, summaries: bool) -> Text:
    if not summaries:
        return untrusted(entry.title)
    return join(untrusted(entry.title), Text("\n"), untrusted(entry.summary, "dim"))
