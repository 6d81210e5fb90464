"""`lessons validate` and `challenge validate`: every problem as `file:line: what`,
then a replay of each file on the built-in server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.text import Text

from tutor.engine import validate as checks
from tutor.engine.loader import Problem, default_lessons_dir
from tutor.engine.model import Lesson
from tutor.errors import UserError
from tutor.ui.safe import untrusted


def validate(
    console: Console,
    targets: list[Path],
    *,
    replay: bool,
    noun: str = "lesson",
    extra: Callable[[Lesson], list[Problem]] | None = None,
) -> int:
    """Check the files (plus `extra` rules), replay them, and print one line per problem."""
    for target in targets:
        if not target.exists():
            raise UserError(f"{target}: no such file or folder")
    report = checks.check_files(targets)
    problems = list(report.problems)
    for lesson in report.lessons:
        if extra is not None:
            problems += extra(lesson)
        if replay:
            problems += checks.replay(lesson)
    for problem in problems:
        console.print(untrusted(str(problem)))
    what = "checked and replayed" if replay else "checked"
    verdict = "ok" if not problems else f"{len(problems)} problem(s)"
    style = "bold" if not problems else "bold red"
    console.print(Text(f"{len(report.lessons)} {noun}(s) {what}: {verdict}", style=style))
    return 0 if not problems else 1


def lesson_targets(paths: list[Path], lessons_dir: Path | None) -> list[Path]:
    return paths or [lessons_dir or default_lessons_dir()]
