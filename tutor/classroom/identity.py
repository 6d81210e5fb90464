"""Which student a session was: the name it gave with NOOP student=NAME, else the user it
logged in as, else its HELO/EHLO name, else its client address (tutor/smtp/student.py).

`student_of` reads a whole session; `Naming` takes its events one at a time (serve's
dashboard follows sessions as they happen) and always says what `student_of` would say
of the events it has taken."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tutor.smtp.events import Authenticated, Event, Exchange, SessionOpened, StudentNamed
from tutor.smtp.student import NAME_LIMIT, NameSource
from tutor.smtp.textsafe import clipped, visible

_GREETINGS = ("HELO", "EHLO")
_GREETING_BYTES = (b"HELO", b"EHLO")
UNKNOWN = "unknown"  # a session without a single event names nobody


@dataclass(frozen=True)
class SessionStudent:
    name: str
    source: NameSource


def student_of(events: Iterable[Event]) -> SessionStudent:
    """The strongest name a session gave itself; the last one of each kind wins."""
    naming = Naming()
    for event in events:
        naming.feed(event)
    return naming.student


class Naming:
    """The names a session has given itself so far, event by event."""

    __slots__ = ("_found", "_student")

    def __init__(self) -> None:
        self._found: dict[NameSource, str] = {}
        self._student: SessionStudent | None = None

    def feed(self, event: Event) -> bool:
        """Take one event; True if it named the session (its student may have changed)."""
        if isinstance(event, Exchange) and event.sent[:4].upper() not in _GREETING_BYTES:
            return False  # most events: checked here, at the cost of one call per event
        named = _named_by(event)
        if named is None:
            return False
        source, name = named
        self._found[source] = name
        self._student = None
        return True

    @property
    def student(self) -> SessionStudent:
        if self._student is None:
            self._student = _strongest(self._found)
        return self._student


def _named_by(event: Event) -> tuple[NameSource, str] | None:
    if isinstance(event, Exchange):
        if event.kind != "command" or event.sent[:4].upper() not in _GREETING_BYTES:
            return None  # cheap: most events are no greeting (the verb below decides)
        if event.verb in _GREETINGS and event.code == 250:
            command = event.command
            name = command.split(" ", 1)[1].strip() if " " in command else ""
            if name:
                return NameSource.HELO, name
        return None
    if isinstance(event, StudentNamed):
        return NameSource.NOOP, event.name
    if isinstance(event, Authenticated):
        return (NameSource.AUTH, event.user) if event.success and event.user else None
    if isinstance(event, SessionOpened):
        return NameSource.ADDRESS, event.peer_host
    return None


def _strongest(found: dict[NameSource, str]) -> SessionStudent:
    for source in NameSource:
        if source in found:
            # From the wire: made visible (no control or bidi character acts on a screen
            # or a spreadsheet) and kept to a roster column.
            return SessionStudent(clipped(visible(found[source]), NAME_LIMIT * 2), source)
    return SessionStudent(UNKNOWN, NameSource.ADDRESS)
