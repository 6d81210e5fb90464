"""The end of a lesson or challenge that did not reach the teacher, kept until it does.

Every step report is the whole state, so a lost one is made good by the next; the last
report (the lesson or challenge `done`) has no next one. When it does not arrive it is
kept here, in the student's data home, and goes to the same class (HOST:PORT and name)
before the first report of the next `learn … --class` or `challenge play … --class`
(docs/teaching.md, "When the teacher's server cannot be reached"). A report keeps the
time it was made, so the roster's "last seen" stays true.

One small JSON file per report, written whole (a temporary name, then a rename); a file
that is not one is left alone and never sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from tutor.classroom.report import Report, from_record, to_record

OUTBOX_FOLDER = "class-outbox"
FILE_LIMIT = 64 * 1024  # a kept report is a few hundred bytes
KEPT_LIMIT = 200  # beyond this many kept reports, new ones are not kept


@dataclass(frozen=True)
class Kept:
    """A report waiting for its class, and the file that holds it."""

    path: Path
    report: Report


class Outbox:
    """Final reports that did not arrive, per class (HOST:PORT) and student."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def keep(self, where: str, report: Report) -> bool:
        """Keep the report for `where`; False if it could not be kept (a full outbox, a
        folder that cannot be written)."""
        record = {"where": where, "report": to_record(report)}
        data = json.dumps(record, sort_keys=True).encode("utf-8")
        name = hashlib.sha256(data).hexdigest()[:20] + ".json"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if len(list(self.folder.glob("*.json"))) >= KEPT_LIMIT:
                return False
            temporary = self.folder / f".{name}.tmp"
            temporary.write_bytes(data)
            os.replace(temporary, self.folder / name)
        except OSError:
            return False
        return True

    def waiting(self, where: str, student: str) -> list[Kept]:
        """The reports kept for this class and student, oldest first."""
        found = []
        with contextlib.suppress(OSError):
            for path in self.folder.glob("*.json"):
                report = _read(path, where)
                if report is not None and report.student == student:
                    found.append(Kept(path, report))
        return sorted(found, key=lambda kept: kept.report.at)

    def sent(self, kept: Kept) -> None:
        with contextlib.suppress(OSError):
            kept.path.unlink()


def _read(path: Path, where: str) -> Report | None:
    try:
        with path.open("rb") as file:
            data = file.read(FILE_LIMIT + 1)
        record = json.loads(data) if len(data) <= FILE_LIMIT else None
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or record.get("where") != where:
        return None
    return from_record(record.get("report"))
