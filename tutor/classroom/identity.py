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
    found: dict[NameSource, str] = {}
    for event in events:
        if isinstance(event, StudentNamed):
            found[NameSource.NOOP] = event.name
        elif isinstance(event, Authenticated) and event.success and event.user:
            found[NameSource.AUTH] = event.user
        elif isinstance(event, Exchange) and event.verb in _GREETINGS and event.code == 250:
            name = event.command.split(" ", 1)[1].strip() if " " in event.command else ""
            if name:
                found[NameSource.HELO] = name
        elif isinstance(event, SessionOpened):
            found[NameSource.ADDRESS] = event.peer_host
    for source in NameSource:
        if source in found:
            # From the wire: made visible (no control or bidi character acts on a screen
            # or a spreadsheet) and kept to a roster column.
            return SessionStudent(clipped(visible(found[source]), NAME_LIMIT * 2), source)
    return SessionStudent("unknown", NameSource.ADDRESS)
