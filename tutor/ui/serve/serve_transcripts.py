"""`serve --transcripts DIR`: one annotated transcript per session, written as it goes,
filed by period and student: DIR/RUN/STUDENT/session-0007.md (tutor/classroom/handouts.py;
docs/teaching.md, "Collecting handouts").

Each session's lines are rendered as the line log renders them (with the reply meanings
and the envelope summary) and appended to its file (.md, .html, .svg or .txt) as its
events arrive, through ui/common/transcript_export.py: the file is valid after every
event, even if serve is killed, and nothing of a session is held in memory but its last
few events.

A session's student is known only as it goes on (NOOP student=NAME may come after HELO;
tutor/classroom/identity.py). Its file is created in the folder of the name known at its
first event (the client's address), exclusively, and follows the name: when the name
changes the file moves to the new student's folder, never over another file, and the
title in its header changes in place. A session that renames itself more than LIVE_MOVES
times moves only once more, when it ends, so a client renaming itself in a loop costs a
title, not a move per command. RUN is made at the first session (the time serve started,
made unique), and again when a new class period has begun since, so that one folder
never mixes two periods; serve records each RUN folder under the Maildir root.

A transcript stops at its cap (transcript_export.CAPS). From then on an event costs a
count, not a rendering, so one flooding session never holds up the line log or the
dashboard that feed it: its lines and wire bytes are counted, its last TAIL_EVENTS events
kept, and when it ends the file says where it was cut and how much was left out, then
shows those last events (the capture's own summary, "… and 999,000 more NOOP", among
them). docs/server.md, "Exports: transcripts that cannot be broken out of".
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.text import Text

from tutor.classroom import handouts, periods
from tutor.classroom.identity import Naming
from tutor.errors import UsageError
from tutor.smtp.events import Event, Exchange, SessionClosed
from tutor.smtp.session_state import SessionState
from tutor.smtp.student import file_safe
from tutor.ui.common import transcript_export
from tutor.ui.serve.serve_log import ServeLog

log = logging.getLogger("tutor.server")

WIDTH = 100
# A cut transcript still ends with the session's last events: its close, and the capture's
# summary of what it counted (which comes with the last 20 events it kept).
TAIL_EVENTS = 25
FORGET_AFTER = 1000  # closed sessions remembered, so a late event does not reopen a file
LIVE_MOVES = 8  # times a session's file follows its name while it goes on


class _Session:
    """One session's transcript: written while under the cap, then only counted."""

    def __init__(
        self, number: int, naming: Naming, opened: float, writer: transcript_export.TranscriptWriter
    ) -> None:
        self.number = number
        self.naming = naming
        self.student = naming.student.name
        self.opened = opened
        self.writer = writer
        self.moves = 0
        self.lines_left_out = 0
        self.bytes_left_out = 0
        # Past the cap: the last events, each with its lines if it was already rendered.
        self.last: deque[tuple[Event, list[Text] | None]] = deque()

    def leave_out(self, event: Event) -> None:
        lines, size = _wire_size(event)
        self.lines_left_out += lines
        self.bytes_left_out += size


def _wire_size(event: Event) -> tuple[int, int]:
    """What an event not written stood for: its protocol lines and bytes (one line, no
    bytes, for a server note such as "stored" or "closed")."""
    if isinstance(event, Exchange):
        replies = sum(len(reply) + 2 for reply in event.replies)
        sent_lines = event.sent.count(b"\n") or (1 if event.sent else 0)
        return sent_lines + len(event.replies), len(event.sent) + replies
    return 1, 0


class SessionTranscripts:
    """The handouts of one serve run. `root`, the Maildir root, is where the RUN folders
    are recorded and the class periods read (None: neither, as in tests of the writer)."""

    def __init__(
        self,
        directory: Path,
        extension: str = "md",
        cap: transcript_export.Cap | None = None,
        *,
        root: Path | None = None,
    ) -> None:
        if not directory.is_dir():
            try:
                directory.mkdir(parents=True)
            except OSError as error:
                raise UsageError(f"--transcripts {directory}: {error.strerror}") from error
        self.directory = directory
        self.root = root
        self.started = time.time()  # the first RUN folder's name
        self.extension = "." + extension.lstrip(".")
        self.cap = cap  # None: the format's own (transcript_export.SESSION_CAPS)
        transcript_export.check_path(directory / f"x{self.extension}")
        self._console = Console(
            file=io.StringIO(),
            width=WIDTH,
            color_system="truecolor",
            highlight=False,
            markup=False,
            emoji=False,
        )
        self._log = ServeLog(self._console)
        self._files = transcript_export.OpenFiles()
        self._open: dict[int, _Session] = {}
        self._finished: OrderedDict[int, None] = OrderedDict()
        self.written = 0  # transcripts begun
        self.folders: list[Path] = []  # the RUN folders made, in order
        self._period: str | None = None  # the class period of the current RUN folder
        self._current: str | None = None  # the class period going on, as last read
        self._periods_seen: int | None = -1  # the periods folder's mtime then
        # One line per transcript that could not be written (a full disk, a folder gone);
        # the server goes on, and the first failure is logged.
        self.failures: deque[str] = deque(maxlen=100)

    def feed(self, event: Event) -> None:
        number = event.session
        if number == 0 or number in self._finished:
            return
        session = self._open.get(number)
        try:
            if session is None:
                session = self._start(number, event)
            elif session.naming.feed(event):
                self._follow_name(session)
            if session.writer.cut:
                self._hold(session, event, None)
            else:
                lines = self._log.render(event)
                if not session.writer.add(lines):
                    self._hold(session, event, lines)
            if isinstance(event, SessionClosed):
                self._finish(number)
        except OSError as error:
            self._failed(number, error)

    def close(self) -> None:
        """The server stopped: end the transcripts of the sessions still open."""
        for number in list(self._open):
            try:
                self._finish(number)
            except OSError as error:
                self._failed(number, error)
        self._files.close_all()

    def _start(self, number: int, first: Event) -> _Session:
        """A new session's file, in the folder of the name its first event gives."""
        naming = Naming()
        naming.feed(first)
        name = naming.student.name
        folder = self._run_folder() / file_safe(name)
        folder.mkdir(exist_ok=True)
        writer = transcript_export.TranscriptWriter(
            folder / handouts.session_file(number, self.extension),
            _title(name, number, first.at),
            self._console,
            width=WIDTH,
            cap=self.cap,
            files=self._files,
            exclusive=True,  # nothing is overwritten, whatever DIR already holds
        )
        session = self._open[number] = _Session(number, naming, first.at, writer)
        self.written += 1
        return session

    def _follow_name(self, session: _Session) -> None:
        name = session.naming.student.name
        if name == session.student:
            return
        session.student = name
        session.writer.retitle(_title(name, session.number, session.opened))
        if session.moves < LIVE_MOVES:
            session.moves += 1
            self._move(session)

    def _move(self, session: _Session) -> None:
        """The file into its student's folder (if it is not there), never over another;
        a file that cannot move stays where it is, and goes on."""
        source = session.writer.path
        target = source.parent.parent / file_safe(session.student) / source.name
        if target.parent == source.parent:
            return
        try:
            if session.writer.move(target, handouts.move_without_replacing):
                with contextlib.suppress(OSError):  # the folder of a name no longer used
                    source.parent.rmdir()
        except OSError as error:
            self._note(f"transcript of session {session.number} not moved: {error.strerror}")

    def _run_folder(self) -> Path:
        """The RUN folder new sessions go to: made at the first session, and again when
        a new class period has begun."""
        period = self._current_period()
        if self.folders and period == self._period:
            return self.folders[-1]
        now = self.started if not self.folders else time.time()
        folder = handouts.make_run_folder(self.directory, now)
        self.folders.append(folder)
        self._period = period
        if self.root is not None:
            run = handouts.HandoutRun(folder, period, self.extension, now)
            try:
                handouts.record_run(self.root, run)
            except OSError as error:
                self._note(f"handouts folder {folder.name} not recorded: {error.strerror}")
        return folder

    def _current_period(self) -> str | None:
        """The class period going on: read again only when the periods folder changed
        (one stat per session)."""
        if self.root is None:
            return None
        try:
            seen: int | None = (self.root / periods.PERIODS).stat().st_mtime_ns
        except OSError:
            seen = None
        if seen != self._periods_seen:
            self._periods_seen = seen
            current = periods.current(self.root)
            self._current = current.name if current else None
        return self._current

    def _hold(self, session: _Session, event: Event, lines: list[Text] | None) -> None:
        """Past the cap an event costs no rendering: it is kept among the last ones, and
        the one that falls out is counted. The log's idea of the session's state still
        follows every exchange, in order, so the last lines' meanings stay right."""
        session.last.append((event, lines))
        if len(session.last) > TAIL_EVENTS:
            dropped, rendered = session.last.popleft()
            if rendered is None and isinstance(dropped, Exchange):
                state = self._log.states.setdefault(dropped.session, SessionState())
                state.feed_exchange(dropped)
            session.leave_out(dropped)

    def _finish(self, number: int) -> None:
        session = self._open.pop(number)
        self._forget_later(number)
        self._move(session)  # to its last name, however often it changed
        if not session.writer.cut:
            session.writer.finish()
            return
        last: list[Text] = []
        for event, lines in session.last:
            last += lines if lines is not None else self._log.render(event)
        left_out = (session.lines_left_out, session.bytes_left_out)
        session.writer.finish(left_out, last)

    def _forget_later(self, number: int) -> None:
        self._finished[number] = None
        while len(self._finished) > FORGET_AFTER:
            self._finished.popitem(last=False)
        self._log.states.pop(number, None)

    def _failed(self, number: int, error: OSError) -> None:
        session = self._open.pop(number, None)
        self._forget_later(number)
        if session is not None:
            self._files.close(session.writer.path)
        self._note(f"transcript of session {number} not written: {error.strerror}")

    def _note(self, failure: str) -> None:
        if not self.failures:
            log.warning("%s (serve goes on; later failures are not logged)", failure)
        self.failures.append(failure)


def _title(student: str, number: int, opened: float) -> str:
    """A handout's title: whose, which session, when (local time)."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(opened))
    return f"{student}: session {number}, {when}"


class EventQueue(Protocol):
    def get(self, timeout: float | None = None) -> Event: ...

    def get_nowait(self) -> Event: ...


class TeeEvents:
    """The server's events (the capture's queue or the server process's pipe), with every
    event also given to the transcripts."""

    def __init__(self, events: EventQueue, transcripts: SessionTranscripts) -> None:
        self._events = events
        self._transcripts = transcripts

    @property
    def behind(self) -> int:
        """The source's backlog, if it counts one (server/process.py's PipeEvents)."""
        return int(getattr(self._events, "behind", 0))

    def get(self, timeout: float | None = None) -> Event:
        event = self._events.get(timeout=timeout)
        self._transcripts.feed(event)
        return event

    def get_nowait(self) -> Event:
        event = self._events.get_nowait()
        self._transcripts.feed(event)
        return event
