"""Which student a session was: the name it gave with NOOP student=NAME, else the user it
logged in as, else its HELO/EHLO name, else its client address (tutor/smtp/student.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tutor.smtp.events import Authenticated, Event, Exchange, SessionOpened, StudentNamed
from tutor.smtp.student import NAME_LIMIT, NameSource
from tutor.smtp.textsafe import clipped, visible

_GREETINGS = ("HELO", "EHLO")


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
    """student_of, one event at a time: what a session is called so far, without keeping
    its events (serve's handouts follow a session's name as it goes)."""

    def __init__(self) -> None:
        self._found: dict[NameSource, str] = {}

    def feed(self, event: Event) -> bool:
        """Take one event; True if it named the session (the name may be the same)."""
        if isinstance(event, StudentNamed):
            self._found[NameSource.NOOP] = event.name
        elif isinstance(event, Authenticated) and event.success and event.user:
            self._found[NameSource.AUTH] = event.user
        elif isinstance(event, Exchange) and event.verb in _GREETINGS and event.code == 250:
            name = event.command.split(" ", 1)[1].strip() if " " in event.command else ""
            if not name:
                return False
            self._found[NameSource.HELO] = name
        elif isinstance(event, SessionOpened):
            self._found[NameSource.ADDRESS] = event.peer_host
        else:
            return False
        return True

    @property
    def student(self) -> SessionStudent:
        for source in NameSource:
            if source in self._found:
                # From the wire: made visible (no control or bidi character acts on a
                # screen or a spreadsheet) and kept to a roster column.
                name = clipped(visible(self._found[source]), NAME_LIMIT * 2)
                return SessionStudent(name, source)
        return SessionStudent("unknown", NameSource.ADDRESS)
