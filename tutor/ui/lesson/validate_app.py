"""`lessons validate` and `challenge validate`: every problem as `file:line: what`,
then a replay of each file on the built-in server."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from rich.console import Console, RenderableType
from rich.text import Text

from tutor.engine import validate as checks
from tutor.engine.loader import Problem, default_lessons_dir
from tutor.engine.model import Lesson
from tutor.errors import UserError
from tutor.ui.common import lesson_view as view
from tutor.ui.common.safe import lesson_markdown, untrusted
from tutor.ui.common.terminal import build_console
from tutor.ui.common.words import counted

RENDER_WIDTH = 1000  # wide enough that no text wraps: a `<…>` or an offer stays on one line


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
        problems += checks.validate_lesson(lesson, render_as_shown, replay=replay)
    for problem in problems:
        console.print(untrusted(str(problem)))
    what = "checked and replayed" if replay else "checked"
    verdict = "ok" if not problems else counted(len(problems), "problem")
    style = "bold" if not problems else "bold red"
    console.print(Text(f"{counted(len(report.lessons), noun)} {what}: {verdict}", style=style))
    return 0 if not problems else 1


def lesson_targets(paths: list[Path], lessons_dir: Path | None) -> list[Path]:
    return paths or [lessons_dir or default_lessons_dir()]


def render_as_shown(shown: checks.Shown) -> tuple[str, str]:
    """A lesson text as the screen prints it, in colour and without (--plain, NO_COLOR,
    TERM=dumb): the same view functions, a recording console, its text read back."""
    return _printed(_renderable(shown), colour=True), _printed(_renderable(shown), colour=False)


def _renderable(shown: checks.Shown) -> RenderableType:
    if shown.form == checks.HINT:
        return view.hint_view(shown.number, shown.total, shown.text)
    if shown.form == checks.QUESTION:
        return view.question_view(shown.number, shown.text)
    if shown.form == checks.LIST:
        return view.bullets([shown.text])
    if shown.form == checks.PLAIN:
        return untrusted(shown.text)
    return lesson_markdown(shown.text)


def _printed(renderable: RenderableType, *, colour: bool) -> str:
    console = build_console(io.StringIO(), colour=colour, force_terminal=colour, record=True)
    console.width = RENDER_WIDTH
    console.print(renderable)
    return console.export_text(styles=False)
