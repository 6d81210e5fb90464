"""`serve --transcripts DIR`: one annotated transcript per session, written when it ends.

Each session's lines are rendered as the line log renders them (with the reply meanings
and the envelope summary) and written through the same exporters as --transcript, as
DIR/session-0001.md (or .html, .svg, .txt).
"""

from __future__ import annotations

import io
import queue
from pathlib import Path

from rich.console import Console
from rich.text import Text

from tutor.errors import UsageError
from tutor.smtp.events import Event, SessionClosed
from tutor.ui.common import transcript_export
from tutor.ui.serve.serve_log import ServeLog


class SessionTranscripts:
    def __init__(self, directory: Path, extension: str = "md") -> None:
        if not directory.is_dir():
            try:
                directory.mkdir(parents=True)
            except OSError as error:
                raise UsageError(f"--transcripts {directory}: {error.strerror}") from error
        self.directory = directory
        self.extension = "." + extension.lstrip(".")
        transcript_export.check_path(directory / f"x{self.extension}")
        self._log = ServeLog(Console(file=io.StringIO(), width=100))
        self._lines: dict[int, list[Text]] = {}
        self.written: list[Path] = []

    def feed(self, event: Event) -> None:
        if event.session == 0:
            return
        self._lines.setdefault(event.session, []).extend(self._log.render(event))
        if isinstance(event, SessionClosed):
            self._write(event.session)

    def close(self) -> None:
        """The server stopped: write what the sessions still open said."""
        for session in list(self._lines):
            self._write(session)

    def _write(self, session: int) -> None:
        lines = self._lines.pop(session, [])
        if not lines:
            return
        console = Console(record=True, width=100, file=io.StringIO(), color_system="truecolor")
        for line in lines:
            console.print(line)
        path = self.directory / f"session-{session:04d}{self.extension}"
        transcript_export.write(console, path, f"smtp-tutor serve: session {session}")
        self.written.append(path)


class TeeEvents:
    """The capture's queue, with every event also given to the transcripts."""

    def __init__(self, events: queue.SimpleQueue[Event], transcripts: SessionTranscripts) -> None:
        self._events = events
        self._transcripts = transcripts

    def get(self, timeout: float | None = None) -> Event:
        event = self._events.get(timeout=timeout)
        self._transcripts.feed(event)
        return event

    def get_nowait(self) -> Event:
        event = self._events.get_nowait()
        self._transcripts.feed(event)
        return event
