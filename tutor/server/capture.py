"""The server's record of every session, shared with other threads.

The server's event loop publishes events here; a UI drains `events` (a thread-safe
queue) inside its own loop, and tests or the lesson runner wait on a session's record.
The capture is the truth a step is checked against (docs/architecture.md,
"Three promises").
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from tutor.smtp.events import Event, Exchange, MessageStored, SessionClosed, SessionOpened


@dataclass
class SessionRecord:
    opened: SessionOpened
    events: list[Event] = field(default_factory=list)

    @property
    def exchanges(self) -> list[Exchange]:
        return [e for e in self.events if isinstance(e, Exchange)]

    @property
    def messages(self) -> list[MessageStored]:
        return [e for e in self.events if isinstance(e, MessageStored)]

    @property
    def closed(self) -> SessionClosed | None:
        for event in reversed(self.events):
            if isinstance(event, SessionClosed):
                return event
        return None


class Capture:
    """Thread-safe store of session records plus a queue of every event, in order."""

    def __init__(self, keep_sessions: int = 2000) -> None:
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._sessions: OrderedDict[int, SessionRecord] = OrderedDict()
        self._keep = keep_sessions
        self._changed = threading.Condition()
        self._next_id = 0

    def new_session_id(self) -> int:
        with self._changed:
            self._next_id += 1
            return self._next_id

    def publish(self, event: Event) -> None:
        with self._changed:
            if isinstance(event, SessionOpened):
                self._sessions[event.session] = SessionRecord(event)
                while len(self._sessions) > self._keep:
                    self._sessions.popitem(last=False)
            record = self._sessions.get(event.session)
            if record is not None:
                record.events.append(event)
            self._changed.notify_all()
        self.events.put(event)

    def session(self, session_id: int) -> SessionRecord | None:
        with self._changed:
            return self._sessions.get(session_id)

    def sessions(self) -> list[SessionRecord]:
        with self._changed:
            return list(self._sessions.values())

    def find_peer(self, host: str, port: int) -> SessionRecord | None:
        """The session whose client connected from host:port (how a client finds itself)."""
        with self._changed:
            for record in reversed(self._sessions.values()):
                opened = record.opened
                if opened.peer_port == port and opened.peer_host == host:
                    return record
            return None

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Block until condition() holds (re-checked on each event) or timeout passes."""
        with self._changed:
            return self._changed.wait_for(condition, timeout)
