"""Progress kept between runs: JSON under the data directory, written atomically.

A corrupt file is not fatal: it is moved aside (kept as a backup), a warning is given,
and the learner starts fresh. A file written by an older version loads too: fields it
lacks take their defaults, and one unreadable lesson entry costs only that lesson its
progress. A saved step that a newer lesson no longer has is the lesson screen's concern:
it starts the lesson from the beginning and says so.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from tutor.paths import data_home


class Status(StrEnum):
    """Where a learner stands in a lesson or challenge. The values are what progress.json
    stores and what the lesson list shows, so they never change."""

    NOT_STARTED = "not started"
    IN_PROGRESS = "in progress"
    DONE = "done"
    DONE_WITH_HELP = "done with help"


FINISHED = (Status.DONE, Status.DONE_WITH_HELP)


def progress_path() -> Path:
    return data_home() / "progress.json"


@dataclass
class LessonProgress:
    step: str = ""  # the step to resume at
    status: Status = Status.NOT_STARTED
    assisted: list[str] = field(default_factory=list)
    completed_at: float | None = None
    session: list[str] = field(default_factory=list)  # the learner's lines, to replay on resume


@dataclass
class Progress:
    path: Path
    lessons: dict[str, LessonProgress] = field(default_factory=dict)
    last_lesson: str = ""
    seen_welcome: bool = False
    warning: str = ""  # set when a corrupt file was moved aside
    persist: bool = True  # False for a demo: nothing is written

    @classmethod
    def load(cls, path: Path | None = None) -> Progress:
        path = path or progress_path()
        progress = cls(path)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return progress
        except OSError as error:
            progress.warning = f"could not read {path} ({error.strerror}); starting fresh"
            return progress
        try:
            data = json.loads(raw)
            lessons = data.get("lessons", {})
            if not isinstance(lessons, dict):
                raise TypeError("lessons is not an object")
            progress.last_lesson = str(data.get("last_lesson", ""))
            progress.seen_welcome = bool(data.get("seen_welcome", False))
            unreadable = []
            for lesson_id, entry in lessons.items():
                parsed = _lesson_entry(entry)
                if parsed is None:
                    unreadable.append(str(lesson_id))
                else:
                    progress.lessons[str(lesson_id)] = parsed
            if unreadable:  # one odd entry costs that lesson its progress, not every lesson
                progress.warning = (
                    f"could not read the progress of {', '.join(unreadable)} in {path.name}; "
                    + ("it starts" if len(unreadable) == 1 else "they start")
                    + " fresh"
                )
        except (ValueError, TypeError, AttributeError):
            backup = path.with_name(f"{path.stem}.corrupt-{int(time.time())}{path.suffix}")
            os.replace(path, backup)
            progress.lessons.clear()
            progress.warning = (
                f"progress file was damaged; kept it as {backup.name} and started fresh"
            )
        return progress

    def of(self, lesson_id: str) -> LessonProgress:
        """A lesson's progress; a lesson never started (or renamed since) has none."""
        return self.lessons.get(lesson_id) or LessonProgress()

    def update(self, lesson_id: str, **changes: Any) -> None:
        entry = self.lessons.setdefault(lesson_id, LessonProgress())
        for key, value in changes.items():
            setattr(entry, key, value)
        self.last_lesson = lesson_id
        self.save()

    def reset(self, lesson_id: str | None = None) -> None:
        if lesson_id is None:
            self.lessons.clear()
            self.last_lesson = ""
        else:
            self.lessons.pop(lesson_id, None)
        self.save()

    def save(self) -> None:
        if not self.persist:
            return
        data = {
            "format": 1,
            "last_lesson": self.last_lesson,
            "seen_welcome": self.seen_welcome,
            "lessons": {
                key: {
                    "step": v.step,
                    "status": v.status,
                    "assisted": v.assisted,
                    "completed_at": v.completed_at,
                    "session": v.session,
                }
                for key, v in self.lessons.items()
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".progress-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _lesson_entry(raw: Any) -> LessonProgress | None:
    """One lesson's progress as any version wrote it: a missing field takes its default
    (older files have no `session`), a field of the wrong type is dropped; None if the
    entry is not a JSON object at all."""
    if not isinstance(raw, dict):
        return None
    completed = raw.get("completed_at")
    if isinstance(completed, bool) or not isinstance(completed, int | float):
        completed = None
    return LessonProgress(
        step=str(raw.get("step") or ""),
        status=_status(raw.get("status")),
        assisted=_strings(raw.get("assisted")),
        completed_at=completed,
        session=_strings(raw.get("session")),
    )


def _status(value: Any) -> Status:
    """A status this version knows; anything else (a newer version's, a typo) counts as
    not started rather than costing the lesson its other fields."""
    try:
        return Status(value)
    except ValueError:
        return Status.NOT_STARTED


def _strings(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []
