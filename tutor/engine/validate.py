"""`lessons validate`: static checks, then a replay of every lesson on the real server.

The replay sends each step's canonical answer and proves it completes the step; each
counter-example is sent in a fresh session, after the canonical steps before it, and
must *not* complete its step.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from tutor.engine.answers import Answer, canonical
from tutor.engine.driver import LessonDriver, Turn, persona_for
from tutor.engine.loader import Problem, key_line, lesson_files, parse
from tutor.engine.model import Lesson, Step
from tutor.engine.questions import fact
from tutor.engine.runner import LessonRun
from tutor.server.runner import TeachingServer

EXPLAIN_MAX_LINES = 12  # at 80 columns: about a screen's worth per step
EXPLAIN_WIDTH = 80


@dataclass
class Report:
    lessons: list[Lesson]
    problems: list[Problem]


def check_files(paths: list[Path]) -> Report:
    """Load every file, collecting every problem (not only the first)."""
    files: list[Path] = []
    for path in paths:
        files += lesson_files(path) if path.is_dir() else [path]
    problems: list[Problem] = []
    lessons: list[Lesson] = []
    seen: dict[str, Path] = {}
    for number, path in enumerate(files, start=1):
        before = len(problems)
        lesson = parse(path, number, problems)
        if lesson is None or len(problems) > before:
            continue
        if lesson.id in seen:
            problems.append(
                Problem(path, 1, f"lesson id {lesson.id!r} is also used by {seen[lesson.id]}")
            )
        seen[lesson.id] = path
        problems += _length_problems(path, lesson)
        lessons.append(lesson)
    return Report(lessons, problems)


def _length_problems(path: Path, lesson: Lesson) -> list[Problem]:
    out = []
    for step in lesson.steps:
        for name, text in (("explain", step.explain), ("after", step.after)):
            rows = sum(max(1, -(-len(line) // EXPLAIN_WIDTH)) for line in text.splitlines())
            if rows > EXPLAIN_MAX_LINES:
                out.append(
                    Problem(
                        path,
                        step.line,
                        f"step {step.id!r}: {name} is {rows} lines at "
                        f"{EXPLAIN_WIDTH} columns; keep it to {EXPLAIN_MAX_LINES}",
                    )
                )
    return out


def replay(lesson: Lesson, tls_dir: Path | None = None) -> list[Problem]:
    """Play the canonical answers, then every counter-example; return what failed."""
    path = Path(lesson.source)
    problems: list[Problem] = []
    with tempfile.TemporaryDirectory(prefix="smtp-tutor-validate-") as scratch:
        server = _server(lesson, Path(scratch), tls_dir)
        with server:
            problems += _play(lesson, server, path, stop_before=None, counter=None)

            for index, step in enumerate(lesson.steps):
                if step.counter_example:
                    problems += _play(lesson, server, path, stop_before=index, counter=step)
    return problems


def _server(lesson: Lesson, root: Path, tls_dir: Path | None) -> TeachingServer:
    context = None
    persona = persona_for(lesson)
    if tls_dir is not None and persona.tls:
        from tutor.server.tlsmaterial import server_context

        context = server_context(persona.hostname, tls_dir)
    return TeachingServer(root / "Maildir", persona, tls_context=context)


def _play(
    lesson: Lesson,
    server: TeachingServer,
    path: Path,
    *,
    stop_before: int | None,
    counter: Step | None,
) -> list[Problem]:
    """One fresh session: canonical answers up to `stop_before`, then the counter-example."""
    server.reset(persona_for(lesson))  # a fresh session on a fresh server state
    run = LessonRun(lesson)
    driver = LessonDriver(lesson, run, server.maildir, server=server)
    try:
        first = lesson.steps[0]
        turn = driver.connect_for(first) if first.kind == "connect" else driver.connect()
        if turn.error:
            return [Problem(path, 1, f"cannot connect to the built-in server: {turn.error}")]
        while not run.finished:
            index, step = run.index, run.step
            if stop_before == index and counter is not None:
                _answer(driver, counter, counter.counter_example.splitlines())
                if run.index > index:
                    return [
                        Problem(
                            path,
                            key_line(path, "counter_example", step.line),
                            f"step {step.id!r}: counter_example "
                            f"{counter.counter_example!r} completed the step",
                        )
                    ]
                return []
            turns = _answer(driver, step, None)
            if run.index == index:
                return [
                    Problem(
                        path,
                        step.line,
                        f"step {step.id!r}: its canonical answer did not "
                        f"complete it ({_last_reply(turns)})",
                    )
                ]
        return [
            Problem(
                path,
                question.line,
                f"question {question.ask!r}: its fact "
                f"{question.fact!r} has no answer after the canonical session",
            )
            for question in lesson.questions
            if counter is None and not fact(question.fact, driver.history)
        ]
    finally:
        driver.close_client()


def _answer(driver: LessonDriver, step: Step, override: list[str] | None) -> list[Turn]:
    """Send a step's canonical answer (or the given lines) the way a learner would."""
    answer = Answer("lines", tuple(override)) if override is not None else canonical(step)
    if answer.action == "advance":
        driver.run.advance()
        return []
    if answer.action == "connect":
        return [driver.connect_for(step)]
    if answer.action == "library":
        return [driver.send_with_library(answer.lines)]
    if answer.action == "pipeline":
        return [driver.send_pipeline(answer.lines)]
    turns = []
    for line in answer.lines:
        if not driver.connected:
            turns.append(driver.connect())
        turns.append(driver.send(line))
    return turns


def _last_reply(turns: list[Turn]) -> str:
    for turn in reversed(turns):
        if turn.error:
            return turn.error
        for exchange in reversed(turn.exchanges):
            if exchange.replies:
                return "the server replied " + exchange.replies[-1]
    return "no reply"
