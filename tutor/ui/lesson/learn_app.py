"""`smtp-tutor`, `learn`, `lessons`, `progress`: choosing a lesson and keeping progress."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console, RenderableType
from rich.text import Text

from tutor.engine.loader import default_lessons_dir, find_by_ref, load_all, load_ref
from tutor.engine.model import Lesson
from tutor.engine.progress import FINISHED, Progress, Status, progress_path
from tutor.errors import UsageError, UserError
from tutor.ui.common.line_input import (
    LineInput,
    PromptInput,
    StreamInput,
    choose_input,
    history_file,
)
from tutor.ui.common.reply_detail import ReplyMemory
from tutor.ui.common.safe import join, untrusted
from tutor.ui.common.terminal import Terminal, confirm
from tutor.ui.lesson.lesson_app import LessonScreen, completion_words
from tutor.ui.lesson.list_view import progress_list, where_from

if TYPE_CHECKING:
    from tutor.engine.class_report import ClassTarget

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


def status_label(progress: Progress, lesson: Lesson) -> str:
    entry = progress.of(lesson.id)
    if entry.status == Status.IN_PROGRESS and entry.step:
        return f"in progress (at {entry.step})"
    return entry.status


def lesson_table(lessons: list[Lesson], progress: Progress, *, plain: bool) -> RenderableType:
    return progress_list(
        lessons, partial(status_label, progress), noun="lesson", summaries=False, plain=plain
    )


def continue_target(lessons: list[Lesson], progress: Progress) -> Lesson | None:
    """The lesson to continue: the last one touched if unfinished, else the first not done."""
    by_id = {lesson.id: lesson for lesson in lessons}
    last = by_id.get(progress.last_lesson)
    if last is not None and progress.of(last.id).status == Status.IN_PROGRESS:
        return last
    for lesson in lessons:
        if progress.of(lesson.id).status not in FINISHED:
            return lesson
    return None


def list_lessons(term: Terminal, lessons_dir: Path | None) -> None:
    console, plain = term.out, term.plain
    lessons = load_all(lessons_dir)
    progress = load_progress(term.err)  # a damaged file moved aside is said, once
    console.print(lesson_table(lessons, progress, plain=plain or not console.is_terminal))
    for line in where_from("lessons", lessons_dir or default_lessons_dir()):
        console.print(line)
    console.print(Text("start one with: smtp-tutor learn N", style="dim"))


MENU_KEYS = "number: start a lesson · c: continue · q: quit"


def menu(term: Terminal, lessons_dir: Path | None, maildir: Path) -> int:
    """`smtp-tutor` with no arguments: the welcome, then the lesson menu."""
    console, plain = term.out, term.plain
    lessons = load_all(lessons_dir)
    progress = load_progress(term.err)
    if not (term.stdin_isatty and term.stdout_isatty):  # a pipe: the list, no questions
        list_lessons(term, lessons_dir)
        return 0
    if not progress.seen_welcome:
        console.print(Text(WELCOME))
        progress.seen_welcome = True
        progress.save()
    # At a terminal that cannot take prompt_toolkit (TERM=dumb): the same menu, plain lines.
    line_input = choose_input(term, None, partial(PromptInput, [], MENU_KEYS, history_file=None))
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
                lesson = find_by_ref(lessons, choice)
            except UserError as error:
                console.print(Text(str(error), style="yellow"))
                continue
        _play(
            console,
            len(lessons),
            lesson,
            progress,
            choose_input(term, None, partial(_prompt_input, lesson)),
            maildir,
            plain=plain,
            replies=ReplyMemory(term.verbosity),
        )


def learn(
    term: Terminal,
    ref: str | None,
    *,
    script: str | None,
    lessons_dir: Path | None,
    maildir: Path,
    telnet_port: int | None = None,
    transcript: Path | None = None,
    present: bool = False,
    class_target: ClassTarget | None = None,
) -> int:
    """`smtp-tutor learn [LESSON]`: exit 0 when the lesson was completed, 1 when not.

    With telnet_port the learner uses a real client in another window (coach mode); with
    class_target each finished step is reported to the teacher's server.
    """
    if transcript is not None:
        term = term.recorded()
    console, plain = term.out, term.plain
    if ref is None:
        lessons = load_all(lessons_dir)
        progress = load_progress(term.err)
        lesson, total = continue_target(lessons, progress) or lessons[0], len(lessons)
    else:
        lesson, total = load_ref(lessons_dir, ref)
        progress = load_progress(term.err)
    line_input = choose_input(term, script, lambda: _prompt_input(lesson))
    title = f"smtp-tutor: lesson {lesson.number}, {lesson.title}"
    screen: type[LessonScreen] = LessonScreen
    options: dict[str, Any] = {}  # for coach mode, --class
    if telnet_port is not None:
        from tutor.ui.lesson.coach_app import CoachScreen

        screen, options = CoachScreen, {"port": telnet_port}
    if class_target is not None:
        from tutor.ui.lesson.class_reporter import ClassReporter, class_outbox

        options["reporter"] = ClassReporter(
            class_target, console, "lesson", plain=plain, outbox=class_outbox()
        )
    try:
        completed = _play(
            console,
            total,
            lesson,
            progress,
            line_input,
            maildir,
            plain=plain,
            present=present,
            screen=screen,
            replies=ReplyMemory(term.verbosity),
            **options,
        )
    finally:
        _write_transcript(console, transcript, title)
    return 0 if completed else 1


def demo(
    term: Terminal,
    ref: str,
    *,
    delay: float,
    lessons_dir: Path | None,
    maildir: Path,
    transcript: Path | None,
    present: bool = False,
) -> int:
    """`smtp-tutor demo LESSON`: the tutor plays the lesson's canonical answers."""
    import io

    from tutor.ui.lesson.demo_app import DemoScreen

    console = term.recorded().out if transcript is not None else term.out
    lesson, total = load_ref(lessons_dir, ref)
    screen = DemoScreen(
        lesson,
        total,
        console,
        StreamInput(io.StringIO(), console),
        Progress(progress_path(), persist=False),
        maildir,
        plain=term.plain,
        delay=delay,
        interactive=term.interactive,
        present=present,
        replies=ReplyMemory(term.verbosity),
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
        from tutor.ui.common import transcript_export

        transcript_export.write(console, path, title)
        console.print(
            join(Text("transcript written to ", style="dim"), untrusted(str(path), "dim"))
        )


def _prompt_input(lesson: Lesson) -> LineInput:
    return PromptInput(
        completion_words(lesson),
        "Enter: send · /hint /show /skip /back /quit",
        history_file=history_file("history"),
    )


def _play(
    console: Console,
    total: int,
    lesson: Lesson,
    progress: Progress,
    line_input: LineInput,
    maildir: Path,
    *,
    plain: bool,
    present: bool = False,
    screen: type[LessonScreen] = LessonScreen,
    **options: Any,
) -> bool:
    """Play one lesson on a lesson screen (or a subclass: coach mode) and say if it was done."""
    played = screen(
        lesson,
        total,
        console,
        line_input,
        progress,
        maildir,
        plain=plain,
        present=present,
        **options,
    )
    return played.play()


def reset_progress(term: Terminal, ref: str | None, *, yes: bool, lessons_dir: Path | None) -> int:
    console = term.out
    progress = load_progress(term.err)
    if ref is not None:
        lesson = find_by_ref(load_all(lessons_dir), ref)
        what, lesson_id = f"progress of lesson {lesson.number} ({lesson.id})", lesson.id
    else:
        what, lesson_id = "all progress", None
    if not yes:
        if not term.stdin_isatty:
            raise UsageError(f"not resetting {what} without confirmation: add --yes")
        if not confirm(term, f"Reset {what}? [y/N] "):
            console.print(Text("Nothing reset."))
            return 1
    progress.reset(lesson_id)
    console.print(Text(f"Reset {what}."))
    return 0
