"""`smtp-tutor class`: the roster of a period, from the Maildir root alone (a table, JSON
or CSV); `class reset`, which begins a new period; `class export`, which bundles a
period's handouts and roster into a zip (tutor/classroom/handouts.py)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from rich.table import Table
from rich.text import Text

from tutor.classroom import handouts, periods
from tutor.classroom.on_disk import roster
from tutor.classroom.roster import StudentRow, iso_time, short_statuses
from tutor.errors import UsageError, UserError
from tutor.ui.common.safe import join, untrusted
from tutor.ui.common.terminal import Terminal, confirm
from tutor.ui.common.words import counted

CSV_COLUMNS = ("name", "lessons", "challenges", "current_step", "messages", "errors", "last_seen")


def show_roster(term: Terminal, root: Path, period: str | None, output: str) -> None:
    """Print the roster as a table, or as JSON or CSV for other programs (output)."""
    try:
        chosen, students = roster(root, period)
    except periods.PeriodError as error:
        raise UserError(f"{error} (under {root})") from error
    if output == "json":
        term.out.out(_json(chosen, students), highlight=False)
    elif output == "csv":
        term.out.out(_csv(students), highlight=False, end="")
    else:
        _table(term, chosen, students)


def _json(period: periods.Period, students: list[StudentRow]) -> str:
    record = {"period": period.name, "students": [student.as_json() for student in students]}
    return json.dumps(record, ensure_ascii=False, indent=2)


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
    heading = Text(f"Class period {period.name}: {counted(len(students), 'student')}")
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
            Text(short_statuses(student.lessons)),
            Text(short_statuses(student.challenges)),
            untrusted(student.current_step or "—"),
            str(student.all_messages),
            str(student.all_errors),
            Text(iso_time(student.last_seen)[11:19] if student.last_seen else "—"),
        )
    console.print(table)


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
            Text(". Earlier periods stay: smtp-tutor class --period NAME shows one."),
        )
    )
    return 0


def export_period(
    term: Terminal,
    root: Path,
    period: str | None,
    target: Path,
    transcripts: Path | None,
    *,
    force: bool,
) -> int:
    """Write the period's handouts and roster (JSON and CSV, as `class --json/--csv`
    print them) to the zip `target`; never over an existing file unless `force`."""
    try:
        chosen, until = periods.find(root, period)
        _, students = roster(root, chosen.name)
    except periods.PeriodError as error:
        raise UserError(f"{error} (under {root})") from error
    if not force and (target.exists() or target.is_symlink()):
        raise UserError(f"{target} exists: add --force to replace it")
    if not target.parent.is_dir():
        raise UserError(f"{target}: the folder {target.parent} does not exist")
    folders, gone = handouts.run_folders(root, chosen, until, transcripts)
    found = [handout for folder in folders for handout in handouts.handouts_in(folder)]
    bundle = handouts.Bundle(
        chosen.name,
        (_json(chosen, students) + "\n").encode(),
        _csv(students).encode(),
        sorted(found, key=lambda handout: handout.name_in_zip),
    )
    try:
        written = handouts.write_zip(target, bundle, replace=force)
    except FileExistsError as error:
        raise UserError(f"{target} exists: add --force to replace it") from error
    _say_what_was_exported(term, chosen, target, written)
    for folder in gone:
        term.err.print(
            join(
                Text("warning: the handouts folder "),
                untrusted(str(folder)),
                Text(" of this period is gone; if it moved, add --transcripts DIR"),
            )
        )
    if not folders and not gone:
        term.err.print(
            Text(
                "No handouts in this period: `smtp-tutor serve --transcripts DIR` writes them "
                "(or add --transcripts DIR if serve wrote them elsewhere)."
            )
        )
    for problem in written.skipped:
        term.err.print(join(Text("warning: not exported: "), untrusted(problem)))
    return 0


def _say_what_was_exported(
    term: Terminal, period: periods.Period, target: Path, written: handouts.Written
) -> None:
    counts = (
        f"{written.handouts} handout{'' if written.handouts == 1 else 's'} of "
        f"{written.students} student{'' if written.students == 1 else 's'}"
    )
    term.out.print(
        join(
            Text(f"Period {period.name}: {counts} and the roster, in "),
            untrusted(str(target)),
            Text("."),
        )
    )
