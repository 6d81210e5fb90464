"""The server's record of every session, shared with other threads, within a memory budget.

The server's event loop publishes events here; a UI drains `events` (a thread-safe
queue) inside its own loop, and tests or the lesson runner wait on a session's record.
The capture is the truth a step is checked against (docs/architecture.md,
"Three promises").

What it keeps is bounded (docs/server.md, "Memory: the capture, the session store and
message data"):

- **Per session**: the first HEAD_EVENTS events (or HEAD_BYTES), whole, then a window of
  the last TAIL_EVENTS (or TAIL_BYTES); what falls out between them is counted by kind
  ("… and 999,000 more NOOP"). A lesson is a few hundred events at most, so the cap
  never cuts what a step checks. A record's `events` keeps the positions of the whole
  session, so `events[seen:]` goes on giving a follower (the lesson driver, the sandbox)
  the events after the ones it has seen, however long the session grows.
- **In all**: closed sessions stay in memory up to KEEP_CLOSED sessions and MEMORY_BUDGET
  bytes; beyond that the oldest closed ones are written to the session store
  (maildir/session_store.py) and read back by `session()` and `sessions()`. Above
  HEADS_BUDGET no head grows, so many sessions flooding at once keep only their tails.
- **The queue**: only a session's head goes on it event by event, and only while the
  queue is shorter than QUEUE_LIMIT (the UI is keeping up). Past that, the session's
  events are counted; its end (the last SHOWN_TAIL events) and an `EventsOmitted`
  summary are queued when it closes, so a flood of one session costs the UI a few
  thousand lines, not a million. A stored message (or bounce) is queued whenever the
  queue has room: each is a delivery to disk, which no client can send a million of
  as fast as NOOPs, and the log should show every one.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, overload

from tutor.smtp.events import (
    Authenticated,
    BareLineFeed,
    BounceSent,
    Event,
    Exchange,
    MessageStored,
    SessionClosed,
    SessionOpened,
    TlsStarted,
)

if TYPE_CHECKING:  # a capture that stores sessions is handed its store by the server
    from tutor.maildir.session_store import SessionStore, StoredSession

log = logging.getLogger("tutor.server")

KIB = 1024
MIB = 1024 * KIB
# Per session. The longest lesson is about 25 steps, well under 200 events with its
# replies, TLS and stored messages; a load test of 200 messages on one connection is
# about 1,000 events and 1.6 MiB. Both fit the head whole, so neither is ever summarized.
HEAD_EVENTS = 2000
HEAD_BYTES = 4 * MIB
TAIL_EVENTS = 100
TAIL_BYTES = 256 * KIB
# In all: closed sessions kept in memory before the oldest go to the session store, and
# the weight of every record in memory above which no session's head grows any more (a
# thousand connections flooding at once then keep only their tails).
KEEP_CLOSED = 1000
MEMORY_BUDGET = 32 * MIB
HEADS_BUDGET = 128 * MIB
# The queue: events waiting for the UI before a session's events are only counted.
QUEUE_LIMIT = 50_000
SHOWN_TAIL = 20  # a long session's last events, queued when it closes

_EVENT_OVERHEAD = 400  # bytes of a small event object with its fields, roughly
_VERBS = frozenset(
    {"HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP"}
    | {"STARTTLS", "AUTH", "BDAT", "ETRN"}
)
_KIND_LABELS = {
    "data": "message text",
    "auth": "AUTH answer",
    "greeting": "greeting",
    "notice": "notice",
    "command": "unrecognized line",
}
_EVENT_LABELS: dict[type[Event], str] = {
    MessageStored: "stored message",
    BounceSent: "bounce",
    TlsStarted: "TLS start",
    Authenticated: "AUTH result",
    BareLineFeed: "bare LF notice",
    SessionOpened: "connection",
    SessionClosed: "close",
}


@dataclass(frozen=True)
class EventsOmitted(Event):
    """On the queue only: a session's events were counted there, not queued one by one.

    `ended` False is the first notice (the session just passed its head, or the UI fell
    behind); True comes just before the session's last events and its SessionClosed, with
    what was not queued: (what, how many) in the order first seen.
    """

    counts: tuple[tuple[str, int], ...]
    ended: bool


def label(event: Event) -> str:
    """What an event counts as when it is summarized: the verb of a command, else its kind.

    Only known verbs become labels: a client could send a million different unknown ones.
    """
    if isinstance(event, Exchange):
        verb = event.verb
        if verb in _VERBS:
            return verb
        return _KIND_LABELS[event.kind]
    return _EVENT_LABELS.get(type(event), "event")


def summary_lines(counts: tuple[tuple[str, int], ...] | list[tuple[str, int]]) -> list[str]:
    """`… and 999,000 more NOOP`, one line per kind."""
    lines = []
    for what, count in counts:
        plural = "s" if count != 1 and what not in _VERBS else ""
        lines.append(f"… and {count:,} more {what}{plural}")
    return lines


def weight(event: Event) -> int:
    """Roughly the bytes an event holds in memory (object, fields, payload)."""
    if isinstance(event, Exchange):
        replies = event.replies
        return _EVENT_OVERHEAD + len(event.sent) + sum(map(len, replies)) + 60 * len(replies)
    if isinstance(event, MessageStored):
        texts = (event.sender, event.header_from, event.header_to, event.header_cc, event.subject)
        return (
            _EVENT_OVERHEAD * (2 + len(event.copies))
            + sum(len(line) + 60 for line in event.body_lines)
            + sum(len(line) + 60 for line in event.header_lines)
            + sum(len(text) for text in texts)
            + sum(len(r) + 60 for r in event.recipients)
        )
    return _EVENT_OVERHEAD


class EventLog:
    """A session's events as kept: its first events whole, then a window of its last ones.

    Positions are those of the whole session: len() counts every event published, and
    `log[n:]` is every kept event from position n on (the window's start, if the events
    at n were already counted away). Reads take the capture's lock.
    """

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._head: list[Event] = []
        self._tail: deque[tuple[Event, int]] = deque()  # (event, its weight)
        self._head_full = False
        self._total = 0
        self.head_weight = 0
        self.tail_weight = 0
        self.omitted: dict[str, int] = {}  # label -> events counted between head and tail

    @classmethod
    def restored(cls, lock: threading.RLock, stored: StoredSession) -> EventLog:
        log = cls(lock)
        log._head = list(stored.events[: stored.head])
        log._tail = deque((event, weight(event)) for event in stored.events[stored.head :])
        log._head_full = bool(log._tail) or bool(stored.omitted)
        log._total = max(stored.total, len(stored.events))
        log.omitted = dict(stored.omitted)
        return log

    def append(self, event: Event, *, head_open: bool = True) -> bool:
        """Keep an event; True if it went into the head (kept for the session's life).

        head_open False closes the head now (the capture as a whole is over its budget).
        """
        size = weight(event)
        self._total += 1
        if not self._head_full:
            fits = len(self._head) < HEAD_EVENTS and self.head_weight + size <= HEAD_BYTES
            if fits and head_open:
                self._head.append(event)
                self.head_weight += size
                return True
            self._head_full = True
        self._tail.append((event, size))
        self.tail_weight += size
        while len(self._tail) > 1 and (
            len(self._tail) > TAIL_EVENTS or self.tail_weight > TAIL_BYTES
        ):
            dropped, dropped_size = self._tail.popleft()
            self.tail_weight -= dropped_size
            what = label(dropped)
            self.omitted[what] = self.omitted.get(what, 0) + 1
        return False

    @property
    def weight(self) -> int:
        return self.head_weight + self.tail_weight

    @property
    def head(self) -> int:
        """How many events the head holds: positions 0 to head - 1."""
        return len(self._head)

    def kept(self) -> list[Event]:
        """Every kept event, in order: the head, then the window of the last ones."""
        with self._lock:
            return self._head + [event for event, _ in self._tail]

    def __len__(self) -> int:
        return self._total

    def __iter__(self) -> Iterator[Event]:
        return iter(self.kept())

    def __reversed__(self) -> Iterator[Event]:
        return reversed(self.kept())

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        with self._lock:
            if isinstance(index, slice):
                start, stop, step = index.indices(self._total)
                if step != 1:
                    raise ValueError("an event log slices with step 1 only")
                return self._between(start, stop)
            position = index + self._total if index < 0 else index
            found = self._between(position, position + 1)
            first = self._total - len(self._tail)
            if not found or (len(self._head) <= position < first):
                raise IndexError(f"event {index} was counted, not kept")
            return found[0]

    def _between(self, start: int, stop: int) -> list[Event]:
        events = self._head[start:stop]
        first = self._total - len(self._tail)  # the window's first position
        if stop > first and self._tail:
            skip = max(start - first, 0)
            events += [event for event, _ in list(self._tail)[skip : stop - first]]
        return events


@dataclass
class SessionRecord:
    opened: SessionOpened
    events: EventLog
    closed_by: SessionClosed | None = None
    # What the queue left out (counted, not queued) and the last of it, held for the end.
    unqueued: dict[str, int] = field(default_factory=dict)
    held: deque[Event] = field(default_factory=deque)
    noticed: bool = False  # the first EventsOmitted went out
    saved: bool = False  # written to the session store as it closed (a class's server)

    @property
    def exchanges(self) -> list[Exchange]:
        return [e for e in self.events if isinstance(e, Exchange)]

    @property
    def messages(self) -> list[MessageStored]:
        return [e for e in self.events if isinstance(e, MessageStored)]

    @property
    def closed(self) -> SessionClosed | None:
        return self.closed_by

    @property
    def omitted(self) -> tuple[tuple[str, int], ...]:
        """Events counted, not kept, between the session's start and its end."""
        return tuple(self.events.omitted.items())

    @property
    def summary(self) -> list[str]:
        return summary_lines(self.omitted)

    def stored(self, run: str) -> StoredSession:
        from tutor.maildir.session_store import StoredSession

        return StoredSession(
            self.opened.session,
            run,
            tuple(self.events.kept()),
            self.events.head,
            len(self.events),
            self.omitted,
        )


class Capture:
    """Thread-safe store of session records plus a queue of events for the UI, in order.

    Without a store (tests that build one by hand) nothing is ever written: closed
    sessions beyond the budget then stay in memory.
    """

    def __init__(
        self,
        store: SessionStore | None = None,
        *,
        keep_closed: int = KEEP_CLOSED,
        budget: int = MEMORY_BUDGET,
        queue_limit: int = QUEUE_LIMIT,
        heads_budget: int = HEADS_BUDGET,
        save_every_session: bool = False,
    ) -> None:
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.store = store
        # A class's server writes each session to the store as it closes, so that the
        # roster can be read from disk once the server has stopped, or died.
        self._save_every_session = save_every_session
        self._sessions: OrderedDict[int, SessionRecord] = OrderedDict()
        self._closed: OrderedDict[int, None] = OrderedDict()  # in memory, oldest first
        self._keep_closed = keep_closed
        self._budget = budget
        self._queue_limit = queue_limit
        self._heads_budget = heads_budget
        self._weight = 0  # of every record in memory
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._next_id = 0
        self._waiting = 0  # threads in wait_for
        self._store_failed = False

    def new_session_id(self) -> int:
        with self._changed:
            self._next_id += 1
            return self._next_id

    # --- publishing ---------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        with self._lock:  # the condition's own lock, taken without its Python wrapper
            if isinstance(event, SessionOpened):
                self._sessions[event.session] = SessionRecord(event, EventLog(self._lock))
            record = self._sessions.get(event.session)
            if record is None:
                outgoing = [event]  # a session the capture does not hold (already stored)
            else:
                before = record.events.weight
                head_open = self._weight < self._heads_budget
                in_head = record.events.append(event, head_open=head_open)
                self._weight += record.events.weight - before
                outgoing = self._to_queue(record, event, in_head)
                if isinstance(event, SessionClosed):
                    record.closed_by = event
                    self._closed[event.session] = None
                    if self._save_every_session:
                        self._save(record)
                    self._spill_over_budget()
            if self._waiting:  # wake only whoever waits: notify_all costs even for none
                self._changed.notify_all()
        for item in outgoing:
            self.events.put(item)

    def _to_queue(self, record: SessionRecord, event: Event, in_head: bool) -> list[Event]:
        """What of this event goes on the queue now (see the module's docstring)."""
        if isinstance(event, SessionClosed):
            ending: list[Event] = []
            if record.unqueued:
                counts = tuple(record.unqueued.items())
                ending.append(EventsOmitted(event.session, counts, ended=True, at=event.at))
            ending += record.held
            record.held.clear()
            return [*ending, event]
        room = self.events.qsize() < self._queue_limit
        if isinstance(event, SessionOpened):
            return [event]
        if room and isinstance(event, (MessageStored, BounceSent)):
            return [event]  # a delivery to disk each: never a flood, and worth its line
        if room and in_head and not record.noticed:
            return [event]
        outgoing: list[Event] = []
        if not record.noticed:
            record.noticed = True
            outgoing.append(EventsOmitted(event.session, (), ended=False, at=event.at))
        record.held.append(event)
        if len(record.held) > SHOWN_TAIL:
            what = label(record.held.popleft())
            record.unqueued[what] = record.unqueued.get(what, 0) + 1
        return outgoing

    # --- the budget ---------------------------------------------------------------------

    def _spill_over_budget(self) -> None:
        """Move the oldest closed sessions to the store while memory is over budget."""
        while self._closed and (
            self._weight > self._budget or len(self._closed) > self._keep_closed
        ):
            if self.store is None or self._store_failed:
                return
            oldest = next(iter(self._closed))
            record = self._sessions[oldest]
            if not record.saved and not self._save(record):
                return
            del self._closed[oldest]
            del self._sessions[oldest]
            self._weight -= record.events.weight

    def _save(self, record: SessionRecord) -> bool:
        """Write a closed session to the store; False (said once) if the disk refuses."""
        if self.store is None or self._store_failed:
            return False
        try:
            self.store.save(record.stored(self.store.run))
        except OSError as error:
            # A full or read-only disk: keep the sessions in memory rather than lose
            # them, and say so once (the Maildir is failing too).
            self._store_failed = True
            log.warning("sessions kept in memory: cannot write the session store: %s", error)
            return False
        record.saved = True
        return True

    # --- reading ------------------------------------------------------------------------

    def session(self, session_id: int) -> SessionRecord | None:
        """A session by number: from memory, or read back from the session store."""
        with self._changed:
            record = self._sessions.get(session_id)
        if record is not None or self.store is None:
            return record
        stored = self.store.load(session_id)
        return self._restored(stored) if stored is not None else None

    def sessions(self) -> list[SessionRecord]:
        """Every session of this run in order, stored ones read back (all at once: for a
        long run, `each_session` reads them one at a time)."""
        return list(self.each_session())

    def each_session(self) -> Iterator[SessionRecord]:
        """Every session of this run in order, stored ones read back one at a time."""
        with self._changed:
            in_memory = dict(self._sessions)
        stored_ids = set(self.store.numbers()) if self.store is not None else set()
        for number in sorted(stored_ids | set(in_memory)):
            record = in_memory.get(number) or self.session(number)
            if record is not None:
                yield record

    def _restored(self, stored: StoredSession) -> SessionRecord:
        events = EventLog.restored(self._lock, stored)
        kept = events.kept()
        opened = next((e for e in kept if isinstance(e, SessionOpened)), None)
        closed = next((e for e in reversed(kept) if isinstance(e, SessionClosed)), None)
        first = SessionOpened(stored.session, "", 0, 0, at=stored.opened_at)
        return SessionRecord(opened or first, events, closed)

    @property
    def in_memory(self) -> int:
        """Bytes (estimated) the records in memory hold."""
        with self._changed:
            return self._weight

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
            self._waiting += 1
            try:
                return self._changed.wait_for(condition, timeout)
            finally:
                self._waiting -= 1
