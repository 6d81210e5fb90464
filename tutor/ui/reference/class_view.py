"""`smtp-tutor class`: the roster of a period, from the Maildir root alone (a table, JSON
or CSV), and `class reset`, which begins a new period."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from rich.table import Table
from rich.text import Text

from tutor.classroom import periods
from tutor.classroom.on_disk import roster
from tutor.classroom.roster import StudentRow, iso_time
from tutor.errors import UsageError, UserError
from tutor.ui.common.safe import join, untrusted
from tutor.ui.common.terminal import Terminal, confirm

CSV_COLUMNS = ("name", "lessons", "challenges", "current_step", "messages", "errors", "last_seen")


def show_roster(term: Terminal, root: Path, period: str | None, output: str) -> None:
    """Print the roster as a table, or as JSON or CSV for other programs (output)."""
    try:
        chosen, students = roster(root, period)
    except periods.PeriodError as error:
        raise UserError(f"{error} (under {root})") from error
    if output == "json":
        record = {
            "period": chosen.name,
            "students": [student.as_json() for student in students],
        }
        term.out.out(json.dumps(record, ensure_ascii=False, indent=2), highlight=False)
    elif output == "csv":
        term.out.out(_csv(students), highlight=False, end="")
    else:
        _table(term, chosen, students)


def _statuses(statuses: dict[str, str]) -> str:
    return " ".join(f"{n}:{s}" for n, s in sorted(statuses.items(), key=lambda i: int(i[0])))


def _csv(students: list[StudentRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for student in students:
        row = student.as_json()
        writer.writerow(
            [
                _cell(row["name"]),
                _statuses(row["lessons"]),
                _statuses(row["challenges"]),
                _cell(row["current_step"]),
                row["messages"],
                row["errors"],
                row["last_seen"] or "",
            ]
        )
    return buffer.getvalue()


def _cell(text: str) -> str:
    """A cell a spreadsheet will not run: a leading = + - @ is data, not a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _table(term: Terminal, period: periods.Period, students: list[StudentRow]) -> None:
    console = term.out
    heading = Text(f"Class period {period.name}: {len(students)} student(s)")
    if not students:
        console.print(heading)
        console.print(
            Text(
                "Nobody yet. Students connect to `smtp-tutor serve` and name themselves with "
                "NOOP student=NAME, or run `smtp-tutor learn N --class HOST:PORT --name NAME`."
            )
        )
        return
    table = Table(title=heading, title_justify="left", box=None, pad_edge=False)
    for name, justify in (
        ("student", "left"),
        ("lessons", "left"),
        ("challenges", "left"),
        ("now", "left"),
        ("msgs", "right"),
        ("errors", "right"),
        ("last seen", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for student in students:
        table.add_row(
            untrusted(student.name),
            Text(_short(student.lessons)),
            Text(_short(student.challenges)),
            untrusted(student.current_step or "—"),
            str(student.all_messages),
            str(student.all_errors),
            Text(iso_time(student.last_seen)[11:19] if student.last_seen else "—"),
        )
    console.print(table)


def _short(statuses: dict[str, str]) -> str:
    """1✓ 2… : done (with or without help) and in progress, compactly."""
    marks = {"done": "✓", "done with help": "✓h", "in progress": "…"}
    return (
        " ".join(
            f"{n}{marks.get(s, '?')}" for n, s in sorted(statuses.items(), key=lambda i: int(i[0]))
        )
        or "—"
    )


def reset_period(term: Terminal, root: Path, *, yes: bool) -> int:
    """Begin a new period: what comes next is a new roster; nothing is deleted."""
    current = periods.current(root)
    if current is not None and not yes:
        if not term.stdin_isatty:
            raise UsageError("not beginning a new period without confirmation: add --yes")
        question = f"End period {current.name} and begin a new one? [y/N] "
        if not confirm(term, question):
            term.out.print(Text("Nothing changed."))
            return 1
    begun = periods.begin(root)  # a file error names its path (cli's file problems)
    term.out.print(
        join(
            Text(f"Period {begun.name} begun under "),
            untrusted(str(root)),
            Text(". The earlier ones stay: smtp-tutor class --period NAME."),
        )
    )
    return 0
