"""The class roster: one row per student, from the sessions a teacher's server kept and the
progress reports among them (tutor/classroom/report.py).

A session counts for the student it names (tutor/classroom/identity.py). A message the
session stored counts as a message sent, unless it is a report to the teacher's mailbox:
then the report's own student gets its lesson, challenge and step. A reply of class 4 or
5 to something the client sent counts as an error made. Reports carry what the student
did on their own server (messages sent, errors made, per lesson or challenge so far):
the latest report of each adds to the row.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tutor.classroom.identity import student_of
from tutor.classroom.report import TEACHER, Report, read
from tutor.smtp.events import Copy, Event, Exchange, MessageStored

_ANSWERED = ("command", "data", "auth")  # exchanges where the client sent something
ReadCopy = Callable[[Copy], bytes | None]


@dataclass
class StudentRow:
    name: str
    lessons: dict[str, str] = field(default_factory=dict)  # "1": "done"
    challenges: dict[str, str] = field(default_factory=dict)
    current_step: str = ""
    messages: int = 0  # sent to the teacher's server, reports left out
    errors: int = 0  # 4xx and 5xx replies it got there
    last_seen: float = 0.0
    sessions: list[tuple[str, int]] = field(default_factory=list)  # (run, session), in order
    # What the latest report of each lesson or challenge said the student did on their own.
    reported: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)

    @property
    def all_messages(self) -> int:
        return self.messages + sum(messages for messages, _ in self.reported.values())

    @property
    def all_errors(self) -> int:
        return self.errors + sum(errors for _, errors in self.reported.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "lessons": dict(sorted(self.lessons.items(), key=lambda item: int(item[0]))),
            "challenges": dict(sorted(self.challenges.items(), key=lambda item: int(item[0]))),
            "current_step": self.current_step,
            "messages": self.all_messages,
            "errors": self.all_errors,
            "last_seen": iso_time(self.last_seen) if self.last_seen else None,
        }


@dataclass(frozen=True)
class SessionEvents:
    """One session as the roster reads it."""

    run: str
    session: int
    events: tuple[Event, ...]


def build(sessions: Iterable[SessionEvents], read_copy: ReadCopy) -> list[StudentRow]:
    """Every student of these sessions, by name (case and accents kept)."""
    rows: dict[str, StudentRow] = {}

    def row(name: str) -> StudentRow:
        return rows.setdefault(name, StudentRow(name))

    ordered = sorted(sessions, key=lambda s: (s.events[0].at if s.events else 0.0, s.session))
    for session in ordered:
        student = row(student_of(session.events).name)
        student.sessions.append((session.run, session.session))
        for event in session.events:
            student.last_seen = max(student.last_seen, event.at)
            if isinstance(event, Exchange) and event.kind in _ANSWERED:
                code = event.code
                if code is not None and code >= 400:
                    student.errors += 1
            elif isinstance(event, MessageStored):
                report = _report_in(event, read_copy)
                if report is None:
                    student.messages += 1
                else:
                    _apply(row(report.student), report)
    return sorted(rows.values(), key=lambda r: r.name.casefold())


def _report_in(event: MessageStored, read_copy: ReadCopy) -> Report | None:
    """The report a stored message is, if it went to the teacher's mailbox alone."""
    if not event.copies or any(copy.folder != TEACHER for copy in event.copies):
        return None
    raw = read_copy(event.copies[0])
    return read(raw) if raw is not None else None


def _apply(row: StudentRow, report: Report) -> None:
    row.last_seen = max(row.last_seen, report.at)
    if report.lesson is not None:
        kind, number, statuses = "lesson", report.lesson, row.lessons
    else:
        assert report.challenge is not None
        kind, number, statuses = "challenge", report.challenge, row.challenges
    row.reported[(kind, number)] = (report.messages, report.errors)
    key = str(number)
    if report.kind == "step":
        if statuses.get(key) not in ("done", "done with help"):
            statuses[key] = "in progress"
        step = f"{kind} {number}, step {report.step}/{report.steps}"
        row.current_step = f"{step}: {report.title}" if report.title else step
    else:
        statuses[key] = report.status
        if row.current_step.startswith(f"{kind} {number},"):
            row.current_step = ""


def iso_time(seconds: float) -> str:
    """Local time with its offset, to the second: 2026-11-30T13:05:12+01:00."""
    moment = datetime.datetime.fromtimestamp(seconds).astimezone()
    return moment.replace(microsecond=0).isoformat()
