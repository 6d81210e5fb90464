"""The class as serve's dashboard follows it: the roster kept live from the events the
dashboard receives, and every session of a student, to be read whole. Stdlib only: the
dashboard's views (ui/serve/class_views.py) decide how it looks.

The roster's rules are tutor/classroom/roster.py's (`Roster`, fed one event at a time), so
the dashboard and `smtp-tutor class` agree. A session is read back from wherever it is:

- going on: the events the dashboard received (the capture queues a long session's head
  event by event, then counts the rest: those counts are part of what was received);
- closed: the same events while they are in memory and complete; else the session store,
  where a class's server writes every session as it closes, before its SessionClosed
  reaches the dashboard (server/capture.py). Memory keeps the events of sessions going on
  and of the latest closed ones, up to KEEP_EVENTS; the store has every closed one.

A session that is in neither (an in-process server that saves nothing, a disk that
refused) is still listed: its copy says it is gone, and the screen says so.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from tutor.classroom import periods
from tutor.classroom.identity import SessionStudent, student_of
from tutor.classroom.on_disk import read_copy
from tutor.classroom.roster import Roster, SessionEvents, SessionKey, StudentRow
from tutor.maildir.session_store import SessionStore, StoredSession, sessions_directory
from tutor.server.capture import EventsOmitted
from tutor.smtp.events import Event, SessionClosed
from tutor.smtp.student import NameSource

KEEP_EVENTS = 20_000  # events of closed sessions kept in memory (some 10 MB), beyond those
# going on: the store has them all
KEEP_NAMES = 10_000  # closed sessions whose student the connections table can still name
GIVEN_NAMES = (NameSource.NOOP.value, NameSource.AUTH.value)  # names a student gave

FROM_MEMORY = "memory"
FROM_STORE = "store"
GONE = ""


@dataclass(frozen=True)
class SessionCopy:
    """One session as it can be read now: its events in order (a stored session's
    omitted middle as one EventsOmitted), where they came from, and whether it goes on."""

    key: SessionKey
    events: tuple[Event, ...]
    source: str  # FROM_MEMORY, FROM_STORE, or GONE (nothing left to read)
    going_on: bool


class LiveClass:
    """The roster and the sessions of this run (`run`, the session store's name for it)
    and, once `add_stored` has been given them, of the period's earlier runs."""

    def __init__(self, root: Path, run: str, *, keep_events: int = KEEP_EVENTS) -> None:
        self.root = root
        self.run = run
        self.roster = Roster(partial(read_copy, root))
        self._store = SessionStore(sessions_directory(root), run or None)
        self._keep_events = keep_events
        self._events: dict[int, list[Event]] = {}  # this run's sessions in memory
        self._closed: OrderedDict[int, None] = OrderedDict()  # of those, closed: oldest first
        self._closed_events = 0
        self._incomplete: set[int] = set()  # the queue counted some of their events
        self._names: OrderedDict[int, SessionStudent] = OrderedDict()  # closed sessions

    # --- feeding ----------------------------------------------------------------------------

    def feed(self, event: Event) -> None:
        number = event.session
        events = self._events.get(number)
        if events is None:
            events = self._events[number] = []
        events.append(event)
        if isinstance(event, EventsOmitted):
            self._incomplete.add(number)
        if isinstance(event, SessionClosed):
            self._closed[number] = None
            self._closed_events += len(events)
            if number in self._incomplete:
                self._from_the_store(number, event)
            else:
                self._remember_name(number)
                self.roster.feed(self.run, event)
            self._forget_over_budget()
            return
        self.roster.feed(self.run, event)

    def _remember_name(self, number: int, student: SessionStudent | None = None) -> None:
        """Before the roster forgets who a closing session was (its name is final now)."""
        if student is None:
            key = (self.run, number)
            name, source = self.roster.name_of(key), self.roster.source_of(key)
            if name is None or source is None:
                return
            student = SessionStudent(name, NameSource(source))
        self._names[number] = student
        if len(self._names) > KEEP_NAMES:
            self._names.popitem(last=False)

    def _from_the_store(self, number: int, closed: SessionClosed) -> None:
        """A session the queue only counted part of: the roster takes the stored copy
        instead, which `smtp-tutor class` reads too (its head and its end, whole)."""
        stored = self._store.load(number) if self.run else None
        if stored is None:
            self.roster.feed(self.run, closed)
            return
        self.roster.discard((self.run, number))
        self.roster.add(SessionEvents(self.run, number, stored.events))
        self._remember_name(number, student_of(stored.events))

    def add_stored(self, stored: StoredSession) -> None:
        """A session of an earlier run of this period, read from the store."""
        if stored.run != self.run:
            self.roster.add(SessionEvents(stored.run, stored.session, stored.events))

    def earlier_sessions(self) -> Iterator[StoredSession]:
        """The period's sessions from earlier runs (a serve restarted during a class), read
        one at a time: the dashboard reads them beside its loop."""
        period = periods.current(self.root)
        if period is None:
            return
        for run in self._store.runs():
            if run == self.run:
                continue
            for stored in self._store.sessions(run):
                if stored.opened_at >= period.start:
                    yield stored

    def _forget_over_budget(self) -> None:
        while self._closed_events > self._keep_events and self._closed:
            number, _ = self._closed.popitem(last=False)
            self._closed_events -= len(self._events.pop(number, ()))
            self._incomplete.discard(number)

    # --- reading ----------------------------------------------------------------------------

    def students(self) -> list[StudentRow]:
        return self.roster.rows()

    def student(self, name: str) -> StudentRow | None:
        return self.roster.row(name)

    def student_of(self, number: int) -> str | None:
        """The student a session of this run names (going on, or closed not long ago)."""
        name = self.roster.name_of((self.run, number))
        if name is not None:
            return name
        known = self._names.get(number)
        return known.name if known is not None else None

    def given_name(self, number: int) -> str:
        """The name a session's student gave (NOOP student=NAME or the AUTH user), or "":
        a HELO name or an address is shown beside it already."""
        key = (self.run, number)
        source = self.roster.source_of(key)
        if source is not None:
            return (self.roster.name_of(key) or "") if source in GIVEN_NAMES else ""
        known = self._names.get(number)
        return known.name if known is not None and known.source.value in GIVEN_NAMES else ""

    def session(self, key: SessionKey) -> SessionCopy:
        run, number = key
        if run == self.run:
            events = self._events.get(number)
            going_on = events is not None and number not in self._closed
            if events is not None and (going_on or number not in self._incomplete):
                return SessionCopy(key, tuple(events), FROM_MEMORY, going_on)
        stored = self._store.load(number, run) if run else None
        if stored is None:
            return SessionCopy(key, (), GONE, False)
        return SessionCopy(key, with_omitted(stored), FROM_STORE, False)


def with_omitted(stored: StoredSession) -> tuple[Event, ...]:
    """A stored session's events, with what was counted between its head and its end."""
    if not stored.omitted:
        return stored.events
    head, events = stored.head, stored.events
    at = events[head].at if head < len(events) else events[-1].at if events else 0.0
    note = EventsOmitted(stored.session, stored.omitted, ended=True, at=at)
    return (*events[:head], note, *events[head:])
