"""Several Maildir copies of one message, all or nothing across a crash (docs/server.md,
"Durability: what a 250 guarantees").

The standard library's `Maildir.add` links each copy into new/ as soon as it is written,
so a process killed between two copies leaves the message in one mailbox and not in
another, and a client's retry then duplicates it. Here a delivery goes:

1. a journal naming every copy (folder and unique name) is written and fsync'd, then
   committed by a rename and its directory fsync'd;
2. every copy is written to its folder's tmp/ and fsync'd;
3. all are linked into new/, then each new/ directory is fsync'd;
4. the tmp/ names go, then the journal.

Only then does the caller reply 250. A journal found at the next start is rolled back
(each copy removed from tmp/, new/ or cur/, wherever it got to) unless every copy had
reached new/: no 250 was sent before the copies were all there, so the client still
holds the message and its retry becomes the one delivery. When every copy is there the
delivery is finished instead (the tmp/ names removed): the 250 may have gone out, as the
journal's removal is not fsync'd and can come back after a system crash, and an
acknowledged message is never taken back. A single copy needs no journal: its one link
is all or nothing. Whatever a dead server left in tmp/ (its names carry its token) goes.

Deliveries that end at the same moment are committed together (`deliver_many`): each is
all or nothing on its own, and they share the waits for the disk. The fsyncs of a step are
issued at once, from threads: the file system commits concurrent ones in one journal
transaction and one disk flush (ext4, XFS), where one after another each waits for its
own. On a disk that takes milliseconds per flush, that is most of a delivery's time.

Several servers may share a Maildir root (serve, the sandbox, learn): each holds a lock
on a file of its own for as long as it runs, and only the journals of a server whose lock
is free (its process is gone: the system drops the lock of a killed process) are rolled
back. Reading stays with the standard library's `mailbox`; the layout written here is
the one it writes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import mailbox
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Generic, TypeGuard, TypeVar

STATE_FOLDER = ".smtp-tutor"  # the tutor's own files under the Maildir root
JOURNALS = "deliveries"
UNREADABLE = "unreadable"  # journals that could not be read, kept for a person to look at
JOURNAL_LIMIT = 1 << 20  # far above any real journal (100 copies: about 15 KB)
SYNC_THREADS = 16  # fsyncs issued at once; beyond this they queue for a thread
_BINARY = getattr(os, "O_BINARY", 0)  # Windows would otherwise translate line endings
_sequence = itertools.count()

ChunkSource = Callable[[], Iterable[bytes]]
"""The bytes of one copy, produced afresh each time it is called."""


class JournalError(OSError):
    """This process could not claim a journal folder of its own."""


@dataclass(frozen=True)
class Unfinished:
    """A delivery a dead server left with its journal."""

    queue_id: str
    copies: int  # copies the journal named
    delivered: tuple[str, ...]  # folders where a copy had reached new/ or cur/


@dataclass(frozen=True)
class Recovery:
    """What a start found of servers that are gone, and did about it."""

    rolled_back: tuple[Unfinished, ...] = ()  # some copy had not reached new/: all removed
    finished: tuple[Unfinished, ...] = ()  # every copy had: kept, tmp/ names removed
    set_aside: tuple[Path, ...] = ()  # unreadable journals, moved to deliveries/unreadable/
    stray: int = 0  # files a dead server left in tmp/, removed


@dataclass
class _Copy:
    # Paths are strings: a delivery is on the server's loop before its 250, and building
    # pathlib objects for every name was most of this module's time there.
    box: str  # the Maildir folder
    key: str  # its unique name in tmp/ and new/
    chunks: ChunkSource
    created: bool = False  # tmp/key is ours (never remove a file another process made)
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


class Journals:
    """The journals of one process's deliveries under ROOT/.smtp-tutor/deliveries/."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root / STATE_FOLDER / JOURNALS
        self._lock: int | None = None  # descriptor of our lock file, locked
        self._lock_path: Path | None = None
        self._folder: Path | None = None  # where our journals go

    # --- ownership ------------------------------------------------------------------------

    def claim(self) -> Path:
        """Our journal folder, made (and locked) the first time."""
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
            raise JournalError(f"cannot lock a journal of our own in {self.base}")
        folder = self.base / owner
        try:
            folder.mkdir(mode=0o700)
            fsync_directory(self.base)
        except OSError:
            _drop_lock(fd, lock_path)
            raise
        self._lock, self._lock_path, self._folder = fd, lock_path, folder
        return folder

    def release(self) -> None:
        """Give up our folder (empty between deliveries) and our lock."""
        fd, lock_path, folder = self._lock, self._lock_path, self._folder
        self._lock = self._lock_path = self._folder = None
        if fd is None or lock_path is None or folder is None:
            return
        with contextlib.suppress(OSError):
            folder.rmdir()  # not empty only if a removal failed: the next start rolls back
        _drop_lock(fd, lock_path)

    # --- delivery -------------------------------------------------------------------------

    def deliver(self, queue_id: str, copies: Sequence[tuple[str | Path, ChunkSource]]) -> list[str]:
        """Write each (Maildir folder, bytes) copy, all or nothing; their keys, in order.

        On an error every copy is taken back before it is raised. A process that dies
        (here: a BaseException that is not an Exception) leaves the rest to recovery."""
        [outcome] = self.deliver_many([(queue_id, copies)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def deliver_many(
        self, deliveries: Sequence[tuple[str, Sequence[tuple[str | Path, ChunkSource]]]]
    ) -> list[list[str] | Exception]:
        """Several (queue id, copies) deliveries committed together, each all or nothing as
        `deliver` makes it: for each, its copies' keys, or the error after which all its
        copies were taken back. The others go on."""
        rounds: Rounds[int] = Rounds(self)
        for index, (queue_id, copies) in enumerate(deliveries):
            rounds.add(index, queue_id, copies)
        outcomes: dict[int, list[str] | Exception] = {}
        while rounds.busy:
            outcomes.update(rounds.step())
        return [outcomes[index] for index in range(len(deliveries))]

    # --- recovery -------------------------------------------------------------------------

    def recover(self) -> Recovery:
        """Settle every journal of a server that is gone, then tidy up after it."""
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
        """Settle each journal in a dead server's folder; True when the folder is gone."""
        if not folder.is_dir():
            return True
        done = True
        for path in sorted(folder.iterdir()):
            if not path.name.endswith(".json"):  # a journal never committed: nothing began
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            try:
                queue_id, planned = _read_journal(path, self.root)
            except ValueError:
                try:
                    found.set_aside.append(self._set_aside(path, folder.name))
                except OSError:
                    done = False
                continue
            delivered = tuple(os.path.basename(c.box) for c in planned if _linked(c))
            complete = len(delivered) == len(planned)
            try:
                _settle(planned, complete=complete)
                remove_durably(path)
            except OSError:
                done = False  # the journal stays: the next start tries again
                continue
            outcome = found.finished if complete else found.rolled_back
            outcome.append(Unfinished(queue_id, len(planned), delivered))
        if done:
            try:
                folder.rmdir()
                fsync_directory(self.base)
            except OSError:
                return False
        return done

    def _set_aside(self, path: Path, owner: str) -> Path:
        aside = self.base / UNREADABLE
        aside.mkdir(mode=0o700, exist_ok=True)
        target = aside / f"{owner}-{path.name}"
        os.replace(path, target)
        return target


@dataclass
class _Found:
    rolled_back: list[Unfinished] = field(default_factory=list)
    finished: list[Unfinished] = field(default_factory=list)
    set_aside: list[Path] = field(default_factory=list)
    stray: int = 0


def _settle(planned: list[_Copy], *, complete: bool) -> None:
    """Finish a delivery whose copies are all in new/ (or cur/), else take every copy back."""
    if not complete:
        if not _take_back(planned, only_ours=False):
            raise OSError("a copy could not be removed")
        return
    for copy in planned:
        with contextlib.suppress(FileNotFoundError):
            os.remove(copy.tmp)


def _remove_stray(root: Path, token: str) -> int:
    """Remove what a dead store left in any folder's tmp/ (a copy it never linked)."""
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


# --- the steps of a delivery -----------------------------------------------------------------


@dataclass
class _Plan:
    """One delivery under way: its copies, its journal (several copies only), the steps
    left, and the error that ended it, if one did (its copies are then taken back)."""

    copies: list[_Copy]
    journal: Path | None
    queue_id: str
    steps: list[_Step]
    error: Exception | None = None
    pending: Path | None = None  # the journal, written but not yet committed
    stepped: bool = False  # the current step's work is done; its fsyncs are still to come


Tag = TypeVar("Tag", bound=Hashable)


class Rounds(Generic[Tag]):
    """Deliveries advancing together, one step each per round, each round ending with
    one wait for the disk that all of them share: every fsync a round asks for is issued
    at once, so the file system commits them together.

    A delivery may join at any round: the steps are the same as in `deliver`, in the
    same order, only interleaved with the other deliveries'. One copy takes two rounds
    (written and synced; linked and its new/ synced), several take four (the journal
    first, then committed). A round is `begin()` (each delivery's step done, its fsyncs
    issued) then `end()` (the wait); a delivery added in between has its first step
    done at once (`add(..., now=True)`), while the disk works, and joins the next round.
    Used from one thread at a time (the fsyncs run in threads of their own)."""

    def __init__(self, journals: Journals) -> None:
        self._journals = journals
        self._plans: dict[Tag, _Plan] = {}
        self._round: _Round | None = None  # the round whose fsyncs are under way
        self.waited = 0.0  # seconds the last round waited for the disk

    @property
    def busy(self) -> bool:
        return bool(self._plans)

    def add(
        self,
        tag: Tag,
        queue_id: str,
        copies: Sequence[tuple[str | Path, ChunkSource]],
        *,
        now: bool = False,
    ) -> None:
        """A delivery to start at the next round (tags name them in `end`'s outcomes);
        `now`: take its first step at once (a round's fsyncs are under way)."""
        folder = self._journals.claim()
        token = _token(folder.name)
        planned = [_Copy(os.fspath(box), unique_name(token), chunks) for box, chunks in copies]
        journaled = len(planned) > 1
        plan = _Plan(
            planned,
            folder / f"{queue_id}.json" if journaled else None,
            queue_id,
            list(_JOURNALED if journaled else _SINGLE),
        )
        self._plans[tag] = plan
        if now:
            _take_step(plan)

    def step(self) -> dict[Tag, list[str] | Exception]:
        """One whole round: every delivery one step on, then the wait for the disk; the
        deliveries that ended, with their keys (stored for good) or their error (all
        taken back)."""
        self.begin()
        return self.end()

    def begin(self, on_synced: Callable[[], None] | None = None) -> None:
        """Take every delivery one step on and issue the round's fsyncs. `on_synced` is
        called (from another thread) when they are done; without it, one fsync runs here."""
        assert self._round is None, "a round is under way"
        syncs: dict[tuple[str, bool], list[_Plan]] = {}  # (path, is a directory) -> plans
        for plan in self._plans.values():
            _take_step(plan)
            if plan.error is None:
                for target in dict.fromkeys(plan.steps[0][1](plan)):
                    syncs.setdefault(target, []).append(plan)
        jobs: list[Callable[[], None]] = [
            partial(fsync_directory if is_dir else _fsync_file, path) for path, is_dir in syncs
        ]
        self._round = _Round(list(self._plans.values()), syncs, time.perf_counter())
        self._round.outcome = _start_at_once(jobs, on_synced)

    def end(self) -> dict[Tag, list[str] | Exception]:
        """Wait for the round's fsyncs; the deliveries that ended with it."""
        current, self._round = self._round, None
        assert current is not None, "no round under way"
        failed = current.outcome.result()
        self.waited = time.perf_counter() - current.began
        for plans, error in zip(current.syncs.values(), failed, strict=True):
            for plan in plans:
                if error is not None and plan.error is None:
                    _abandon(plan, error)
        in_round = {id(plan) for plan in current.plans}
        ended: dict[Tag, list[str] | Exception] = {}
        for tag, plan in list(self._plans.items()):
            if id(plan) not in in_round:
                continue  # joined while the disk worked: its round is the next one
            if plan.error is None:
                plan.steps.pop(0)
                plan.stepped = False
                if not plan.steps:
                    _attempt(plan, _finish)
            if plan.error is not None or not plan.steps:
                ended[tag] = plan.error or [copy.key for copy in plan.copies]
                del self._plans[tag]
        return ended


@dataclass
class _Round:
    plans: list[_Plan]
    syncs: dict[tuple[str, bool], list[_Plan]]
    began: float
    outcome: Future[list[Exception | None]] = field(init=False)


def _take_step(plan: _Plan) -> None:
    """The work of a delivery's current step, once (a step taken early is not taken again)."""
    if plan.error is None and not plan.stepped:
        plan.stepped = True
        _attempt(plan, plan.steps[0][0])


def _attempt(plan: _Plan, step: Callable[[_Plan], None]) -> None:
    """One step of a delivery; on an error, every copy taken back and the journal removed."""
    try:
        step(plan)
    except Exception as error:
        _abandon(plan, error)


def _abandon(plan: _Plan, error: Exception) -> None:
    plan.error = error
    removed = _take_back(plan.copies, only_ours=True)
    if plan.pending is not None:  # never committed: recovery would ignore it
        with contextlib.suppress(OSError):
            plan.pending.unlink()
    if plan.journal is not None and removed:  # else it stays, for the next start
        with contextlib.suppress(OSError):
            remove_durably(plan.journal)


def _write_journal(plan: _Plan) -> None:
    """The journal, under a name recovery ignores until it is committed (not fsync'd yet)."""
    assert plan.journal is not None
    record = {
        "queue_id": plan.queue_id,
        "copies": [{"folder": os.path.basename(c.box), "key": c.key} for c in plan.copies],
    }
    pending = plan.journal.with_name(f".{plan.journal.name}.tmp")
    fd = _create(pending, 0o600)
    plan.pending = pending
    _fill_and_close(fd, [json.dumps(record).encode("ascii")])


def _write_copies(plan: _Plan) -> None:
    """Each copy in its folder's tmp/ (not fsync'd yet)."""
    for copy in plan.copies:
        fd = _create(copy.tmp, 0o666)  # the standard library's mode, less the umask
        copy.created = True
        _fill_and_close(fd, copy.chunks())


def _commit_journal(plan: _Plan) -> None:
    """Committed by a rename once its bytes are on disk: a journal is whole or absent."""
    assert plan.pending is not None and plan.journal is not None
    os.replace(plan.pending, plan.journal)
    plan.pending = None


def _link(plan: _Plan) -> None:
    for copy in plan.copies:
        try:
            os.link(copy.tmp, copy.new)
        except PermissionError:  # a file system without hard links: as the stdlib does
            os.rename(copy.tmp, copy.new)


def _finish(plan: _Plan) -> None:
    for copy in plan.copies:
        with contextlib.suppress(FileNotFoundError):
            os.remove(copy.tmp)
    if plan.journal is not None:
        plan.journal.unlink()  # not fsync'd: should it come back, every copy is there


_Target = tuple[str, bool]  # a path to fsync, and whether it is a directory
_Step = tuple[Callable[[_Plan], None], Callable[[_Plan], list[_Target]]]  # work, then syncs


def _pending_journal(plan: _Plan) -> list[_Target]:
    return [(os.fspath(plan.pending), False)] if plan.pending else []


def _journal_folder(plan: _Plan) -> list[_Target]:
    return [(os.fspath(plan.journal.parent), True)] if plan.journal else []


def _copies_written(plan: _Plan) -> list[_Target]:
    return [(copy.tmp, False) for copy in plan.copies]


def _new_folders(plan: _Plan) -> list[_Target]:
    return [(os.path.dirname(copy.new), True) for copy in plan.copies]


# A delivery's steps, each followed by the fsyncs it needs before the next may begin.
_SINGLE: tuple[_Step, ...] = ((_write_copies, _copies_written), (_link, _new_folders))
_JOURNALED: tuple[_Step, ...] = (
    (_write_journal, _pending_journal),
    (_commit_journal, _journal_folder),
    *_SINGLE,
)


def _fsync_file(path: Path | str) -> None:
    # Opened again for writing: an fsync flushes the file, whichever descriptor asks, and
    # a batch then holds no descriptor open between writing and syncing. (Windows
    # flushes only through a handle that may write.)
    fd = os.open(path, os.O_WRONLY | _BINARY)
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
    if on_done is not None:
        outcome.add_done_callback(lambda _: on_done())
    if not jobs:
        outcome.set_result([])
        return outcome
    results: list[Exception | None] = [None] * len(jobs)
    left = [len(jobs)]
    lock = threading.Lock()

    def run(index: int, job: Callable[[], None]) -> None:
        results[index] = _error_of(job)
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            outcome.set_result(results)

    pool = _sync_pool()
    for index, job in enumerate(jobs):
        pool.submit(run, index, job)
    return outcome


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


def _linked(copy: _Copy) -> bool:
    return os.path.exists(copy.new) or bool(_in_cur(copy))


def _in_cur(copy: _Copy) -> list[str]:
    """The copy in cur/, where a mail reader moves what it has seen (KEY:2,FLAGS)."""
    colon = mailbox.Maildir.colon
    try:
        with os.scandir(os.path.join(copy.box, "cur")) as entries:
            return [
                e.path for e in entries if e.name == copy.key or e.name.startswith(copy.key + colon)
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _take_back(planned: list[_Copy], *, only_ours: bool) -> bool:
    """Remove every copy, wherever it got to, durably; False if any removal failed."""
    ok = True
    touched: set[str] = set()
    for copy in planned:
        paths = [copy.new, *_in_cur(copy)]
        if copy.created or not only_ours:
            paths.append(copy.tmp)
        for path in paths:
            try:
                os.remove(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError:
                ok = False
                continue
            touched.add(os.path.dirname(path))
    for directory in touched:
        try:
            fsync_directory(directory)
        except OSError:
            ok = False
    return ok


def _read_journal(path: Path, root: Path) -> tuple[str, list[_Copy]]:
    """A journal's queue id and copies; ValueError for anything that is not one of ours
    (a name with a path in it is never followed)."""
    try:
        with path.open("rb") as file:
            raw = file.read(JOURNAL_LIMIT + 1)
        if len(raw) > JOURNAL_LIMIT:
            raise ValueError("too large")
        record = json.loads(raw)
    except (OSError, UnicodeDecodeError, RecursionError) as error:
        raise ValueError(str(error)) from error
    if not isinstance(record, dict):
        raise ValueError("not an object")
    queue_id, copies = record.get("queue_id"), record.get("copies")
    if not isinstance(queue_id, str) or not isinstance(copies, list):
        raise ValueError("no queue_id or copies")
    planned = []
    for item in copies:
        if not isinstance(item, dict):
            raise ValueError("a copy that is not an object")
        folder, key = item.get("folder"), item.get("key")
        if not (_plain_name(folder) and _plain_name(key)):
            raise ValueError(f"not a plain name: {folder!r}/{key!r}")
        planned.append(_Copy(os.path.join(root, folder), key, lambda: ()))
    return queue_id, planned


def _plain_name(name: object) -> TypeGuard[str]:
    """One path component that is neither hidden nor special."""
    return (
        isinstance(name, str)
        and name != ""
        and not name.startswith(".")
        and not any(c in name for c in "/\\\0")
        and os.path.basename(name) == name
    )


# --- files and directories, durably ------------------------------------------------------------


def _create(path: str | Path, mode: int) -> int:
    return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _BINARY, mode)


def _fill_and_close(fd: int, chunks: Iterable[bytes]) -> None:
    """Write the chunks and close: fsync'd later, with the rest of the batch."""
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def remove_durably(path: Path) -> None:
    path.unlink()
    fsync_directory(path.parent)


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
