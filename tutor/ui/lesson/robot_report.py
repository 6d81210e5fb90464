"""`lessons validate --follow-hints` and `challenge validate --follow-hints`: the learner
robot (tutor/robot) takes every lesson or challenge, with colour and with --plain, and
this prints one line per run, then the last screen of each failed run."""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text

from tutor.errors import UsageError, UserError
from tutor.ui.common.safe import untrusted
from tutor.ui.common.terminal import Terminal
from tutor.ui.common.words import counted


def follow_hints(terminal: Terminal, kind: str, chosen: list[str], folder: Path | None) -> int:
    """Run the robot over `chosen` numbers (all when empty); 0 only if every run passed."""
    if not hasattr(os, "openpty"):
        raise UserError("--follow-hints needs a pseudo-terminal, which this system lacks")
    from tutor.robot import Course, Robot, numbers

    course = Course(kind, folder)
    available = numbers(course)
    wanted = [_number(word, kind) for word in chosen] or available
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise UserError(f"no {kind} {unknown[0]} (there are {len(available)})")
    console = terminal.out
    failed = []
    for number in wanted:
        for plain in (False, True):
            outcome = Robot(course, number, plain=plain).run()
            style = "" if outcome.ok else "bold red"
            console.print(untrusted(outcome.line(), style), soft_wrap=True)  # one line
            if not outcome.ok:
                failed.append(outcome)
    for outcome in failed:  # the rows as the robot saw them: as wide as its terminal
        run = outcome.line().split(": FAILED")[0]
        console.print(Text(f"\n── {run}, the last screen ──", style="bold"))
        for row in outcome.screen:
            console.print(untrusted(row), soft_wrap=True)
    runs = len(wanted) * 2
    verdict = "ok" if not failed else f"{len(failed)} failed"
    console.print(Text(f"{counted(runs, 'run')} following the hints: {verdict}", style="bold"))
    return 0 if not failed else 1


def _number(word: str, kind: str) -> int:
    if not word.isdigit():
        raise UsageError(f"--follow-hints takes {kind} numbers, not {word!r}")
    return int(word)
