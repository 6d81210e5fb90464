"""`smtp-tutor`, `learn`, `lessons`, `progress`: choosing a lesson and keeping progress."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from tutor.engine import progress as progress_mod
from tutor.engine.loader import default_lessons_dir, load_all
from tutor.engine.model import Lesson
from tutor.engine.progress import Progress, progress_path
from tutor.errors import UserError
from tutor.paths import data_home, default_maildir
from tutor.textsafe import visible
from tutor.ui.lesson_app import LessonScreen, completion_words
from tutor.ui.line_input import LineInput, PromptInput, StreamInput, interactive_terminal
from tutor.ui.safe import join, untrusted

WELCOME = (
    "Welcome to smtp-tutor. Each lesson starts a real SMTP server on this machine "
    "(loopback only: nothing leaves it) and you talk to it by typing real SMTP commands. "
    "After every line you see the exact bytes sent, the server's exact reply, and what it "
    "means. Type /help inside a lesson for the tutor's own commands."
)


def load_progress(errors: Console) -> Progress:
    progress = Progress.load()
    if progress.warning:
        errors.print(Text("warning: " + progress.warning, style="yellow"))
    return progress


def find_lesson(lessons: list[Lesson], ref: str) -> Lesson:
    for lesson in lessons:
        if ref == lesson.id or ref == str(lesson.number):
            return lesson
    names = ", ".join(f"{lesson.number} ({lesson.id})" for lesson in lessons)
    raise UserError(f"no lesson {visible(ref)!r}; there are: {names}")


def status_label(progress: Progress, lesson: Lesson) -> str:
    entry = progress.of(lesson.id)
    if entry.status == progress_mod.IN_PROGRESS and entry.step:
        return f"in progress (at {entry.step})"
    return entry.status


def lesson_table(lessons: list[Lesson], progress: Progress, *, plain: bool) -> RenderableType:
    if plain:
        out = Text()
        for lesson in lessons:
            out.append(
                join(
                    Text(f"{lesson.number:>2}. "),
                    untrusted(lesson.title),
                    untrusted(f"  [{status_label(progress, lesson)}]"),
                    Text("\n"),
                )
            )
        out.rstrip()
        return out
    table = Table(box=None, show_header=True, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("lesson")
    table.add_column("progress")
    for lesson in lessons:
        table.add_row(
            str(lesson.number), untrusted(lesson.title), Text(status_label(progress, lesson))
        )
    return table


def continue_target(lessons: list[Lesson], progress: Progress) -> Lesson | None:
    """The lesson to continue: the last one touched if unfinished, else the first not done."""
    by_id = {lesson.id: lesson for lesson in lessons}
    last = by_id.get(progress.last_lesson)
    if last is not None and progress.of(last.id).status == progress_mod.IN_PROGRESS:
        return last
    for lesson in lessons:
        if progress.of(lesson.id).status not in (progress_mod.DONE, progress_mod.DONE_WITH_HELP):
            return lesson
    return None


def list_lessons(console: Console, lessons_dir: Path | None, *, plain: bool) -> None:
    lessons = load_all(lessons_dir)
    progress = Progress.load()
    console.print(lesson_table(lessons, progress, plain=plain or not console.is_terminal))
    console.print(
        join(
            Text("lessons from: ", style="dim"),
            untrusted(str(lessons_dir or default_lessons_dir()), "dim"),
        )
    )
    console.print(
        join(Text("progress kept in: ", style="dim"), untrusted(str(progress_path()), "dim"))
    )
    console.print(Text("start one with: smtp-tutor learn N", style="dim"))


def menu(console: Console, errors: Console, lessons_dir: Path | None, *, plain: bool) -> int:
    """`smtp-tutor` with no arguments: the welcome, then the lesson menu."""
    lessons = load_all(lessons_dir)
    progress = load_progress(errors)
    if not interactive_terminal():
        list_lessons(console, lessons_dir, plain=plain)
        return 0
    if not progress.seen_welcome:
        console.print(Text(WELCOME))
        progress.seen_welcome = True
        progress.save()
    line_input = PromptInput(
        [], "number: start a lesson · c: continue · q: quit", history_file=None
    )
    while True:
        console.print()
        console.print(lesson_table(lessons, progress, plain=plain))
        target = continue_target(lessons, progress)
        hint = f"c = continue with lesson {target.number}, " if target else ""
        answer = line_input.read(f"Lesson ({hint}q = quit) > ")
        if answer is None or answer.strip().lower() in ("q", "quit", "/quit"):
            return 0
        choice = answer.strip()
        if choice.lower() in ("c", "") and target is not None:
            lesson = target
        else:
            try:
                lesson = find_lesson(lessons, choice)
            except UserError as error:
                console.print(Text(str(error), style="yellow"))
                continue
        _play(console, lessons, lesson, progress, _prompt_input(lesson), plain=plain)


def learn(
    console: Console,
    errors: Console,
    ref: str | None,
    *,
    script: str | None,
    lessons_dir: Path | None,
    plain: bool,
    telnet_port: int | None = None,
    transcript: Path | None = None,
    present: bool = False,
) -> int:
    """`smtp-tutor learn [LESSON]`: exit 0 when the lesson was completed, 1 when not.

    With telnet_port the learner uses a real client in another window (coach mode).
    """
    lessons = load_all(lessons_dir)
    progress = load_progress(errors)
    if ref is None:
        target = continue_target(lessons, progress)
        lesson = target or lessons[0]
    else:
        lesson = find_lesson(lessons, ref)
    if script is not None:
        stream: IO[str] = sys.stdin if script == "-" else _open_script(script)
        line_input: LineInput = StreamInput(stream, console)
    elif interactive_terminal():
        line_input = _prompt_input(lesson)
    else:
        line_input = StreamInput(sys.stdin, console)
    title = f"smtp-tutor: lesson {lesson.number}, {lesson.title}"
    try:
        if telnet_port is not None:
            from tutor.ui.coach_app import CoachScreen

            completed = _play(
                console,
                lessons,
                lesson,
                progress,
                line_input,
                plain=plain,
                present=present,
                screen=CoachScreen,
                port=telnet_port,
            )
        else:
            completed = _play(
                console, lessons, lesson, progress, line_input, plain=plain, present=present
            )
    finally:
        _write_transcript(console, transcript, title)
    return 0 if completed else 1


def demo(
    console: Console,
    ref: str,
    *,
    delay: float,
    lessons_dir: Path | None,
    plain: bool,
    transcript: Path | None,
    present: bool = False,
) -> int:
    """`smtp-tutor demo LESSON`: the tutor plays the lesson's canonical answers."""
    import io

    from tutor.ui.demo_app import DemoScreen

    lessons = load_all(lessons_dir)
    lesson = find_lesson(lessons, ref)
    screen = DemoScreen(
        lesson,
        len(lessons),
        console,
        StreamInput(io.StringIO(), console),
        Progress(progress_path(), persist=False),
        default_maildir(),
        plain=plain,
        delay=delay,
        interactive=interactive_terminal(),
        present=present,
    )
    try:
        completed = screen.play()
    finally:
        _write_transcript(
            console, transcript, f"smtp-tutor demo: lesson {lesson.number}, {lesson.title}"
        )
    return 0 if completed else 1


def _write_transcript(console: Console, path: Path | None, title: str) -> None:
    if path is not None:
        from tutor.ui import transcript_export

        transcript_export.write(console, path, title)
        console.print(
            join(Text("transcript written to ", style="dim"), untrusted(str(path), "dim"))
        )


def _open_script(path: str) -> IO[str]:
    try:
        return open(path, encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot read the script {path}: {error.strerror}") from error


def _prompt_input(lesson: Lesson) -> LineInput:
    home = data_home()
    home.mkdir(parents=True, exist_ok=True)
    return PromptInput(
        completion_words(lesson),
        "Enter: send · /hint /show /skip /back /quit",
        history_file=str(home / "history"),
    )


def _play(
    console: Console,
    lessons: list[Lesson],
    lesson: Lesson,
    progress: Progress,
    line_input: LineInput,
    *,
    plain: bool,
    present: bool = False,
    screen: type[LessonScreen] = LessonScreen,
    **options: Any,
) -> bool:
    """Play one lesson on a lesson screen (or a subclass: coach mode) and say if it was done."""
    played = screen(
        lesson,
        len(lessons),
        console,
        line_input,
        progress,
        default_maildir(),
        plain=plain,
        present=present,
        **options,
    )
    return played.play()


def reset_progress(
    console: Console, ref: str | None, *, yes: bool, lessons_dir: Path | None
) -> int:
    progress = Progress.load()
    if ref is not None:
        lesson = find_lesson(load_all(lessons_dir), ref)
        what, lesson_id = f"progress of lesson {lesson.number} ({lesson.id})", lesson.id
    else:
        what, lesson_id = "all progress", None
    if not yes:
        if not interactive_terminal():
            raise UserError(f"not resetting {what} without confirmation: add --yes")
        answer = input(f"Reset {what}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            console.print(Text("Nothing reset."))
            return 1
    progress.reset(lesson_id)
    console.print(Text(f"Reset {what}."))
    return 0
