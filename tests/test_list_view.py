"""The lesson list and the challenge list, laid out by one view (ui/lesson/list_view.py):
a table at a terminal, numbered lines otherwise; a challenge's summary under its title;
titles and summaries are lesson text, shown made visible."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console, RenderableType
from rich.style import Style

from tutor.engine.model import Lesson
from tutor.engine.progress import Progress, Status
from tutor.ui.lesson.challenge_app import challenge_table
from tutor.ui.lesson.learn_app import lesson_table

ENTRIES = [
    Lesson(id="one", number=1, title="Greeting", summary="Say hello.", objectives=(), steps=()),
    Lesson(
        id="two",
        number=2,
        title="Red \x1b[31mtitle",
        summary="A summary long enough to fold in a table thirty-odd characters wide.",
        objectives=(),
        steps=(),
    ),
    Lesson(id="twelve", number=12, title="No summary", summary="", objectives=(), steps=()),
]


@pytest.fixture
def progress(tmp_path: Path) -> Progress:
    progress = Progress(tmp_path / "progress.json", persist=False)
    progress.update("one", status=Status.IN_PROGRESS, step="helo")
    progress.update("two", status=Status.DONE)
    progress.update("challenge:one", status=Status.DONE_WITH_HELP)
    progress.update("challenge:twelve", status=Status.IN_PROGRESS)
    return progress


def rendered(renderable: RenderableType) -> list[str]:
    console = Console(record=True, width=60, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return [line.rstrip() for line in console.export_text().splitlines()]


def test_the_lesson_list(progress: Progress) -> None:
    assert rendered(lesson_table(ENTRIES, progress, plain=True)) == [
        " 1. Greeting  [in progress (at helo)]",
        " 2. Red \\x1b[31mtitle  [done]",
        "12. No summary  [not started]",
    ]
    assert rendered(lesson_table(ENTRIES, progress, plain=False)) == [
        " #  lesson             progress",
        " 1  Greeting           in progress (at helo)",
        " 2  Red \\x1b[31mtitle  done",
        "12  No summary         not started",
    ]


def test_the_challenge_list_puts_each_summary_under_its_title(progress: Progress) -> None:
    assert rendered(challenge_table(ENTRIES, progress, plain=True)) == [
        " 1. Greeting  [solved with help]",
        "    Say hello.",
        " 2. Red \\x1b[31mtitle  [not tried]",
        "    A summary long enough to fold in a table thirty-odd",
        "characters wide.",
        "12. No summary  [tried, not solved yet]",
    ]
    assert rendered(challenge_table(ENTRIES, progress, plain=False)) == [
        " #  challenge                          progress",
        " 1  Greeting                           solved with help",
        "    Say hello.",
        " 2  Red \\x1b[31mtitle                  not tried",
        "    A summary long enough to fold in",
        "    a table thirty-odd characters",
        "    wide.",
        "12  No summary                         tried, not solved yet",
        "",
    ]


@pytest.mark.parametrize("plain", [True, False])
def test_a_summary_is_dim_and_a_title_is_not(progress: Progress, plain: bool) -> None:
    console = Console(file=io.StringIO(), width=60, color_system="standard", no_color=False)
    segments = list(console.render(challenge_table(ENTRIES, progress, plain=plain)))

    def style_of(text: str) -> Style:
        return next(s.style or Style() for s in segments if text in s.text)

    assert style_of("Say hello.").dim
    assert not style_of("Greeting").dim
