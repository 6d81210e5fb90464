"""The class roster: one row per student, from the sessions a teacher's server kept and the
progress reports among them (tutor/classroom/report.py).

A session counts for the student it names (tutor/classroom/identity.py). A message the
session stored counts as a message sent, unless it is a report to the teacher's mailbox:
then the report's own student gets its lesson, challenge and step. A reply of class 4 or
5 to something the client sent counts as an error made. Reports carry what the student
did on their own server (messages sent, errors made, per lesson or challenge so far):
the latest report of each adds to the row.

`Roster` applies these rules one event at a time, as serve's dashboard receives them; a
session that names itself later (NOOP student=NAME after HELO) moves, with everything it
counted, to the row of its new name. `build` feeds it whole sessions, as
`smtp-tutor class` reads them from disk: both give the same rows.
"""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tutor.classroom.identity import UNKNOWN, Naming
from tutor.classroom.report import TEACHER, Report, read
from tutor.smtp.events import Copy, Event, Exchange, MessageStored, SessionClosed

_ANSWERED = ("command", "data", "auth")  # exchanges where the client sent something
ReadCopy = Callable[[Copy], bytes | None]
SessionKey = tuple[str, int]  # (run, session): session numbers start again in every run


@dataclass
class StudentRow:
    name: str
    lessons: dict[str, str] = field(default_factory=dict)  # "1": "done"
    challenges: dict[str, str] = field(default_factory=dict)
    current_step: str = ""
    messages: int = 0  # sent to the teacher's server, reports left out
    errors: int = 0  # 4xx and 5xx replies it got there
    last_seen: float = 0.0
    sessions: list[SessionKey] = field(default_factory=list)  # (run, session), in order
    opened: list[float] = field(default_factory=list)  # when each of `sessions` began
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
    roster = Roster(read_copy)
    for session in sorted(sessions, key=lambda s: (s.events[0].at if s.events else 0.0, s.session)):
        roster.add(session)
    return roster.rows()


class _Going:
    """A session not yet closed: what it counted so far, on the row of the name it gives."""

    __slots__ = ("errors", "last_at", "messages", "name", "naming", "opened")

    def __init__(self, opened: float) -> None:
        self.naming = Naming()
        self.name = ""
        self.opened = opened
        self.last_at = 0.0
        self.errors = 0
        self.messages = 0


class Roster:
    """The rows, kept up to date one event at a time.

    A session's name can change until it closes, so a session going on keeps its own
    counts (`_Going`) and takes them along when it moves to another row; once closed, its
    name is final and only the row remembers it. `version` changes whenever the rows do.
    """

    def __init__(self, read_copy: ReadCopy) -> None:
        self._read_copy = read_copy
        self._rows: dict[str, StudentRow] = {}
        self._going: dict[SessionKey, _Going] = {}
        # Per row: the latest moment no session moving away can take back (closed
        # sessions' and reports'), and how many of its sessions are going on.
        self._settled_seen: dict[str, float] = {}
        self._going_count: dict[str, int] = {}
        self._sorted: list[StudentRow] | None = None
        self.version = 0

    # --- feeding --------------------------------------------------------------------------

    def feed(self, run: str, event: Event) -> None:
        """One event of session (run, event.session), in the order the server published."""
        key = (run, event.session)
        going = self._going.get(key)
        if going is None:
            going = self._going[key] = _Going(event.at)
            going.naming.feed(event)
            self._join(key, going, going.naming.student.name)
        elif going.naming.feed(event):
            name = going.naming.student.name
            if name != going.name:
                self._move(key, going, name)
        row = self._rows[going.name]
        if event.at > going.last_at:
            going.last_at = event.at
        if event.at > row.last_seen:
            row.last_seen = event.at
        if isinstance(event, Exchange):
            if event.kind in _ANSWERED and _is_error(event):
                going.errors += 1
                row.errors += 1
        elif isinstance(event, MessageStored):
            report = _report_in(event, self._read_copy)
            if report is None:
                going.messages += 1
                row.messages += 1
            else:
                self._report(report)
        elif isinstance(event, SessionClosed):
            self.close(key)
        self.version += 1

    def add(self, session: SessionEvents) -> None:
        """A whole session (read from disk): its events, then its end."""
        key = (session.run, session.session)
        if not session.events:  # names nobody, but it happened
            row = self._row(UNKNOWN)
            row.sessions.append(key)
            row.opened.append(0.0)
            self.version += 1
            return
        for event in session.events:
            self.feed(session.run, event)
        self.close(key)

    def close(self, key: SessionKey) -> None:
        """The session is over (its SessionClosed, or the end of what was kept of it)."""
        going = self._going.pop(key, None)
        if going is None:
            return
        name = going.name
        self._going_count[name] -= 1
        self._settled_seen[name] = max(self._settled_seen.get(name, 0.0), going.last_at)
        self.version += 1

    def discard(self, key: SessionKey) -> None:
        """Forget a session going on, as if it had never been fed (its reports stay: a
        report applied twice says the same), so that a fuller copy of it can be added."""
        going = self._going.get(key)
        if going is not None:
            self._leave(key, going)
            del self._going[key]
            self.version += 1

    # --- reading --------------------------------------------------------------------------

    def rows(self) -> list[StudentRow]:
        """Every student, by name (case folded)."""
        if self._sorted is None:
            self._sorted = sorted(self._rows.values(), key=lambda row: row.name.casefold())
        return list(self._sorted)

    def row(self, name: str) -> StudentRow | None:
        return self._rows.get(name)

    def going_on(self, name: str) -> int:
        """How many of the student's sessions are going on now."""
        return self._going_count.get(name, 0)

    def name_of(self, key: SessionKey) -> str | None:
        """The student a session going on names, as it stands."""
        going = self._going.get(key)
        return going.name if going is not None else None

    def source_of(self, key: SessionKey) -> str | None:
        """Where that name came from (a NameSource value), for a session going on."""
        going = self._going.get(key)
        return going.naming.student.source.value if going is not None else None

    # --- moving sessions between rows -----------------------------------------------------

    def _row(self, name: str) -> StudentRow:
        row = self._rows.get(name)
        if row is None:
            row = self._rows[name] = StudentRow(name)
            self._sorted = None
        return row

    def _join(self, key: SessionKey, going: _Going, name: str) -> None:
        """The session counts for `name` from now on: in start order among its sessions."""
        going.name = name
        row = self._row(name)
        at = bisect.bisect_right(row.opened, going.opened)
        row.sessions.insert(at, key)
        row.opened.insert(at, going.opened)
        row.errors += going.errors
        row.messages += going.messages
        row.last_seen = max(row.last_seen, going.last_at)
        self._going_count[name] = self._going_count.get(name, 0) + 1

    def _move(self, key: SessionKey, going: _Going, name: str) -> None:
        self._leave(key, going)
        self._join(key, going, name)

    def _leave(self, key: SessionKey, going: _Going) -> None:
        """The session no longer counts for the row it named: its counts go with it."""
        old = self._rows[going.name]
        at = len(old.sessions) - 1 - old.sessions[::-1].index(key)  # mostly the last one
        del old.sessions[at]
        del old.opened[at]
        old.errors -= going.errors
        old.messages -= going.messages
        self._going_count[old.name] -= 1
        if not old.sessions and not old.reported:
            del self._rows[old.name]
            self._settled_seen.pop(old.name, None)
            self._going_count.pop(old.name, None)
            self._sorted = None
        else:
            others = (g.last_at for k, g in self._going.items() if g.name == old.name and k != key)
            old.last_seen = max(self._settled_seen.get(old.name, 0.0), *others, 0.0)

    def _report(self, report: Report) -> None:
        row = self._row(report.student)
        _apply(row, report)
        self._settled_seen[row.name] = max(self._settled_seen.get(row.name, 0.0), report.at)


def _is_error(event: Exchange) -> bool:
    """A reply of class 4 or 5 (parsed only when a line could be one)."""
    if not any(line.startswith(("4", "5")) for line in event.replies):
        return False
    code = event.code
    return code is not None and code >= 400


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


def short_statuses(statuses: dict[str, str]) -> str:
    """1✓ 2… : done (with or without help) and in progress, compactly; — for none."""
    marks = {"done": "✓", "done with help": "✓h", "in progress": "…"}
    ordered = sorted(statuses.items(), key=lambda item: int(item[0]))
    return " ".join(f"{number}{marks.get(status, '?')}" for number, status in ordered) or "—"


def iso_time(seconds: float) -> str:
    """Local time with its offset, to the second: 2026-11-30T13:05:12+01:00."""
    moment = datetime.datetime.fromtimestamp(seconds).astimezone()
    return moment.replace(microsecond=0).isoformat()
