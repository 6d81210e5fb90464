"""Handouts: the transcripts `serve --transcripts DIR` writes, filed by period and student,
and `smtp-tutor class export`, which bundles a period's into a zip (docs/teaching.md,
"Collecting handouts").

On disk, `DIR/RUN/STUDENT/session-0007.md`: RUN is the time serve started
(`YYYYMMDD-HHMMSS`, `-2`, `-3`… if that folder exists), a folder made exclusively, so two
serve runs never share one; a run that sees a new period begin (`class reset`) goes on in
a new RUN folder, so a folder holds one period. STUDENT is the session's student name made
one safe path component (tutor/smtp/student.py `file_safe`); files are created
exclusively and moved without replacing anything, so nothing is ever overwritten.

Serve records each RUN folder it makes in `ROOT/.smtp-tutor/handouts/RUN.json` under the
Maildir root (its absolute path, the period it belongs to, the format), so that
`class export` finds a period's handouts from the root alone.

In the zip every name is `PERIOD/roster.json`, `PERIOD/roster.csv` or
`PERIOD/STUDENT/RUN-session-0007.md`: a student's sessions of every run of the period in
one folder, in order; each component is checked against what this module writes, so no
name is absolute, holds `..` or comes from anything but these folders. Stdlib only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tutor.classroom.periods import Period

RECORDS = Path(".smtp-tutor") / "handouts"
FORMAT = "smtp-tutor-handouts"
VERSION = 1
EXTENSIONS = (".md", ".html", ".svg", ".txt")
RECORD_LIMIT = 64 * 1024
HANDOUT_LIMIT = 16 * 1024 * 1024  # a capped transcript is at most 1 MiB; anything larger is not one

RUN_NAME = re.compile(r"\d{8}-\d{6}(-\d+)?\Z")
STUDENT_FOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")  # what file_safe makes
SESSION_FILE = re.compile(r"session-\d{4,}\.(md|html|svg|txt)\Z")


def session_file(number: int, extension: str) -> str:
    return f"session-{number:04d}{extension}"


class NotAHandout(Exception):
    """A path in a handouts folder that is not a regular file of a handout's size."""


def read_regular(path: Path, limit: int) -> bytes:
    """A regular file's bytes, at most `limit`: opened without following a link or
    blocking (a FIFO in a file's place), checked before reading (as tutor/paths.py's
    read_file, which this stdlib-only package cannot import)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotAHandout("not a regular file")
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise NotAHandout(f"larger than {limit // (1024 * 1024)} MiB")
    return data


def make_run_folder(directory: Path, now: float | None = None) -> Path:
    """A new folder for one run's handouts, named by its start; never one that exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    for number in range(1, 1000):
        folder = directory / (stamp if number == 1 else f"{stamp}-{number}")
        try:
            folder.mkdir()  # exclusive: FileExistsError if another run has it
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"too many handout folders begun at {stamp} in {directory}")


def move_without_replacing(source: Path, target: Path) -> bool:
    """Move a file, never over another: False (and nothing moved) if target exists."""
    target.parent.mkdir(exist_ok=True)
    try:
        os.link(source, target)  # fails if target exists, where rename would replace it
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links
        if target.exists():
            return False
        os.rename(source, target)
        return True
    os.unlink(source)
    return True


# --- the records serve leaves under the Maildir root ----------------------------------------


@dataclass(frozen=True)
class HandoutRun:
    """One RUN folder of handouts and the period its sessions belong to."""

    folder: Path
    period: str | None
    extension: str
    started: float


def record_run(root: Path, run: HandoutRun) -> Path:
    """Write the record of a new RUN folder (created exclusively, like the folder)."""
    folder = root / RECORDS
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    record = {
        "format": FORMAT,
        "version": VERSION,
        "folder": str(run.folder.absolute()),
        "period": run.period,
        "extension": run.extension,
        "started": run.started,
    }
    for number in range(1, 1000):
        path = folder / f"{run.folder.name}{'' if number == 1 else f'+{number}'}.json"
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:  # another DIR had a run folder of the same name
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(json.dumps(record, ensure_ascii=False) + "\n")
        return path
    raise FileExistsError(f"too many handout records named {run.folder.name} in {folder}")


def recorded_runs(root: Path) -> list[HandoutRun]:
    """Every RUN folder serve recorded under this root, oldest first; a record that
    cannot be read or is not one is skipped."""
    try:
        paths = sorted((root / RECORDS).glob("*.json"))
    except OSError:
        return []
    runs = []
    for path in paths:
        try:
            record = json.loads(read_regular(path, RECORD_LIMIT))
        except (OSError, NotAHandout, ValueError):
            continue
        run = _run_of(record)
        if run is not None:
            runs.append(run)
    return sorted(runs, key=lambda run: (run.started, run.folder.name))


def _run_of(record: object) -> HandoutRun | None:
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    folder, period = record.get("folder"), record.get("period")
    extension, started = record.get("extension"), record.get("started")
    if not isinstance(folder, str) or not RUN_NAME.match(Path(folder).name):
        return None
    return HandoutRun(
        Path(folder),
        period if isinstance(period, str) else None,
        extension if extension in EXTENSIONS else "",
        float(started) if isinstance(started, int | float) else 0.0,
    )


# --- finding a period's handouts -------------------------------------------------------------


@dataclass(frozen=True)
class Handout:
    run: str  # the RUN folder's name
    student: str  # the STUDENT folder's name (file-safe)
    path: Path

    @property
    def name_in_zip(self) -> str:
        return f"{self.student}/{self.run}-{self.path.name}"


def run_folders(
    root: Path, period: Period, until: float | None, transcripts: Path | None = None
) -> tuple[list[Path], list[Path]]:
    """The RUN folders of a period, and those recorded for it that are gone.

    From the records serve left under the root; with `transcripts` (the DIR serve was
    given, if it has moved since), the folders of that name in it, and any RUN folder of it
    that no record names, by the start time in its name."""
    runs = recorded_runs(root)
    mine = [run.folder for run in runs if run.period == period.name]
    if transcripts is not None:
        recorded = {run.folder.name for run in runs}
        named = {folder.name for folder in mine}
        found = [
            folder
            for folder in _run_folders_in(transcripts)
            if folder.name in named
            or (folder.name not in recorded and _began_in(folder.name, period, until))
        ]
        return found, []
    present = [folder for folder in mine if folder.is_dir()]
    return present, [folder for folder in mine if not folder.is_dir()]


def _run_folders_in(directory: Path) -> list[Path]:
    try:
        with os.scandir(directory) as entries:
            names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    return [directory / name for name in sorted(names) if RUN_NAME.match(name)]


def _began_in(name: str, period: Period, until: float | None) -> bool:
    """A RUN folder's start (to the second, from its name) within the period."""
    try:
        started = time.mktime(time.strptime(name[:15], "%Y%m%d-%H%M%S"))
    except (ValueError, OverflowError):
        return False
    return int(period.start) <= started and (until is None or started < until)


def handouts_in(folder: Path) -> Iterator[Handout]:
    """The handouts of one RUN folder: STUDENT/session-NNNN.EXT, regular files only (no
    link, nothing else a folder may hold), by student then session."""
    for student in _entries(folder, lambda e: e.is_dir(follow_symlinks=False)):
        if not STUDENT_FOLDER.match(student):
            continue
        for name in _entries(folder / student, lambda e: e.is_file(follow_symlinks=False)):
            if SESSION_FILE.match(name):
                yield Handout(folder.name, student, folder / student / name)


def _entries(folder: Path, wanted: Callable[[os.DirEntry[str]], bool]) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if wanted(e))
    except OSError:
        return []


# --- the zip ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    period: str
    roster_json: bytes
    roster_csv: bytes
    handouts: list[Handout]


@dataclass(frozen=True)
class Written:
    handouts: int
    students: int
    skipped: list[str]  # handouts that could not be read, with why


def write_zip(target: Path, bundle: Bundle, *, replace: bool) -> Written:
    """Write the bundle to a zip at `target`, whole or not at all: into a temporary file
    beside it, then moved in place. Without `replace`, FileExistsError if target exists
    (checked first, and again as it is moved in place: nothing is ever overwritten)."""
    if not replace and (target.exists() or target.is_symlink()):
        raise FileExistsError(target)
    if not RUN_NAME.match(bundle.period):
        raise ValueError(f"not a period name: {bundle.period!r}")
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".zip.tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            written = _fill(file, bundle)
        if replace:
            os.replace(temporary, target)
        elif not move_without_replacing(Path(temporary), target):
            raise FileExistsError(target)
    finally:
        with contextlib.suppress(OSError):
            os.remove(temporary)
    return written


def _fill(file: BinaryIO, bundle: Bundle) -> Written:
    now = time.time()
    skipped: list[str] = []
    students = set()
    count = 0
    with zipfile.ZipFile(file, "w") as archive:
        for name, data in (("roster.json", bundle.roster_json), ("roster.csv", bundle.roster_csv)):
            archive.writestr(_entry(f"{bundle.period}/{name}", now), data)
        for handout in bundle.handouts:
            try:
                data = read_regular(handout.path, HANDOUT_LIMIT)
                mtime = os.stat(handout.path).st_mtime
            except (OSError, NotAHandout) as error:
                why = error.strerror if isinstance(error, OSError) else str(error)
                skipped.append(f"{handout.path}: {why}")
                continue
            archive.writestr(_entry(f"{bundle.period}/{handout.name_in_zip}", mtime), data)
            students.add(handout.student)
            count += 1
    return Written(count, len(students), skipped)


def _entry(name: str, seconds: float) -> zipfile.ZipInfo:
    """A compressed entry, an ordinary file (rw-r--r--) of this time (1980 at the
    earliest: a zip's epoch)."""
    moment = time.localtime(seconds)
    when = (
        moment.tm_year,
        moment.tm_mon,
        moment.tm_mday,
        moment.tm_hour,
        moment.tm_min,
        moment.tm_sec,
    )
    info = zipfile.ZipInfo(name, when if when[0] >= 1980 else (1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info
