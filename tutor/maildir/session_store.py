"""Closed sessions kept on disk: one JSON-lines file per session under the Maildir root.

The server's capture (server/capture.py) holds sessions in memory up to a budget; beyond
it, closed sessions move here, `ROOT/.smtp-tutor/sessions/RUN/SESSION.jsonl`, and are
read back on demand, so none is ever dropped. RUN names one server run (its start time
and process), because session numbers start at 1 again in every run; a teaching period
is then a range of runs, and `SessionStore.all_sessions(since, until)` reads every session
of it (the class roster needs that).

A file is a header line, then one event per line in the order the server published them:

    {"format": "smtp-tutor-session", "version": 1, "session": 7, "total": 1000006,
     "head": 2000, "omitted": [["NOOP", 997786]]}
    {"$type": "SessionOpened", "session": 7, "at": 1764323456.5, "peer_host": ...}
    {"$type": "Exchange", ..., "sent": {"$bytes": "Tk9PUA0K"}, "replies": ["250 2.0.0 OK"]}

`head` events come first (the session's start, kept whole); the rest are its last
events; `omitted` counts what was between them (the capture's per-session cap). Bytes
are base64, tuples are lists, nested dataclasses (a Copy) carry their `$type`. A line
that is not JSON or names a type this version does not know is skipped, so a damaged or
newer file still reads. Stdlib only; no server, no screen.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutor.smtp import events as event_types
from tutor.smtp.events import Event

FORMAT = "smtp-tutor-session"
VERSION = 1
SUFFIX = ".jsonl"
_RUN_NAME = re.compile(r"\d{8}-\d{6}-\d+-[0-9a-f]{4}\Z")

# Every dataclass a stored event may hold, by name: the events and what they nest.
_TYPES: dict[str, type[Any]] = {
    name: value
    for name, value in vars(event_types).items()
    if isinstance(value, type)
    and dataclasses.is_dataclass(value)
    and value.__module__ == event_types.__name__
}


def sessions_directory(maildir_root: Path) -> Path:
    """Where a Maildir root keeps its sessions: beside the mailboxes, in a folder no Maildir
    reader takes for a mailbox (it has no new/)."""
    return maildir_root / ".smtp-tutor" / "sessions"


@dataclass(frozen=True)
class StoredSession:
    """One session as the capture kept it: its first events whole, then its last ones."""

    session: int
    run: str
    events: tuple[Event, ...]
    head: int  # events[:head] are the session's start; events[head:] its end
    total: int  # events the session had in all, kept or counted
    omitted: tuple[tuple[str, int], ...] = ()  # between head and end: (what, how many)

    @property
    def opened_at(self) -> float:
        return self.events[0].at if self.events else 0.0


class SessionStore:
    """The sessions of every run under one directory; this instance writes `run`."""

    def __init__(self, directory: Path, run: str | None = None) -> None:
        self.directory = directory
        self.run = run or new_run_name()

    def save(self, stored: StoredSession) -> Path:
        """Write one session whole, atomically (a reader never sees half a file)."""
        folder = self.directory / stored.run
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # AUTH answers are in here
        path = folder / f"{stored.session}{SUFFIX}"
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(json.dumps(_header(stored)) + "\n")
                for event in stored.events:
                    file.write(json.dumps(encode(event)) + "\n")
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(temporary)
            raise
        return path

    def load(self, session: int, run: str | None = None) -> StoredSession | None:
        """One session of `run` (this instance's by default); None if it was never stored."""
        path = self.directory / (run or self.run) / f"{session}{SUFFIX}"
        try:
            return read_session(path)
        except OSError:
            return None

    def numbers(self, run: str | None = None) -> list[int]:
        """The session numbers stored for one run (this instance's by default), in order."""
        folder = self.directory / (run or self.run)
        try:
            names = [p.name for p in folder.iterdir()]
        except OSError:
            return []
        stems = [name.removesuffix(SUFFIX) for name in names if name.endswith(SUFFIX)]
        return sorted(int(stem) for stem in stems if stem.isdigit() and stem.isascii())

    def sessions(self, run: str | None = None) -> Iterator[StoredSession]:
        """Every stored session of one run, in session order, read one at a time."""
        for number in self.numbers(run):
            stored = self.load(number, run or self.run)
            if stored is not None:
                yield stored

    def runs(self) -> list[str]:
        """The runs stored here, oldest first."""
        try:
            names = [p.name for p in self.directory.iterdir() if _RUN_NAME.match(p.name)]
        except OSError:
            return []
        return sorted(names)

    def all_sessions(
        self, since: float | None = None, until: float | None = None
    ) -> Iterator[StoredSession]:
        """Every stored session of every run opened in [since, until): a teaching period."""
        for run in self.runs():
            for stored in self.sessions(run):
                opened = stored.opened_at
                if (since is None or opened >= since) and (until is None or opened < until):
                    yield stored


def new_run_name(now: float | None = None) -> str:
    """A run's folder name: its local start time, its process and a few random bits,
    so names sort by time and two servers started in the same second never share one."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{stamp}-{os.getpid()}-{os.urandom(2).hex()}"


def read_session(path: Path) -> StoredSession | None:
    """A session file read back; None if its header is missing or not this format."""
    with path.open(encoding="utf-8", errors="replace") as file:
        header = _json_object(file.readline())
        if header is None or header.get("format") != FORMAT:
            return None
        events = [event for line in file if (event := _event(line)) is not None]
    omitted = header.get("omitted")
    return StoredSession(
        session=_number(header.get("session"), 0),
        run=path.parent.name,
        events=tuple(events),
        head=min(_number(header.get("head"), len(events)), len(events)),
        total=max(_number(header.get("total"), len(events)), len(events)),
        omitted=tuple(
            (item[0], item[1])
            for item in (omitted if isinstance(omitted, list) else [])
            if isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and _number(item[1], -1) >= 0
        ),
    )


def _number(value: Any, default: int) -> int:
    """A count from a header written by hand or by a newer version: an int, or default."""
    counts = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value if counts else default


# --- events as JSON ---------------------------------------------------------------------


def encode(value: Any) -> Any:
    """An event (or any value in one) as JSON-ready data."""
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$type": type(value).__name__, **fields}
    if isinstance(value, (tuple, list)):
        return [encode(item) for item in value]
    return value


def decode(value: Any) -> Any:
    """The inverse of encode; KeyError for a type this version does not know."""
    if isinstance(value, list):
        return tuple(decode(item) for item in value)
    if isinstance(value, dict):
        if "$bytes" in value:
            return base64.b64decode(value["$bytes"])
        fields = {name: decode(item) for name, item in value.items() if name != "$type"}
        return _TYPES[value["$type"]](**fields)
    return value


def _header(stored: StoredSession) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "session": stored.session,
        "total": stored.total,
        "head": stored.head,
        "omitted": [list(item) for item in stored.omitted],
    }


def _event(line: str) -> Event | None:
    data = _json_object(line)
    if data is None:
        return None
    try:
        event = decode(data)
    except (KeyError, TypeError, ValueError, RecursionError):  # newer, or damaged
        return None
    return event if isinstance(event, Event) else None


def _json_object(line: str) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):  # not JSON; nested deeper than anything we write
        return None
    return data if isinstance(data, dict) else None
