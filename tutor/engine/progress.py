"""Progress kept between runs: JSON under the data directory, written atomically.

A file that cannot be used is not fatal: whatever is wrong with it (bytes that are not
UTF-8, not JSON, nested deeper than Python can parse, an object of the wrong shape, too
large, a folder or a FIFO in its place, unreadable) it is moved aside (kept as a
backup), one warning line is given, and the learner starts fresh. A file written by an
older version loads too: fields it lacks take their defaults, a field of the wrong type
takes its default, and one unreadable lesson entry costs only that lesson its progress.
A saved step that a newer lesson no longer has is the lesson screen's concern: it starts
the lesson from the beginning and says so. Progress that cannot be saved (a read-only
data home) is a FileProblem naming the path, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from tutor.errors import FileProblem, reason
from tutor.paths import NotAFile, data_home, home_note, read_file
from tutor.smtp.textsafe import visible

# Far beyond any real progress file (a few KB per lesson): a bigger one is not ours, and
# reading it whole could exhaust memory.
MAX_BYTES = 16 * 1024 * 1024
# A step id as the loader allows it: anything else in the file (control characters, a
# path) is not a step of any lesson, and is shown on the lesson list, so it is dropped.
_STEP_ID = re.compile(r"[a-z0-9][a-z0-9-]*\Z")


class Damaged(Exception):
    """progress.json holds something this version cannot read as progress."""


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
            data = _read_json(path)
            if data is None:
                return progress
            lessons = progress.fill(data)
        except Damaged as why:
            progress.lessons.clear()
            progress.last_lesson, progress.seen_welcome = "", False
            progress.warning = visible(_move_aside(path, str(why)))
            return progress
        if lessons:  # one odd entry costs that lesson its progress, not every lesson
            progress.warning = visible(
                f"could not read the progress of {', '.join(lessons)} in {path.name}; "
                + ("it starts" if len(lessons) == 1 else "they start")
                + " fresh"
            )
        return progress

    def fill(self, data: Any) -> list[str]:
        """Take what a parsed file holds; returns the lessons whose entries were unusable."""
        if not isinstance(data, dict):
            raise Damaged("it is not a JSON object")
        lessons = data.get("lessons", {})
        if not isinstance(lessons, dict):
            raise Damaged("its lessons are not a JSON object")
        last = data.get("last_lesson", "")
        self.last_lesson = last if isinstance(last, str) else ""
        self.seen_welcome = data.get("seen_welcome") is True
        unreadable = []
        for lesson_id, entry in lessons.items():
            parsed = _lesson_entry(entry)
            if parsed is None:
                unreadable.append(lesson_id)
            else:
                self.lessons[lesson_id] = parsed
        return unreadable

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
        try:
            _write_atomically(self.path, data)
        except OSError as error:  # named as the file it would be, not its temporary
            notes = ["progress not saved", home_note(self.path)]
            raise FileProblem(self.path, error, "; ".join(filter(None, notes))) from error


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    """A whole new file or the old one, never half of one: write a temporary file beside
    it, flush it to disk, then rename it over the old one.

    A file that already holds these very bytes is left alone: a learner who resumes a
    lesson first saves what the file says, and the flush to disk costs milliseconds (up to
    15 ms on a busy disk) before the lesson's first prompt."""
    text = json.dumps(data, indent=2)
    if _holds(path, text.encode("utf-8")):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".progress-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _holds(path: Path, content: bytes) -> bool:
    """Is this path a regular file of exactly these bytes? (No when it cannot be read.)"""
    try:
        return read_file(path, len(content)) == content
    except (OSError, NotAFile):
        return False


def _read_json(path: Path) -> Any:
    """The parsed file; None when there is none. Damaged says why it cannot be used."""
    try:
        raw = read_file(path, MAX_BYTES)
    except (FileNotFoundError, NotADirectoryError):  # no file (the home's save will say why)
        return None
    except OSError as error:
        raise Damaged(f"it cannot be read: {reason(error)}") from error
    except NotAFile as why:
        raise Damaged(f"it is {why}") from why
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise Damaged(f"it is not UTF-8 text (byte {error.start})") from error
    except RecursionError as error:  # json recurses once per level of nesting
        raise Damaged("it is nested too deeply") from error
    except json.JSONDecodeError as error:
        raise Damaged(f"it is not JSON: {error.msg} at line {error.lineno}") from error
    except ValueError as error:  # int() refuses more than 4300 digits (CVE-2020-10735)
        raise Damaged("it holds a number of thousands of digits") from error


def _move_aside(path: Path, why: str) -> str:
    """Keep a damaged file as a backup beside it, so nothing is lost and the next save
    does not overwrite it; the warning line to show."""
    stamp = int(time.time())
    backup = path.with_name(f"{path.stem}.corrupt-{stamp}{path.suffix}")
    count = 1
    while backup.exists() or backup.is_symlink():
        backup = path.with_name(f"{path.stem}.corrupt-{stamp}-{count}{path.suffix}")
        count += 1
    try:
        os.replace(path, backup)
    except OSError as error:
        return (
            f"progress file {path} cannot be used ({why}) and could not be moved aside "
            f"({reason(error)}); starting fresh"
        )
    return f"progress file was damaged; kept it as {backup.name} and started fresh ({why})"


def _lesson_entry(raw: Any) -> LessonProgress | None:
    """One lesson's progress as any version wrote it: a missing field takes its default
    (older files have no `session`), a field of the wrong type takes its default too;
    None if the entry is not a JSON object at all."""
    if not isinstance(raw, dict):
        return None
    step = raw.get("step")
    return LessonProgress(
        step=step if isinstance(step, str) and _STEP_ID.match(step) else "",
        status=_status(raw.get("status")),
        assisted=[item for item in _strings(raw.get("assisted")) if _STEP_ID.match(item)],
        completed_at=_time(raw.get("completed_at")),
        session=_strings(raw.get("session")),
    )


def _time(value: Any) -> float | None:
    """A time stamp: a number of seconds, not NaN, not Infinity, not 10**300."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value < 2**40 else None


def _status(value: Any) -> Status:
    """A status this version knows; anything else (a newer version's, a typo) counts as
    not started rather than costing the lesson its other fields."""
    try:
        return Status(value) if isinstance(value, str) else Status.NOT_STARTED
    except ValueError:
        return Status.NOT_STARTED


def _strings(value: Any) -> list[str]:
    """The strings of a list, each one that could be sent again as it was typed (a lone
    surrogate from a hand-edited file could not be encoded); anything else is dropped."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str) and _encodable(item)]


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True
