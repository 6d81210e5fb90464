"""The roster of one period, read from a Maildir root alone: it works once `serve` has
stopped (or died), from the sessions it kept and the reports it stored."""

from __future__ import annotations

import mailbox
import os
from pathlib import Path

from tutor.classroom.periods import Period, find
from tutor.classroom.roster import SessionEvents, StudentRow, build
from tutor.maildir.session_store import SessionStore, sessions_directory
from tutor.smtp.events import Copy

REPORT_LIMIT = 1024 * 1024  # a report message is a few KiB; never read a huge file whole


def roster(root: Path, period: str | None = None) -> tuple[Period, list[StudentRow]]:
    """The period (the current one by default) and its students. PeriodError if the
    period does not exist."""
    chosen, until = find(root, period)
    store = SessionStore(sessions_directory(root))
    sessions = (
        SessionEvents(stored.run, stored.session, stored.events)
        for stored in store.all_sessions(since=chosen.start, until=until)
    )
    return chosen, build(sessions, lambda copy: read_copy(root, copy))


def read_copy(root: Path, copy: Copy) -> bytes | None:
    """A stored copy's bytes, wherever a mail reader left it (new/, or cur/ with flags);
    None if it is gone or too large to be a report."""
    folder = root / copy.folder
    candidates = [folder / "new" / copy.key]
    seen = copy.key + mailbox.Maildir.colon  # KEY:2,FLAGS once a mail reader has seen it
    try:
        with os.scandir(folder / "cur") as entries:
            candidates += [Path(e.path) for e in entries if e.name.startswith(seen)]
    except OSError:
        pass
    for path in candidates:
        try:
            with path.open("rb") as file:
                data = file.read(REPORT_LIMIT + 1)
        except OSError:
            continue
        return data if len(data) <= REPORT_LIMIT else None
    return None
