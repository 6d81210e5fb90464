"""`smtp-tutor lessons validate`: every problem as `file:line: what`, then a replay."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.text import Text

from tutor.engine import validate as checks
from tutor.engine.loader import default_lessons_dir
from tutor.ui.safe import untrusted


def validate(console: Console, paths: list[Path], lessons_dir: Path | None, *, replay: bool) -> int:
    targets = paths or [lessons_dir or default_lessons_dir()]
    report = checks.check_files(targets)
    problems = list(report.problems)
    if replay:
        for lesson in report.lessons:
            problems += checks.replay(lesson)
    for problem in problems:
        console.print(untrusted(str(problem)))
    what = "checked and replayed" if replay else "checked"
    verdict = "ok" if not problems else f"{len(problems)} problem(s)"
    style = "bold" if not problems else "bold red"
    console.print(Text(f"{len(report.lessons)} lesson(s) {what}: {verdict}", style=style))
    return 0 if not problems else 1
