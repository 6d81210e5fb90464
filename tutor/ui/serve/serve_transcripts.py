"""`serve --transcripts DIR`: one annotated transcript per session, written as it goes.

Each session's lines are rendered as the line log renders them (with the reply meanings
and the envelope summary) and appended to DIR/session-0001.md (or .html, .svg, .txt) as
its events arrive, through ui/common/transcript_export.py: the file is valid after every
event, even if serve is killed, and nothing of a session is held in memory but its last
few events.

A transcript stops at its cap (transcript_export.CAPS). From then on an event costs a
count, not a rendering, so one flooding session never holds up the line log or the
dashboard that feed it: its lines and wire bytes are counted, its last TAIL_EVENTS events
kept, and when it ends the file says where it was cut and how much was left out, then
shows those last events (the capture's own summary, "… and 999,000 more NOOP", among
them). docs/server.md, "Exports: transcripts that cannot be broken out of".
"""

from __future__ import annotations

import io
import logging
from collections import OrderedDict, deque
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.text import Text

from tutor.errors import UsageError
from tutor.smtp.events import Event, Exchange, SessionClosed
from tutor.smtp.session_state import SessionState
from tutor.ui.common import transcript_export
from tutor.ui.serve.serve_log import ServeLog

log = logging.getLogger("tutor.server")

WIDTH = 100
# A cut transcript still ends with the session's last events: its close, and the capture's
# summary of what it counted (which comes with the last 20 events it kept).
TAIL_EVENTS = 25
FORGET_AFTER = 1000  # closed sessions remembered, so a late event does not reopen a file


class _Session:
    """One session's transcript: written while under the cap, then only counted."""

    def __init__(self, writer: transcript_export.TranscriptWriter) -> None:
        self.writer = writer
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
    def __init__(
        self,
        directory: Path,
        extension: str = "md",
        cap: transcript_export.Cap | None = None,
    ) -> None:
        if not directory.is_dir():
            try:
                directory.mkdir(parents=True)
            except OSError as error:
                raise UsageError(f"--transcripts {directory}: {error.strerror}") from error
        self.directory = directory
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
        # One line per transcript that could not be written (a full disk, a folder gone);
        # the server goes on, and the first failure is logged.
        self.failures: deque[str] = deque(maxlen=100)

    def feed(self, event: Event) -> None:
        number = event.session
        if number == 0 or number in self._finished:
            return
        session = self._open.get(number) or self._start(number)
        if session is None:
            return
        try:
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

    def _start(self, number: int) -> _Session | None:
        path = self.directory / f"session-{number:04d}{self.extension}"
        title = f"smtp-tutor serve: session {number}"
        try:
            writer = transcript_export.TranscriptWriter(
                path, title, self._console, width=WIDTH, cap=self.cap, files=self._files
            )
        except OSError as error:
            self._failed(number, error)
            return None
        session = self._open[number] = _Session(writer)
        self.written += 1
        return session

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
        self._open.pop(number, None)
        self._forget_later(number)
        self._files.close(self.directory / f"session-{number:04d}{self.extension}")
        failure = f"transcript of session {number} not written: {error.strerror}"
        if not self.failures:
            log.warning("%s (serve goes on; later failures are not logged)", failure)
        self.failures.append(failure)


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
