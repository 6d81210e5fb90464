"""Challenges: open-ended goals in the lesson format, judged on what the server stored.

A challenge is a lesson file (docs/lessons.md) kept in `challenges/`: a connect step and
one or a few `goal` steps whose checks look at the resulting server state (stored
messages, envelopes, replies, bounces), never at what was typed. Every goal step needs a
`counter_example`, so `validate` proves both that the canonical answer solves it and
that a plausible wrong attempt does not. Progress lives in the lessons' progress file
under the key "challenge:<id>" (see docs/challenges.md).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from tutor.engine.checks import evaluate
from tutor.engine.loader import LessonError, Problem, default_challenges_dir, load_all
from tutor.engine.model import Lesson, Step
from tutor.engine.progress import FINISHED, LessonProgress, Progress, Status
from tutor.server.bounce import delivery_failures
from tutor.smtp.events import BounceSent, Event, MessageStored

KEY_PREFIX = "challenge:"
SOLVED = FINISHED  # a challenge solved, with or without help
_RANK = {
    Status.NOT_STARTED: 0,
    Status.IN_PROGRESS: 1,
    Status.DONE_WITH_HELP: 2,
    Status.DONE: 3,
}
LABELS = {
    Status.NOT_STARTED: "not tried",
    Status.IN_PROGRESS: "tried, not solved yet",
    Status.DONE: "solved",
    Status.DONE_WITH_HELP: "solved with help",
}


def load_challenges(directory: Path | None = None) -> list[Lesson]:
    folder = directory or default_challenges_dir()
    if not folder.is_dir():
        raise LessonError(f"{folder}: no such challenges folder")
    return load_all(folder)


def static_problems(challenge: Lesson) -> list[Problem]:
    """What a challenge needs beyond a valid lesson: a goal, and a way to fail it."""
    path = Path(challenge.source)
    goals = [step for step in challenge.steps if step.kind == "goal"]
    if not goals:
        return [Problem(path, 1, "a challenge needs at least one `goal` step")]
    return [
        Problem(
            path,
            step.line,
            f"step {step.id!r}: a challenge's goal needs a `counter_example` "
            "(a plausible attempt that must not solve it)",
        )
        for step in goals
        if not step.counter_example
    ]


# --- judging ------------------------------------------------------------------------------


def unmet(step: Step, events: Sequence[Event]) -> list[str]:
    """The step's checks that do not hold on these events, in words (no repeats)."""
    missing: list[str] = []
    for check in step.checks:
        verdict = evaluate(check.kind, check.value, events)
        if not verdict.ok and verdict.why not in missing:
            missing.append(verdict.why)
    return missing


def bounce_pending(events: Sequence[Event]) -> bool:
    """A stored message will bounce, but its bounce is not among the events yet."""
    bounced = {e.original_queue_id for e in events if isinstance(e, BounceSent)}
    return any(
        isinstance(e, MessageStored)
        and e.queue_id not in bounced
        and bool(delivery_failures(list(e.relayed)))
        for e in events
    )


def settled_attempt(events: Sequence[Event]) -> bool:
    """The events hold a finished attempt to judge: a stored message (and its bounce)."""
    return any(isinstance(e, MessageStored) for e in events) and not bounce_pending(events)


# --- progress -----------------------------------------------------------------------------


def progress_key(challenge: Lesson) -> str:
    return KEY_PREFIX + challenge.id


def status(progress: Progress, challenge: Lesson) -> Status:
    return progress.of(progress_key(challenge)).status


def record(
    progress: Progress, challenge: Lesson, new_status: Status, assisted: Sequence[str]
) -> None:
    """Keep the best result: solving again with help, or trying again, never loses a solve.

    Lesson bookkeeping (last_lesson, which `smtp-tutor` continues with) is left alone.
    """
    key = progress_key(challenge)
    entry = progress.lessons.get(key) or LessonProgress()
    if _RANK.get(new_status, 0) >= _RANK.get(entry.status, 0):
        entry.status = new_status
        entry.assisted = sorted(assisted)
        if new_status in SOLVED:
            entry.completed_at = time.time()
    progress.lessons[key] = entry
    progress.save()
