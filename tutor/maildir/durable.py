"""Several Maildir copies of one message, all or nothing across a crash, for one wait for
the disk (docs/server.md, "Durability: what a 250 guarantees").

The standard library's `Maildir.add` links each copy into new/ as soon as it is written,
so a process killed between two copies leaves the message in one mailbox and not in
another, and a client's retry then duplicates it. Here each store owns a write-ahead
delivery log, and a delivery goes:

1. every copy is written to its folder's tmp/, and one record is appended to the log:
   the queue id, each copy's folder, name and trace headers, and the message once (its
   copies differ only in their trace headers);
2. the log is flushed (one fdatasync), shared by every delivery of the round;
3. every copy is renamed into new/, with no fsync: the record can rebuild it.

Only then does the caller reply 250. The record is the commit: complete on disk, it
makes every copy come back after any crash; torn, it was never flushed, no 250 went, and
its copies are removed. So a delivery waits for the disk once, whatever its copies.

The copies in new/ are not fsync'd before the 250, so a log segment is removed only at a
checkpoint (the segment is 8 MiB or 5 s old, or the store closes): a new segment takes
the records from then on, and in the background every file the old one moved into new/
is fsync'd, then new/ (and cur/, where a reader moved one), then the segment goes.

Several servers may share a Maildir root (serve, the sandbox, learn): each holds a lock
on a file of its own for as long as it runs, and only the logs of a server whose lock is
free (its process is gone: the system drops the lock of a killed process) are replayed.
Reading stays with the standard library's `mailbox`; the layout written here is the one
it writes.
"""

from __future__ import annotations

import contextlib
import itertools
import mailbox
import os
import re
import socket
import struct
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO, Generic, TypeGuard, TypeVar

STATE_FOLDER = ".smtp-tutor"  # the tutor's own files under the Maildir root
LOGS = "deliveries"
UNREADABLE = "unreadable"  # log files that could not be read, kept for a person to look at
SEGMENT_LIMIT = 8 << 20  # bytes: a segment this large is checkpointed, a new one begun
SEGMENT_AGE = 5.0  # seconds: so is one this old (what a system crash can bring back)
PREALLOCATE = 1 << 20  # zeros written ahead of the records, so a flush leaves the size alone
SYNC_THREADS = 16  # fsyncs issued at once; beyond this they queue for a thread
CHECKPOINT_LANES = 4  # a checkpoint's fsyncs at once: the other threads stay free for rounds
HEAD_LIMIT = 16 << 20  # a record's names and trace headers: far above any real record's
READ_CHUNK = 1 << 20  # how much of a message is held at once while it is read back
_BINARY = getattr(os, "O_BINARY", 0)  # Windows would otherwise translate line endings
_sequence = itertools.count()

Body = bytes | Callable[[], Iterable[bytes]]
"""What every copy of a message holds after its own trace headers: the bytes, or a source
that produces them afresh, in pieces, each time it is called."""

# A record: a fixed header, then the head (queue id; each copy's folder, name and first
# bytes), then the body every copy shares. The CRC32 covers the head, the body, then the
# header's fields from the version to the body length, so a record streamed from a file
# gets its header last: until then the body length says more than any file holds (torn).
MAGIC = b"STDL"
VERSION = 1
DELIVERED = 1  # a delivery: rebuild its copies
WITHDRAWN = 2  # a delivery that failed after its record was written: do not rebuild it
_HEADER = struct.Struct("<4sBBHIQI")  # magic, version, kind, 0, head length, body length, CRC
_FIELDS = slice(4, 20)  # the header's bytes the CRC covers
_TORN = (1 << 64) - 1  # a streamed record's body length until its header is written
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_SEGMENT_NAME = re.compile(r"[0-9]{6,}\.log")
_QUEUE_ID = re.compile(r"[0-9A-Za-z]{1,64}")


class LogError(OSError):
    """This process could not claim a log folder of its own."""


@dataclass(frozen=True)
class Unfinished:
    """A delivery a dead server left in its log."""

    queue_id: str  # "" when a torn record did not say
    copies: int  # copies its record named
    restored: tuple[str, ...] = ()  # folders whose copy had to be written again


@dataclass(frozen=True)
class Recovery:
    """What a start found of servers that are gone, and did about it."""

    rolled_back: tuple[Unfinished, ...] = ()  # torn records: never flushed, copies removed
    finished: tuple[Unfinished, ...] = ()  # complete records: every copy in place after
    set_aside: tuple[Path, ...] = ()  # unreadable log files, moved to deliveries/unreadable/
    stray: int = 0  # files a dead server left in tmp/, removed


@dataclass
class _Copy:
    # Paths are strings: a delivery may run on the server's loop before its 250, and
    # building pathlib objects for every name was most of this module's time there.
    box: str  # the Maildir folder
    key: str  # its unique name in tmp/ and new/
    prefix: bytes  # its own first bytes (its trace headers), before the shared body
    created: bool = False  # tmp/key is ours (never remove a file another process made)
    moved: bool = False  # renamed into new/
    tmp: str = field(init=False)
    new: str = field(init=False)

    def __post_init__(self) -> None:
        self.tmp = os.path.join(self.box, "tmp", self.key)
        self.new = os.path.join(self.box, "new", self.key)


@dataclass(frozen=True)
class _ProcessNames:
    pid: int
    host: str  # escaped as the standard library escapes it in Maildir names


def _process_names() -> _ProcessNames:
    host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
    return _ProcessNames(os.getpid(), host)


# Looked up once per process, not per delivery (each was a system call); a forked child
# looks again, so two processes never share a P.
_names = _process_names()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: globals().update(_names=_process_names()))


def unique_name(token: str) -> str:
    """A Maildir file name no other delivery uses (cr.yp.to/proto/maildir.html): seconds,
    then M microseconds, P process id, Q a count in this process, R the writing store's
    random token (so what a dead one left in tmp/ can be found), then the host name with
    `/` and `:` escaped as the standard library escapes them (as at the process's start:
    P, Q and R make the name unique, the host name only says where it was written)."""
    now = time.time()
    names = _names
    return f"{int(now)}.M{int(now % 1 * 1e6)}P{names.pid}Q{next(_sequence)}R{token}.{names.host}"


def _token(owner: str) -> str:
    """The random part of an owner's name (PID-TOKEN)."""
    return owner.rpartition("-")[2]


@dataclass(eq=False)
class _Segment:
    """One log file of ours, NNNNNN.log in our folder."""

    path: str
    fd: int
    opened: float  # time.monotonic()
    size: int = 0  # the end of its records
    allocated: int = 0  # the end of the zeros written ahead of them
    unsettled: int = 0  # records whose deliveries have not ended: no checkpoint before 0
    linked: list[tuple[str, str]] = field(default_factory=list)  # (folder, key) in new/
    named: bool = False  # its name in our folder is on disk (the folder fsync'd)


class DeliveryLog:
    """One process's delivery log under ROOT/.smtp-tutor/deliveries/PID-TOKEN/, and the
    recovery of the logs of processes that are gone. Appends and checkpoints may come from
    several threads (a server's loop and its delivery thread)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root / STATE_FOLDER / LOGS
        self._lock: int | None = None  # descriptor of our lock file, locked
        self._lock_path: Path | None = None
        self._folder: Path | None = None  # where our segments go
        self._mutex = threading.Lock()  # the segments below, and the order of appends
        self._current: _Segment | None = None  # where records are appended
        self._numbers = itertools.count(1)
        self._retired: deque[_Segment] = deque()  # waiting for their checkpoint, in order
        self._checkpointing: _Segment | None = None
        self._checkpoint_ended = threading.Condition(self._mutex)
        self._timer: threading.Timer | None = None

    # --- ownership ------------------------------------------------------------------------

    def claim(self) -> Path:
        """Our log folder, made (and locked) the first time."""
        if self._folder is not None:
            return self._folder
        make_durable_dirs(self.base)
        with contextlib.suppress(OSError):
            fsync_directory(self.root.parent)  # the root itself may have just been made
        for _ in range(3):
            owner = f"{os.getpid()}-{os.urandom(4).hex()}"
            lock_path = self.base / f"{owner}.lock"
            fd = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_RDWR | _BINARY, 0o600)
            # A recovery elsewhere may open the new file and take the lock before we do,
            # thinking it a dead server's: then it removes it, and we try another name.
            if _try_lock(fd) and _same_file(fd, lock_path):
                break
            os.close(fd)
        else:
            raise LogError(f"cannot lock a delivery log of our own in {self.base}")
        folder = self.base / owner
        try:
            folder.mkdir(mode=0o700)
            fsync_directory(self.base)
        except OSError:
            _drop_lock(fd, lock_path)
            raise
        self._lock, self._lock_path, self._folder = fd, lock_path, folder
        return folder

    def token(self) -> str:
        """The random part of our name, which the names of our copies carry."""
        return _token(self.claim().name)

    def release(self) -> None:
        """Checkpoint what is logged (waiting for it), then give up our folder and lock.
        Call with no delivery under way; a segment a delivery never ended stays for the
        next start."""
        with self._mutex:
            if self._current is not None:
                self._retire(self._current)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            while self._checkpointing is not None:
                self._checkpoint_ended.wait()
            for segment in self._retired:  # held up by a delivery that never ended
                with contextlib.suppress(OSError):
                    os.close(segment.fd)
            self._retired.clear()
        fd, lock_path, folder = self._lock, self._lock_path, self._folder
        self._lock = self._lock_path = self._folder = None
        if fd is None or lock_path is None or folder is None:
            return
        with contextlib.suppress(OSError):
            folder.rmdir()  # not empty if a checkpoint failed: the next start replays it
        _drop_lock(fd, lock_path)

    # --- appending ------------------------------------------------------------------------

    def append(self, queue_id: str, copies: Sequence[_Copy], body: Body) -> _Segment:
        """A delivery's record, written (not flushed) at the end of the current segment;
        the segment, to flush and then to tell `settled`."""
        head = _encode_head(queue_id, [(os.path.basename(c.box), c.key, c.prefix) for c in copies])
        folder = self.claim()
        with self._mutex:
            segment = self._segment_for_append(folder)
            if isinstance(body, bytes):
                _reserve(segment, _HEADER.size + len(head) + len(body))
            segment.size += self._write_record(segment, DELIVERED, head, body)
            segment.allocated = max(segment.allocated, segment.size)
            segment.unsettled += 1
            return segment

    def withdraw(self, queue_id: str, copies: Sequence[_Copy]) -> None:
        """Say that a logged delivery failed (its copies were taken back), so that recovery
        does not rebuild it. Not flushed: should it be lost in a crash, the delivery
        comes back whole, a duplicate of what the client sends again."""
        head = _encode_head(queue_id, [(os.path.basename(c.box), c.key, b"") for c in copies])
        with contextlib.suppress(OSError), self._mutex:
            segment = self._segment_for_append(self.claim())
            segment.size += self._write_record(segment, WITHDRAWN, head, b"")
            segment.allocated = max(segment.allocated, segment.size)

    def settled(self, segment: _Segment, linked: Iterable[_Copy]) -> None:
        """A delivery of this segment ended; `linked`: its copies now in new/."""
        with self._mutex:
            segment.linked.extend((copy.box, copy.key) for copy in linked)
            segment.unsettled -= 1
            self._start_checkpoints()

    def flush_failed(self, segment: _Segment) -> None:
        """The segment's flush failed: what it holds is in doubt, so new records go to a
        new segment."""
        with self._mutex:
            if self._current is segment:
                self._retire(segment)

    def _segment_for_append(self, folder: Path) -> _Segment:
        segment = self._current
        if segment is not None and (
            segment.size >= SEGMENT_LIMIT or time.monotonic() - segment.opened >= SEGMENT_AGE
        ):
            self._retire(segment)
            segment = None
        if segment is None:
            path = os.path.join(folder, f"{next(self._numbers):06d}.log")
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _BINARY, 0o600)
            segment = self._current = _Segment(path, fd, time.monotonic())
            self._arm_timer(segment)
        return segment

    def _write_record(self, segment: _Segment, kind: int, head: bytes, body: Body) -> int:
        """One record at the segment's end; its length. On an error nothing of it stays (or,
        should cutting it off fail, the segment is retired: a torn record ends a segment)."""
        try:
            return _write_record(segment.fd, segment.size, kind, head, body)
        except Exception:
            try:
                os.ftruncate(segment.fd, segment.size)
                os.lseek(segment.fd, segment.size, os.SEEK_SET)
                segment.allocated = segment.size
            except OSError:
                self._retire(segment)
            raise

    # --- checkpoints ----------------------------------------------------------------------

    def _arm_timer(self, segment: _Segment) -> None:
        """A segment is checkpointed at SEGMENT_AGE even when no other delivery comes."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(SEGMENT_AGE, self._retire_if_current, (segment,))
        self._timer.daemon = True
        with contextlib.suppress(RuntimeError):  # shutting down: the next round or close
            self._timer.start()

    def _retire_if_current(self, segment: _Segment) -> None:
        with self._mutex:
            if self._current is segment:
                self._retire(segment)

    def _retire(self, segment: _Segment) -> None:
        """No more records go to the segment; checkpoint it once its deliveries ended."""
        if self._current is segment:
            self._current = None
        self._retired.append(segment)
        self._start_checkpoints()

    def _start_checkpoints(self) -> None:
        """The oldest retired segment's checkpoint, if none is under way and its deliveries
        all ended (with the mutex held: the work goes to the pool)."""
        if self._checkpointing is not None or not self._retired:
            return
        if self._retired[0].unsettled:
            return
        segment = self._checkpointing = self._retired.popleft()
        files = segment.linked
        missing: list[tuple[str, str]] = []  # moved on by a reader, or removed
        lanes = [files[lane::CHECKPOINT_LANES] for lane in range(CHECKPOINT_LANES)]
        jobs: list[Callable[[], None]] = [
            partial(_sync_lane, lane, missing) for lane in lanes if lane
        ]
        try:
            _in_threads(jobs, partial(self._end_checkpoint, segment, missing))
        except RuntimeError:  # the interpreter is shutting down: the next start replays
            self._checkpointing = None

    def _end_checkpoint(
        self, segment: _Segment, missing: list[tuple[str, str]], errors: list[Exception | None]
    ) -> None:
        """Once the segment's files are on disk: its folders, then its removal (in the
        thread that ended the last lane)."""
        with contextlib.suppress(OSError):
            os.close(segment.fd)
        if not any(errors):
            with contextlib.suppress(OSError):  # else the segment stays for the next start
                folders = {os.path.join(box, "new") for box, _ in segment.linked}
                index = _CurIndex()
                for box, key in missing:
                    found = index.find(box, key)
                    if found is not None:
                        with contextlib.suppress(FileNotFoundError):
                            _fsync_file(found)
                            folders.add(os.path.dirname(found))
                for folder in sorted(folders):
                    fsync_directory(folder)
                os.remove(segment.path)
                fsync_directory(os.path.dirname(segment.path))
        with self._mutex:
            self._checkpointing = None
            self._checkpoint_ended.notify_all()
            self._start_checkpoints()

    # --- recovery -------------------------------------------------------------------------

    def recover(self) -> Recovery:
        """Replay every log of a server that is gone, then tidy up after it."""
        if not self.base.is_dir():
            return Recovery()
        found = _Found()
        owners = {p.stem for p in self.base.glob("*.lock")} | {
            p.name for p in self.base.iterdir() if p.is_dir() and p.name != UNREADABLE
        }
        for owner in sorted(owners):
            if self._lock_path is not None and owner == self._lock_path.stem:
                continue
            lock_path = self.base / f"{owner}.lock"
            gone, fd = _lock_if_gone(lock_path)
            if not gone:
                continue  # its server is running
            done = False
            try:
                done = self._recover_folder(self.base / owner, found)
                found.stray += _remove_stray(self.root, _token(owner))
            finally:
                if fd is not None:
                    if done:
                        _drop_lock(fd, lock_path)
                    else:
                        os.close(fd)
        return Recovery(
            tuple(found.rolled_back), tuple(found.finished), tuple(found.set_aside), found.stray
        )

    def _recover_folder(self, folder: Path, found: _Found) -> bool:
        """Replay a dead server's segments; True when its folder is gone."""
        if not folder.is_dir():
            return True
        done = True
        read: list[_ReadSegment] = []
        for path in sorted(folder.iterdir(), key=lambda p: (len(p.name), p.name)):
            try:
                if not _SEGMENT_NAME.fullmatch(path.name) or not path.is_file():
                    raise _Unreadable("not a segment of a delivery log")
                read.append(_read_segment(path))
            except _Unreadable:
                try:
                    found.set_aside.append(self._set_aside(path, folder.name))
                except OSError:
                    done = False
            except OSError:
                done = False  # the next start tries again
        withdrawn = {key for segment in read for key in segment.withdrawn}
        try:
            finished = self._replay(read, withdrawn)
            for segment in read:
                segment.path.unlink()
            fsync_directory(folder)
        except OSError:
            return False  # replayed again at the next start: a replay can be repeated
        found.finished.extend(finished)
        found.rolled_back.extend(s.torn for s in read if s.torn is not None)
        if done:
            try:
                folder.rmdir()
                fsync_directory(self.base)
            except OSError:
                return False
        return done

    def _replay(self, read: list[_ReadSegment], withdrawn: set[str]) -> list[Unfinished]:
        """Every complete record's copies in place and on disk: each one kept where it
        holds the record's bytes, else written again."""
        finished: list[Unfinished] = []
        folders: set[str] = set()
        index = _CurIndex()
        for segment in read:
            syncs: list[Callable[[], None]] = []
            with segment.path.open("rb") as log:
                for record in segment.records:
                    if record.copies and record.copies[0][1] in withdrawn:
                        continue
                    restored = [
                        folder
                        for folder, key, prefix in record.copies
                        if self._restore(log, record, folder, key, prefix, index, folders, syncs)
                    ]
                    finished.append(
                        Unfinished(record.queue_id, len(record.copies), tuple(restored))
                    )
            for start in range(0, len(syncs), SYNC_THREADS * 8):
                errors = _run_at_once(syncs[start : start + SYNC_THREADS * 8])
                if error := next((e for e in errors if e is not None), None):
                    raise error
        for folder in sorted(folders):
            fsync_directory(folder)
        return finished

    def _restore(
        self,
        log: BinaryIO,
        record: _Record,
        folder: str,
        key: str,
        prefix: bytes,
        index: _CurIndex,
        folders: set[str],
        syncs: list[Callable[[], None]],
    ) -> bool:
        """One copy in place; True if it had to be written (absent, or other bytes)."""
        box = os.path.join(self.root, folder)
        for part in ("tmp", "new", "cur"):
            make_durable_dirs(Path(box, part))
        new = os.path.join(box, "new", key)
        target = new if os.path.lexists(new) else index.find(box, key)
        if target is not None and _holds(target, log, record, prefix):
            syncs.append(partial(_fsync_file, target))
            folders.add(os.path.dirname(target))
            return False
        tmp = os.path.join(box, "tmp", key)
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        fd = _create(tmp, 0o666)
        try:
            _write_chunks(fd, itertools.chain((prefix,), _read_body(log, record)))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target or new)
        folders.add(os.path.dirname(target or new))
        return True

    def _set_aside(self, path: Path, owner: str) -> Path:
        aside = self.base / UNREADABLE
        aside.mkdir(mode=0o700, exist_ok=True)
        target = aside / f"{owner}-{path.name}"
        os.replace(path, target)
        return target


def _reserve(segment: _Segment, length: int) -> None:
    """Zeros written ahead of a record that would pass the end of those already there:
    a flush that only overwrites them need not write the file's size (ext4 without a
    journal: no inode write; with one: no journal commit), which halves its time here.
    A record streamed from a file extends the segment itself, and so does one on a disk
    too full for the zeros."""
    if segment.size + length <= segment.allocated:
        return
    grow = max(PREALLOCATE, segment.size + length - segment.allocated)
    try:
        _write_at(segment.fd, bytes(grow), segment.allocated)
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(segment.fd, segment.allocated)
        return
    segment.allocated += grow


@dataclass
class _Found:
    rolled_back: list[Unfinished] = field(default_factory=list)
    finished: list[Unfinished] = field(default_factory=list)
    set_aside: list[Path] = field(default_factory=list)
    stray: int = 0


def _remove_stray(root: Path, token: str) -> int:
    """Remove what a dead store left in any folder's tmp/ (a copy it never moved on)."""
    removed = 0
    mark = f"R{token}."
    for folder in root.iterdir():
        if folder.name.startswith(".") or not (folder / "tmp").is_dir():
            continue
        for path in (folder / "tmp").iterdir():
            if mark in path.name:
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
    return removed


# --- rounds ----------------------------------------------------------------------------------


@dataclass
class _Plan:
    """One delivery under way: its copies, where its record went, and the error that ended
    it, if one did (its copies are then taken back)."""

    queue_id: str
    copies: list[_Copy]
    body: Body
    written: bool = False  # its copies and its record, or the error that stopped them
    segment: _Segment | None = None  # where its record went
    error: Exception | None = None


Tag = TypeVar("Tag", bound=Hashable)


class Rounds(Generic[Tag]):
    """Deliveries stored together, each round ending with one flush of the log that all of
    them share: each delivery's copies and record are written, the log is flushed, then
    every copy is moved into new/ and the deliveries end. So one delivery takes one round.

    A round is `begin()` (everything written, the flush issued) then `end()` (the wait,
    then the renames); a delivery added in between with `now=True` is written at once,
    while the disk works, and joins the next round. Used from one thread at a time (the
    flush runs in a thread of its own; other Rounds may share the log)."""

    def __init__(self, log: DeliveryLog) -> None:
        self._log = log
        self._plans: dict[Tag, _Plan] = {}
        self._round: _Round | None = None  # the round whose flush is under way
        self.waited = 0.0  # seconds the last round waited for the disk

    @property
    def busy(self) -> bool:
        return bool(self._plans)

    def add(
        self,
        tag: Tag,
        queue_id: str,
        copies: Sequence[tuple[str | Path, bytes]],
        body: Body,
        *,
        now: bool = False,
    ) -> None:
        """A delivery of one copy per (Maildir folder, its first bytes), each followed by the
        body, for the next round (tags name them in `end`'s outcomes); `now`: written at
        once (a round's flush is under way)."""
        plan = _Plan(queue_id, [], body)
        self._plans[tag] = plan
        try:
            token = self._log.token()
        except OSError as error:
            plan.written, plan.error = True, error
            return
        plan.copies = [_Copy(os.fspath(box), unique_name(token), prefix) for box, prefix in copies]
        if now:
            self._write(plan)

    def step(self) -> dict[Tag, list[str] | Exception]:
        """One whole round: the deliveries that ended, with their keys (stored for good) or
        their error (all taken back)."""
        self.begin()
        return self.end()

    def begin(self, on_synced: Callable[[], None] | None = None) -> None:
        """Write every delivery not yet written and issue the flush of the log. `on_synced`
        is called (from another thread) when it is done; without it, the flush runs here."""
        assert self._round is None, "a round is under way"
        plans = list(self._plans.values())
        segments: dict[int, _Segment] = {}
        for plan in plans:
            self._write(plan)
            if plan.error is None and plan.segment is not None:
                segments[id(plan.segment)] = plan.segment
        flushes: list[tuple[Callable[[], None], _Segment, bool]] = []
        for segment in segments.values():
            flushes.append((partial(_flush_log, segment.fd), segment, False))
            if not segment.named:  # a new file's name reaches the disk with its folder
                folder = os.path.dirname(segment.path)
                flushes.append((partial(fsync_directory, folder), segment, True))
        self._round = _Round(plans, flushes, time.perf_counter())
        self._round.outcome = _start_at_once([job for job, _, _ in flushes], on_synced)

    def end(self) -> dict[Tag, list[str] | Exception]:
        """Wait for the round's flush, move its copies into new/; the deliveries that ended."""
        current, self._round = self._round, None
        assert current is not None, "no round under way"
        errors = current.outcome.result()
        self.waited = time.perf_counter() - current.began
        failed: dict[int, Exception] = {}
        for (_, segment, is_folder), error in zip(current.flushes, errors, strict=True):
            if error is not None:
                failed.setdefault(id(segment), error)
                self._log.flush_failed(segment)
            elif is_folder:
                segment.named = True
        in_round = {id(plan) for plan in current.plans}
        ended: dict[Tag, list[str] | Exception] = {}
        for tag, plan in list(self._plans.items()):
            if id(plan) not in in_round:
                continue  # joined while the disk worked: its round is the next one
            if plan.error is None and plan.segment is not None and id(plan.segment) in failed:
                self._abandon(plan, failed[id(plan.segment)])
            if plan.error is None:
                self._move_into_new(plan)
            if plan.segment is not None:
                moved = plan.copies if plan.error is None else ()
                self._log.settled(plan.segment, moved)
            ended[tag] = plan.error or [copy.key for copy in plan.copies]
            del self._plans[tag]
        return ended

    def _write(self, plan: _Plan) -> None:
        """Each copy in its folder's tmp/, then the record in the log (neither flushed)."""
        if plan.written:
            return
        plan.written = True
        try:
            for copy in plan.copies:
                fd = _create(copy.tmp, 0o666)  # the standard library's mode, less the umask
                copy.created = True
                _fill_and_close(fd, _with_prefix(copy.prefix, plan.body))
            if plan.copies:
                plan.segment = self._log.append(plan.queue_id, plan.copies, plan.body)
        except Exception as error:
            self._abandon(plan, error)

    def _move_into_new(self, plan: _Plan) -> None:
        """Every copy into new/ (names are unique: a rename never replaces another's file)."""
        try:
            for copy in plan.copies:
                os.rename(copy.tmp, copy.new)
                copy.moved = True
        except Exception as error:
            self._abandon(plan, error)

    def _abandon(self, plan: _Plan, error: Exception) -> None:
        plan.error = error
        _take_back(plan.copies)
        if plan.segment is not None:
            self._log.withdraw(plan.queue_id, plan.copies)


@dataclass
class _Round:
    plans: list[_Plan]
    flushes: list[tuple[Callable[[], None], _Segment, bool]]  # job, segment, of its folder
    began: float
    outcome: Future[list[Exception | None]] = field(init=False)


def _flush_log(fd: int) -> None:
    # fdatasync where there is one: the log's data and its size, not its times.
    getattr(os, "fdatasync", os.fsync)(fd)


def _with_prefix(prefix: bytes, body: Body) -> Iterator[bytes]:
    """One copy's bytes: its first bytes and the body's first piece in one write."""
    if isinstance(body, bytes):
        yield prefix + body
        return
    chunks = iter(body())
    yield prefix + next(chunks, b"")
    yield from chunks


def _take_back(copies: Sequence[_Copy]) -> None:
    """Remove every copy of ours, wherever it got to; what was in new/ durably."""
    touched: set[str] = set()
    for copy in copies:
        paths = [copy.new, *_in_cur(copy)] if copy.moved else []
        if copy.created and not copy.moved:
            paths.append(copy.tmp)
        for path in paths:
            with contextlib.suppress(OSError):
                os.remove(path)
                touched.add(os.path.dirname(path))
    for directory in touched:
        with contextlib.suppress(OSError):
            fsync_directory(directory)


def _in_cur(copy: _Copy) -> list[str]:
    """The copy in cur/, where a mail reader moves what it has seen (KEY:2,FLAGS)."""
    found = _CurIndex().find(copy.box, copy.key)
    return [found] if found is not None else []


class _CurIndex:
    """Where each name of a folder's cur/ is (KEY or KEY:2,FLAGS), read once per folder."""

    def __init__(self) -> None:
        self._folders: dict[str, dict[str, str]] = {}

    def find(self, box: str, key: str) -> str | None:
        names = self._folders.get(box)
        if names is None:
            names = self._folders[box] = {}
            colon = mailbox.Maildir.colon
            with (
                contextlib.suppress(FileNotFoundError, NotADirectoryError),
                os.scandir(os.path.join(box, "cur")) as entries,
            ):
                for entry in entries:
                    names.setdefault(entry.name.partition(colon)[0], entry.path)
        return names.get(key)


# --- records ---------------------------------------------------------------------------------


def _encode_head(queue_id: str, copies: Sequence[tuple[str, str, bytes]]) -> bytes:
    parts = [_short(queue_id.encode("ascii", "replace")), _U32.pack(len(copies))]
    for folder, key, prefix in copies:
        parts += [_short(os.fsencode(folder)), _short(os.fsencode(key))]
        parts += [_U32.pack(len(prefix)), prefix]
    return b"".join(parts)


def _short(data: bytes) -> bytes:
    return _U16.pack(len(data)) + data


def _write_record(fd: int, offset: int, kind: int, head: bytes, body: Body) -> int:
    """One record at `offset` (the descriptor's position); its length. A body in memory
    goes in one write; one from a source in pieces, then the header over its stand-in."""
    if isinstance(body, bytes):
        fields = _HEADER.pack(MAGIC, VERSION, kind, 0, len(head), len(body), 0)[_FIELDS]
        crc = zlib.crc32(fields, zlib.crc32(body, zlib.crc32(head)))
        _write_chunks(fd, [b"".join((MAGIC, fields, _U32.pack(crc), head, body))])
        return _HEADER.size + len(head) + len(body)
    _write_chunks(fd, [_HEADER.pack(MAGIC, VERSION, kind, 0, len(head), _TORN, 0) + head])
    crc, length = zlib.crc32(head), 0
    for chunk in body():
        _write_chunks(fd, [chunk])
        crc, length = zlib.crc32(chunk, crc), length + len(chunk)
    header = _HEADER.pack(MAGIC, VERSION, kind, 0, len(head), length, 0)
    crc = zlib.crc32(header[_FIELDS], crc)
    _write_at(fd, _HEADER.pack(MAGIC, VERSION, kind, 0, len(head), length, crc), offset)
    return _HEADER.size + len(head) + length


def _write_at(fd: int, data: bytes, offset: int) -> None:
    if hasattr(os, "pwrite"):
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written
        return
    end = os.lseek(fd, 0, os.SEEK_CUR)  # Windows: no pwrite
    os.lseek(fd, offset, os.SEEK_SET)
    _write_chunks(fd, [data])
    os.lseek(fd, end, os.SEEK_SET)


class _Unreadable(ValueError):
    """A log file that is not one we could have written: set aside, nothing it says done."""


@dataclass(frozen=True)
class _Record:
    queue_id: str
    copies: tuple[tuple[str, str, bytes], ...]  # folder, key, first bytes
    body_at: int  # where the body is in its segment
    body_length: int


@dataclass
class _ReadSegment:
    path: Path
    records: list[_Record] = field(default_factory=list)  # complete deliveries, in order
    withdrawn: set[str] = field(default_factory=set)  # first keys of withdrawn deliveries
    torn: Unfinished | None = None  # the torn record at its end, when its header was read


def _read_segment(path: Path) -> _ReadSegment:
    """A segment's complete records, up to the first torn one (never flushed: it and what
    follows are dropped). _Unreadable for a file that is no log of ours, or holds a name
    that is not a plain file name; no length is trusted beyond the file's size."""
    read = _ReadSegment(path)
    with path.open("rb") as log:
        size = os.fstat(log.fileno()).st_size
        at = 0
        while at < size:
            log.seek(at)
            header = log.read(_HEADER.size)
            if header[:4] != MAGIC[: len(header)] or header[4:5] not in (b"", bytes([VERSION])):
                if at == 0 and any(header):
                    raise _Unreadable("not a delivery log of this version")
                return read  # the zeros written ahead, or a write that never reached the disk
            if len(header) < _HEADER.size:
                return read
            _, _, kind, _, head_length, body_length, crc = _HEADER.unpack(header)
            end = at + _HEADER.size + head_length + body_length
            if end > size or head_length > HEAD_LIMIT:
                read.torn = _torn(log, head_length, size)
                return read
            head = log.read(head_length)
            check = zlib.crc32(head)
            for chunk in _read_range(log, at + _HEADER.size + head_length, body_length):
                check = zlib.crc32(chunk, check)
            if zlib.crc32(header[_FIELDS], check) != crc:
                read.torn = _torn(log, head_length, size, head)
                return read
            queue_id, copies = _decode_head(head)
            if kind == WITHDRAWN and copies:
                read.withdrawn.add(copies[0][1])
            elif kind == DELIVERED:
                body_at = at + _HEADER.size + head_length
                read.records.append(_Record(queue_id, tuple(copies), body_at, body_length))
            elif kind != WITHDRAWN:
                raise _Unreadable(f"a record of unknown kind {kind}")
            at = end
    return read


def _torn(log: BinaryIO, head_length: int, size: int, head: bytes | None = None) -> Unfinished:
    """What a torn record still says: its queue id and copies, if they can be read."""
    if head is None:
        head = log.read(min(head_length, size - log.tell(), 1 << 16))
    queue_id, copies = "", 0
    with contextlib.suppress(struct.error):
        [length] = _U16.unpack_from(head)
        text = head[2 : 2 + length].decode("ascii", "replace")
        queue_id = text if _QUEUE_ID.fullmatch(text) else ""
        [copies] = _U32.unpack_from(head, 2 + length)
    return Unfinished(queue_id, copies)


def _decode_head(head: bytes) -> tuple[str, list[tuple[str, str, bytes]]]:
    """The queue id and each copy's (folder, key, first bytes); _Unreadable for anything
    else (a name with a path in it is never followed)."""
    at = 0

    def take(length: int) -> bytes:
        nonlocal at
        if at + length > len(head):
            raise _Unreadable("a field runs past its record")
        at += length
        return head[at - length : at]

    def number(form: struct.Struct) -> int:
        [value] = form.unpack(take(form.size))
        return int(value)

    queue_id = take(number(_U16)).decode("ascii", "replace")
    if not _QUEUE_ID.fullmatch(queue_id):  # it is logged at start: ours are letters, digits
        queue_id = ""
    copies = []
    for _ in range(min(number(_U32), len(head))):
        folder, key = os.fsdecode(take(number(_U16))), os.fsdecode(take(number(_U16)))
        if not (_plain_name(folder) and _plain_name(key)):
            raise _Unreadable(f"not a plain name: {folder!r}/{key!r}")
        copies.append((folder, key, take(number(_U32))))
    if at != len(head):
        raise _Unreadable("more in a record than it names")
    return queue_id, copies


def _read_range(log: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    """The bytes of the log from `start`, in pieces; OSError if the file is shorter."""
    log.seek(start)
    while length:
        chunk = log.read(min(length, READ_CHUNK))
        if not chunk:
            raise OSError(f"{log.name} ends before its record does")
        length -= len(chunk)
        yield chunk


def _read_body(log: BinaryIO, record: _Record) -> Iterator[bytes]:
    return _read_range(log, record.body_at, record.body_length)


def _holds(path: str, log: BinaryIO, record: _Record, prefix: bytes) -> bool:
    """The file holds exactly the copy's bytes (a crash may leave one empty or short)."""
    try:
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_size != len(prefix) + record.body_length:
                return False
            if file.read(len(prefix)) != prefix:
                return False
            for chunk in _read_body(log, record):
                if file.read(len(chunk)) != chunk:
                    return False
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False
    return True


def _plain_name(name: object) -> TypeGuard[str]:
    """One path component that is neither hidden nor special."""
    return (
        isinstance(name, str)
        and name != ""
        and not name.startswith(".")
        and not any(c in name for c in "/\\\0")
        and os.path.basename(name) == name
    )


# --- fsyncs in threads ----------------------------------------------------------------------


def _sync_lane(files: list[tuple[str, str]], missing: list[tuple[str, str]]) -> None:
    """fsync each (folder, key) in new/, one after another; what is not there, noted."""
    for box, key in files:
        try:
            _fsync_file(os.path.join(box, "new", key))
        except FileNotFoundError:
            missing.append((box, key))


def _fsync_file(path: Path | str) -> None:
    # Opened again: an fsync flushes the file, whichever descriptor asks. Read-only where
    # that is enough (a reader may have made the file read-only); Windows flushes only
    # through a handle that may write.
    flags = os.O_WRONLY if sys.platform == "win32" else os.O_RDONLY
    fd = os.open(path, flags | _BINARY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _run_at_once(jobs: list[Callable[[], None]]) -> list[Exception | None]:
    """Run the jobs (fsyncs) together, each error or None in order. One runs here; more go
    to threads, so that the file system sees them at once and commits them together."""
    return _start_at_once(jobs, None).result()


def _start_at_once(
    jobs: list[Callable[[], None]], on_done: Callable[[], None] | None
) -> Future[list[Exception | None]]:
    """The jobs started together in threads; their errors (or None), in order, once all are
    done, when `on_done` is called. Without `on_done`, a single job runs here, at once."""
    outcome: Future[list[Exception | None]] = Future()
    if on_done is None and len(jobs) <= 1:
        outcome.set_result([_error_of(job) for job in jobs])
        return outcome

    def settle(results: list[Exception | None]) -> None:
        outcome.set_result(results)
        if on_done is not None:
            on_done()

    _in_threads(jobs, settle)
    return outcome


def _in_threads(
    jobs: list[Callable[[], None]], then: Callable[[list[Exception | None]], None]
) -> None:
    """The jobs in the pool's threads; `then(errors)` in the thread that ends the last one
    (never in the caller's, even with no jobs)."""
    if not jobs:
        _sync_pool().submit(then, [])
        return
    results: list[Exception | None] = [None] * len(jobs)
    left = [len(jobs)]
    lock = threading.Lock()

    def run(index: int, job: Callable[[], None]) -> None:
        results[index] = _error_of(job)
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            then(results)

    pool = _sync_pool()
    for index, job in enumerate(jobs):
        pool.submit(run, index, job)


def _error_of(job: Callable[[], None]) -> Exception | None:
    try:
        job()
    except Exception as error:
        return error
    return None


def _sync_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="smtp-tutor-fsync")
        return _pool


def _forget_pool() -> None:
    """A forked child has no threads: the parent's pool is not its own."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


# --- files and directories, durably ------------------------------------------------------------


def _create(path: str | Path, mode: int) -> int:
    return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _BINARY, mode)


def _write_chunks(fd: int, chunks: Iterable[bytes]) -> None:
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]


def _fill_and_close(fd: int, chunks: Iterable[bytes]) -> None:
    """Write the chunks and close (not fsync'd: the log's record stands for them)."""
    try:
        _write_chunks(fd, chunks)
    finally:
        os.close(fd)


def make_durable_dirs(path: Path) -> None:
    """mkdir -p, each directory made here fsync'd into its parent (mode 0700)."""
    missing = []
    current = path
    while not current.is_dir():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
        fsync_directory(directory.parent)


def fsync_directory(path: str | Path) -> None:
    """Make the names in a directory durable (a new link, a removal). Windows cannot open a
    directory to fsync it; NTFS journals its own metadata."""
    if sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- locks that die with their process ---------------------------------------------------------

if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True


def _same_file(fd: int, path: Path) -> bool:
    """The locked descriptor is still the file at `path` (not one removed meanwhile)."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino) and here.st_nlink > 0


def _lock_if_gone(lock_path: Path) -> tuple[bool, int | None]:
    """(True, our locked descriptor) if the lock's owner is gone; (True, None) when there is
    no lock file at all; (False, None) while its server runs."""
    try:
        fd = os.open(lock_path, os.O_RDWR | _BINARY)
    except FileNotFoundError:
        return True, None
    except OSError:
        return False, None
    if _try_lock(fd) and _same_file(fd, lock_path):
        return True, fd
    os.close(fd)
    return False, None


def _drop_lock(fd: int, lock_path: Path) -> None:
    """Remove a lock file we hold, then let go (Windows: only a closed file can go)."""
    try:
        lock_path.unlink()
    except FileNotFoundError:
        os.close(fd)
        return
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            lock_path.unlink()
        return
    os.close(fd)
