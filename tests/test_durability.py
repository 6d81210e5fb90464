"""Durability: the copies of a message are all or nothing across a crash, and what a dead
server left in its delivery log is replayed at the next start: a complete record brings
every copy back, a torn one (never flushed, so never acknowledged) is dropped with its
copies (docs/server.md, "Durability: what a 250 guarantees").

The fast tier stops a delivery dead at a chosen step in this process (an exception that
no handler catches, then the lock's descriptor closed, as the system closes it for a
process that dies) and starts the next store or server on the same Maildir root; it
also writes hostile log files by hand, and watches the checkpoint's fsyncs. The slow
tier does it to a real `serve` with a real SIGKILL to its server process (the child that
delivers): the child stops itself (SIGSTOP) at the step the test chose, spotted by a
sitecustomize module the test puts on PYTHONPATH (an audit hook, or a wrapper around an
os function; the product has no switch for tests), and the test kills it; or, with no
hook at all, the test stops it from outside when it sees the log or a copy appear while
a large message is written. serve then says its server died and exits 70. Every case
ends with a restart and the same question: is the message in all three mailboxes or in
none, and can the standard library's `mailbox` and `smtp-tutor mailbox` read what is
there?
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import mailbox
import os
import re
import signal
import struct
import sys
import threading
import time
import tracemalloc
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.serve_process import ServeProcess
from tests.support import RawClient, run_cli, server_processes
from tutor.maildir import durable
from tutor.maildir.store import CHUNK, Delivery, MaildirStore, StorageError, lf_endings
from tutor.server.persona import Persona
from tutor.server.runner import TeachingServer

HOST = "mx.tutor.test"
FOLDERS = ("you", "alice", "bob")
RECIPIENTS = [(f"{name}@tutor.test", name) for name in FOLDERS]
CONTENT = (
    b"From: tester@client.example\r\nSubject: three copies\r\n\r\nOne message, three boxes.\r\n"
)
STORED_ID = re.compile(rb"^\tby mx\.tutor\.test with \S+ id (\S+)$", re.M)
INFO = "!" if sys.platform == "win32" else ":"  # KEY:2,S once a mail reader has seen it
WAIT = 30.0


class Crash(BaseException):
    """The process dying at this point: nothing after it runs, no clean-up."""


# --- helpers ------------------------------------------------------------------------------------


def delivery(queue_id: str, content: Any = CONTENT) -> Delivery:
    return Delivery(
        queue_id=queue_id,
        sender="tester@client.example",
        helo="client.example",
        client_address="127.0.0.1",
        protocol="ESMTP",
        content=content,
        received_at=time.time(),
    )


def die(store: MaildirStore) -> None:
    """What the system does for a process that dies: its descriptors close, so its lock
    goes, and its threads stop (no checkpoint runs); its files stay as they were."""
    log = store._log
    if log._timer is not None:
        log._timer.cancel()
    log._current = None
    fd = log._lock
    assert fd is not None, "the store never claimed its log folder"
    os.close(fd)
    log._lock = None


def copies_by_id(root: Path) -> dict[str, list[str]]:
    """The folders holding each queue id, from new/ and cur/ (what a mail reader sees)."""
    found: dict[str, list[str]] = {}
    for path in sorted([*root.glob("*/new/*"), *root.glob("*/cur/*")]):
        match = STORED_ID.search(path.read_bytes())
        assert match, f"{path} has no Received header of ours"
        found.setdefault(match.group(1).decode(), []).append(path.parent.parent.name)
    return found


def segments(root: Path) -> list[Path]:
    return sorted(root.glob(".smtp-tutor/deliveries/*/*.log"))


def leftovers(root: Path) -> list[Path]:
    return sorted(root.glob("*/tmp/*"))


def read_with_stdlib(root: Path, folder: str) -> list[bytes]:
    """Every message of a folder as the standard library's Maildir reads it."""
    box = mailbox.Maildir(root / folder, factory=None, create=False)
    return [box.get_bytes(key) for key in box.iterkeys()]


def assert_readable(root: Path, expected: dict[str, int]) -> None:
    """The standard library and `smtp-tutor mailbox` both read each folder, and count the
    same messages."""
    for folder, count in expected.items():
        messages = read_with_stdlib(root, folder)
        assert len(messages) == count, folder
        assert all(m.endswith(CONTENT.replace(b"\r\n", b"\n")) for m in messages)
    listing = run_cli("mailbox", "--maildir", str(root), "--plain")
    assert listing.returncode == 0, listing.stderr
    for folder, count in expected.items():
        assert len(re.findall(rf"^  {folder}/\d+ ", listing.stdout, re.M)) == count, folder
    assert ".smtp-tutor" not in listing.stdout and "smtp-tutor's" not in listing.stdout


class StopsAtRead(io.BytesIO):
    """Message content in a file that makes the process die when its `at`-th reading
    starts (each copy reads it from the start, then the log's record does)."""

    def __init__(self, data: bytes, at: int) -> None:
        super().__init__(data)
        self.at = at
        self.starts = 0

    def seek(self, offset: int, whence: int = 0, /) -> int:
        if (offset, whence) == (0, 0):
            self.starts += 1
            if self.starts == self.at:
                raise Crash
        return super().seek(offset, whence)


def crash_on_call(monkeypatch: pytest.MonkeyPatch, name: str, at: int) -> None:
    """os.NAME makes the process die on its `at`-th call."""
    real = getattr(os, name)
    calls = 0

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == at:
            raise Crash
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, counted)


def crash_after_the_renames(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every copy in new/, the delivery about to end (and its 250 to go)."""

    def settled(*args: Any) -> None:
        raise Crash

    monkeypatch.setattr(durable.DeliveryLog, "settled", settled)


def half_delivered(
    root: Path, monkeypatch: pytest.MonkeyPatch, step: str, recipients: Any = RECIPIENTS
) -> MaildirStore:
    """A store that delivered EARLIER, then died delivering HALF at `step` (its lock
    still held)."""
    store = MaildirStore(root, HOST)
    store.recover()
    store.deliver(delivery("EARLIER"), recipients)  # its segment is open and on disk now
    content: Any = CONTENT
    if step == "writing the last copy":
        content = StopsAtRead(CONTENT, at=len(recipients))
    elif step == "writing the record":
        content = StopsAtRead(CONTENT, at=len(recipients) + 1)
    elif step == "record written, before the flush":
        crash_on_call(monkeypatch, "fdatasync" if hasattr(os, "fdatasync") else "fsync", at=1)
    elif step == "flushed, before the first rename":
        crash_on_call(monkeypatch, "rename", at=1)
    elif step == "flushed, before the third rename":
        crash_on_call(monkeypatch, "rename", at=3)
    elif step == "all renamed, before the 250":
        crash_after_the_renames(monkeypatch)
    with pytest.raises(Crash):
        store.deliver(delivery("HALF", content), recipients)
    monkeypatch.undo()
    return store


# --- fast: recovery in this process -----------------------------------------------------------


@pytest.mark.parametrize("step", ["writing the last copy", "writing the record"])
def test_a_delivery_whose_record_never_reached_the_log_is_dropped_at_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """No record, or a torn one: the log was never flushed, so no 250 went. Its copies in
    tmp/ (named with the dead store's token) are removed; the delivery before it stays."""
    root = tmp_path / "Maildir"
    dead = half_delivered(root, monkeypatch, step)
    assert len(leftovers(root)) == 3, "the copies stay in tmp/ when the process dies"
    assert copies_by_id(root) == {"EARLIER": sorted(FOLDERS)}
    die(dead)

    recovery = MaildirStore(root, HOST).recover()

    if step == "writing the record":  # a torn record: its header and names could be read
        assert recovery.rolled_back == (durable.Unfinished("HALF", 3),)
    else:
        assert recovery.rolled_back == ()
    (earlier,) = recovery.finished
    assert (earlier.queue_id, earlier.restored) == ("EARLIER", ())
    assert recovery.stray == 3
    assert copies_by_id(root) == {"EARLIER": sorted(FOLDERS)}
    assert leftovers(root) == [] and segments(root) == []
    assert_readable(root, dict.fromkeys(FOLDERS, 1))


STEPS = {  # where the copies are when the process dies: (in tmp/, in new/)
    "record written, before the flush": (3, 0),
    "flushed, before the first rename": (3, 0),
    "flushed, before the third rename": (1, 2),
    "all renamed, before the 250": (0, 3),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_delivery_whose_record_is_complete_comes_back_whole_at_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """The record is the commit: complete, it rebuilds every copy that had not reached
    new/ (the 250 may have gone out once the log was flushed; an acknowledged message is
    never taken back)."""
    root = tmp_path / "Maildir"
    dead = half_delivered(root, monkeypatch, step)
    in_tmp, in_new = STEPS[step]
    assert len(leftovers(root)) == in_tmp
    assert len(copies_by_id(root).get("HALF", [])) == in_new
    assert len(segments(root)) == 1
    die(dead)

    recovery = MaildirStore(root, HOST).recover()

    assert recovery.rolled_back == ()
    by_id = {done.queue_id: done for done in recovery.finished}
    assert by_id["EARLIER"].restored == ()
    assert by_id["HALF"].copies == 3
    assert len(by_id["HALF"].restored) == 3 - in_new
    assert copies_by_id(root) == {"EARLIER": sorted(FOLDERS), "HALF": sorted(FOLDERS)}
    assert leftovers(root) == [] and segments(root) == []
    assert_readable(root, dict.fromkeys(FOLDERS, 2))


def test_a_copy_left_empty_or_short_by_a_crash_is_written_again_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copies in new/ are not fsync'd before the 250: after a crash of the machine one
    may be there empty or cut short. The record holds its bytes: it is rewritten."""
    root = tmp_path / "Maildir"
    content = b"Subject: long\r\n\r\n" + b"a line of the message\r\n" * 5_000
    store = MaildirStore(root, HOST)
    store.recover()
    copies = store.deliver(delivery("WHOLE", content), RECIPIENTS)
    paths = {c.folder: root / c.folder / "new" / c.key for c in copies}
    originals = {folder: path.read_bytes() for folder, path in paths.items()}
    paths["you"].write_bytes(b"")  # as a crash leaves a file whose data never reached disk
    with paths["bob"].open("r+b") as file:
        file.truncate(len(originals["bob"]) // 2)
    die(store)

    (done,) = MaildirStore(root, HOST).recover().finished

    assert (done.queue_id, done.restored) == ("WHOLE", ("you", "bob"))
    assert {folder: path.read_bytes() for folder, path in paths.items()} == originals
    assert leftovers(root) == [] and segments(root) == []


def test_a_copy_a_mail_reader_moved_to_cur_is_recognized(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader moves what it has seen to cur/ (KEY:2,FLAGS): recovery finds it there and
    does not put a second copy into new/; one left short there is rewritten in place."""
    root = tmp_path / "Maildir"
    dead = half_delivered(root, monkeypatch, "all renamed, before the 250")
    for folder in ("alice", "bob"):
        (path,) = [p for p in (root / folder / "new").iterdir() if b"id HALF" in p.read_bytes()]
        path.rename(root / folder / "cur" / f"{path.name}{INFO}2,S")
    (bob_seen,) = (root / "bob" / "cur").iterdir()
    whole = bob_seen.read_bytes()
    bob_seen.write_bytes(whole[:10])
    die(dead)

    finished = {done.queue_id: done for done in MaildirStore(root, HOST).recover().finished}

    assert finished["HALF"].restored == ("bob",)
    assert bob_seen.read_bytes() == whole, "rewritten where the reader put it"
    (alice_seen,) = (root / "alice" / "cur").iterdir()
    assert alice_seen.name.endswith(f"{INFO}2,S"), "left where the reader put it"
    assert copies_by_id(root) == {"EARLIER": sorted(FOLDERS), "HALF": sorted(FOLDERS)}
    assert_readable(root, dict.fromkeys(FOLDERS, 2))


def test_what_a_dead_store_left_in_tmp_goes_and_a_running_stores_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead store's copies in tmp/ carry its token and go; a running store's never."""
    root = tmp_path / "Maildir"
    dead = half_delivered(root, monkeypatch, "writing the last copy", RECIPIENTS[:1])
    assert len(leftovers(root)) == 1
    die(dead)

    running = MaildirStore(root, HOST)
    recovery = running.recover()

    assert recovery.stray == 1 and recovery.rolled_back == ()
    assert leftovers(root) == []
    writing = root / "you" / "tmp" / durable.unique_name(running._log.token())  # being written
    writing.write_bytes(b"in progress\n")
    assert MaildirStore(root, HOST).recover().stray == 0
    assert leftovers(root) == [writing], "a running store's file is never removed"


def test_the_client_retry_after_a_dropped_delivery_is_the_one_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a real server: it drops the torn record at start, then the retry lands once
    per box."""
    root = tmp_path / "Maildir"
    die(half_delivered(root, monkeypatch, "writing the record"))

    with TeachingServer(root, Persona(tls=False)) as server:
        assert [u.queue_id for u in server.recovery.rolled_back] == ["HALF"]
        with RawClient(server.address) as client:
            assert client.code("EHLO client.example").startswith("250 ")
            assert client.code("MAIL FROM:<tester@client.example>").startswith("250 ")
            for address, _ in RECIPIENTS:
                assert client.code(f"RCPT TO:<{address}>").startswith("250 ")
            assert client.code("DATA").startswith("354 ")
            final = client.code(CONTENT + b".")
        queue_id = final.rpartition("id=")[2]
        assert final.startswith("250 2.0.0")
    assert copies_by_id(root) == {"EARLIER": sorted(FOLDERS), queue_id: sorted(FOLDERS)}
    assert_readable(root, dict.fromkeys(FOLDERS, 2))
    assert segments(root) == [] and leftovers(root) == [], "a clean stop leaves no log"


def test_a_running_servers_log_is_never_touched_by_another_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Servers share a Maildir root (serve, the sandbox, learn): a start replays only what
    a server that is gone left, never the log of one still running."""
    root = tmp_path / "Maildir"
    running = half_delivered(root, monkeypatch, "flushed, before the first rename")
    before = segments(root)[0].read_bytes()

    recovery = MaildirStore(root, HOST).recover()

    assert (recovery.finished, recovery.rolled_back, recovery.stray) == ((), (), 0)
    assert segments(root)[0].read_bytes() == before
    assert len(leftovers(root)) == 3
    die(running)
    finished = MaildirStore(root, HOST).recover().finished
    assert sorted(done.queue_id for done in finished) == ["EARLIER", "HALF"]
    assert copies_by_id(root)["HALF"] == sorted(FOLDERS)


def test_a_lock_file_that_is_gone_counts_as_a_dead_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "Maildir"
    dead = half_delivered(root, monkeypatch, "flushed, before the first rename")
    die(dead)
    (root / ".smtp-tutor/deliveries" / f"{segments(root)[0].parent.name}.lock").unlink()

    finished = MaildirStore(root, HOST).recover().finished
    assert sorted(done.queue_id for done in finished) == ["EARLIER", "HALF"]
    assert copies_by_id(root)["HALF"] == sorted(FOLDERS)


# --- hostile log files ---------------------------------------------------------------------------


def record(
    queue_id: bytes, copies: list[tuple[bytes, bytes, bytes]], body: bytes, *, kind: int = 1
) -> bytes:
    """A log record as the store writes one (durable.py's layout), names as given."""
    head = struct.pack("<H", len(queue_id)) + queue_id + struct.pack("<I", len(copies))
    for folder, key, prefix in copies:
        head += struct.pack("<H", len(folder)) + folder + struct.pack("<H", len(key)) + key
        head += struct.pack("<I", len(prefix)) + prefix
    return sealed(head, body, kind)


def sealed(head: bytes, body: bytes, kind: int = 1) -> bytes:
    fields = struct.pack("<BBHIQ", 1, kind, 0, len(head), len(body))
    crc = zlib.crc32(fields, zlib.crc32(body, zlib.crc32(head)))
    return b"STDL" + fields + struct.pack("<I", crc) + head + body


def test_unreadable_logs_are_set_aside_and_never_followed_out_of_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log is a file the tutor reads: any bytes in it give no internal error, no length
    in it is trusted beyond the file's size, and a name in it that is not a plain file
    name is never followed. A segment that holds one is set aside whole."""
    root = tmp_path / "Maildir"
    victim = tmp_path / "victim"
    victim.write_bytes(b"not the tutor's to touch\n")
    outside_before = outside(tmp_path, root)
    dead = half_delivered(root, monkeypatch, "flushed, before the first rename")
    keep = root / "you" / "new" / "keep"
    keep.write_bytes(b"a message of someone else\n")
    die(dead)
    folder = segments(root)[0].parent
    body = b"Subject: hostile\n\nbody\n"
    broken = {
        "000101.log": b"this is no log at all\n" * 10,
        "000102.log": b"STDL\x09" + bytes(40),  # a version this one cannot read
        "000103.log": record(b"ESCAPE", [(b"..", b"victim", b"")], body),
        "000104.log": record(b"HIDDEN", [(b"you", b"../new/keep", b"")], body),
        "000105.log": record(b"SLASH", [(b"you/new", b"keep", b"")], body),
        "000106.log": record(b"NUL", [(b"you", b"k\x00ey", b"")], body),
        "000107.log": record(b"DOT", [(b".smtp-tutor", b"key", b"")], body),
        "000108.log": sealed(struct.pack("<H", 1) + b"X" + struct.pack("<I", 1 << 31), b""),
        "000109.log": sealed(b"\x00\x00\x00\x00\x00\x00" + b"trailing bytes", b""),
        "000110.log": record(b"ODD", [(b"you", b"key", b"")], b"", kind=9),
        "notes.txt": b"not a segment\n",
    }
    for name, data in broken.items():
        (folder / name).write_bytes(data)
    torn = {  # lengths beyond the file: a tail that never reached the disk, dropped
        "000111.log": b"STDL" + struct.pack("<BBHIQI", 1, 1, 0, 1 << 32 - 1, 1 << 63, 0),
        "000112.log": b"STDL" + struct.pack("<BBHIQI", 1, 1, 0, 6, 1 << 40, 0) + b"\x02\x00AB",
        "000113.log": bytes(4096),  # zeros written ahead of records that never came
    }
    for name, data in torn.items():
        (folder / name).write_bytes(data)

    with TeachingServer(root, Persona(tls=False)) as server:
        recovery = server.recovery
    assert sorted(done.queue_id for done in recovery.finished) == ["EARLIER", "HALF"]
    assert sorted(p.name for p in recovery.set_aside) == sorted(
        f"{folder.name}-{name}" for name in broken
    )
    assert all(p.parent.name == "unreadable" for p in recovery.set_aside)
    assert [u.queue_id for u in recovery.rolled_back] == ["", "AB"]
    assert victim.read_bytes() == b"not the tutor's to touch\n"
    assert keep.read_bytes() == b"a message of someone else\n"
    assert outside(tmp_path, root) == outside_before
    keep.unlink()
    assert copies_by_id(root) == {"EARLIER": sorted(FOLDERS), "HALF": sorted(FOLDERS)}
    assert not folder.exists(), "the dead server's folder is gone once it is empty"


def outside(tmp_path: Path, root: Path) -> list[Path]:
    """Everything under tmp_path but the Maildir root."""
    return sorted(p for p in tmp_path.rglob("*") if p != root and root not in p.parents)


def test_a_withdrawn_delivery_is_not_rebuilt(tmp_path: Path) -> None:
    """A storage error after the flush (bob's new/ is a file) takes every copy back and
    writes a withdrawal to the log: a crash before the checkpoint rebuilds nothing."""
    root = tmp_path / "Maildir"
    store = MaildirStore(root, HOST)
    store.recover()
    store.folder("bob")
    (root / "bob" / "new").rmdir()
    (root / "bob" / "new").write_text("a file where bob's new/ should be\n")
    with pytest.raises(StorageError):
        store.deliver(delivery("FAILS"), RECIPIENTS)
    assert copies_by_id(root) == {} and leftovers(root) == []
    die(store)
    (root / "bob" / "new").unlink()
    (root / "bob" / "new").mkdir()

    recovery = MaildirStore(root, HOST).recover()

    assert (recovery.finished, recovery.rolled_back) == ((), ())
    assert copies_by_id(root) == {} and leftovers(root) == [] and segments(root) == []


def test_a_storage_error_takes_every_copy_back_and_a_clean_close_leaves_no_log(
    tmp_path: Path,
) -> None:
    root = tmp_path / "Maildir"
    store = MaildirStore(root, HOST)
    store.recover()
    store.deliver(delivery("BEFORE"), RECIPIENTS)
    store.folder("bob")
    (root / "bob" / "new").rename(root / "bob" / "new-away")
    (root / "bob" / "new").write_text("a file where bob's new/ should be\n")
    with pytest.raises(StorageError):
        store.deliver(delivery("FAILS"), RECIPIENTS)
    assert sorted(copies_by_id(root)) == ["BEFORE"]
    assert leftovers(root) == []
    (root / "bob" / "new").unlink()
    (root / "bob" / "new-away").rename(root / "bob" / "new")
    store.close()
    assert list((root / ".smtp-tutor/deliveries").iterdir()) == []
    assert copies_by_id(root) == {"BEFORE": sorted(FOLDERS)}


# --- the log itself -------------------------------------------------------------------------------


def test_copies_of_one_message_share_its_bytes_in_the_log_and_in_memory(tmp_path: Path) -> None:
    """A 16 MiB message (from a file, as the server spools one) to five mailboxes: the
    record holds it once (not once per copy), and it is never held whole in memory."""
    root = tmp_path / "Maildir"
    folders = [f"box{n}" for n in range(5)]
    content = b"Subject: large\r\n\r\n" + (b"y" * 1022 + b"\r\n") * (16 * 1024)
    store = MaildirStore(root, HOST)
    store.recover()
    tracemalloc.start()
    try:
        copies = store.deliver(
            delivery("LARGE", io.BytesIO(content)), [(f"{f}@tutor.test", f) for f in folders]
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (segment,) = segments(root)
    body = len(content.replace(b"\r\n", b"\n"))
    assert body < segment.stat().st_size < body + 64 * 1024, "the body once, not five times"
    assert peak < 6 * CHUNK, f"peak {peak} bytes"
    stored = [(root / c.folder / "new" / c.key).read_bytes() for c in copies]
    assert all(s.endswith(content.replace(b"\r\n", b"\n")) for s in stored)
    store.close()
    assert segments(root) == []


class SyncLog:
    """Every fsync (by path), removal and rename in this process, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str]] = []
        self.paths: dict[int, str] = {}
        self.lock = threading.Lock()
        real_open, real_fsync, real_remove = os.open, os.fsync, os.remove

        def opened(path: Any, *args: Any, **kwargs: Any) -> int:
            fd = real_open(path, *args, **kwargs)
            self.paths[fd] = os.fspath(path)
            return fd

        def fsync(fd: int) -> None:
            real_fsync(fd)
            with self.lock:
                self.events.append(("fsync", self.paths.get(fd, "?")))

        def remove(path: Any, *args: Any, **kwargs: Any) -> None:
            real_remove(path, *args, **kwargs)
            with self.lock:
                self.events.append(("remove", os.fspath(path)))

        monkeypatch.setattr(os, "open", opened)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "remove", remove)

    def when(self, event: str, path: Path | str) -> int:
        """The index of the first such event."""
        return self.events.index((event, os.fspath(path)))

    def after(self, index: int, event: str, path: Path | str) -> bool:
        """Such an event came after the one at `index`."""
        return (event, os.fspath(path)) in self.events[index + 1 :]


def checkpointed(store: MaildirStore, segment: Path) -> bool:
    return not segment.exists() and store._log._checkpointing is None


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.01)


def test_a_checkpoint_removes_a_segment_only_once_its_files_are_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full segment is checkpointed in the background while deliveries go on into the
    next one: each file it moved into new/ fsync'd (one a reader moved to cur/ where it
    is now, one a reader deleted skipped), then each folder, and only then its removal."""
    root = tmp_path / "Maildir"
    monkeypatch.setattr(durable, "SEGMENT_LIMIT", 1)  # every record fills a segment
    store = MaildirStore(root, HOST)
    store.recover()
    first = store.deliver(delivery("FIRST"), RECIPIENTS)
    (old,) = segments(root)
    seen = root / "alice" / "cur" / f"{first[1].key}{INFO}2,S"
    (root / "alice" / "new" / first[1].key).rename(seen)
    (root / "bob" / "new" / first[2].key).unlink()
    log = SyncLog(monkeypatch)

    store.deliver(delivery("SECOND"), RECIPIENTS)  # into a new segment: the old one retires
    wait_until(lambda: checkpointed(store, old), "the checkpoint")

    removed = log.when("remove", old)
    assert log.when("fsync", root / "you" / "new" / first[0].key) < removed
    assert log.when("fsync", seen) < removed
    assert log.when("fsync", root / "you" / "new") < removed
    assert log.when("fsync", root / "alice" / "cur") < removed
    assert ("fsync", os.fspath(root / "bob" / "new" / first[2].key)) not in log.events
    assert log.after(removed, "fsync", old.parent), "the removal made durable"
    assert len(segments(root)) == 1
    store.close()
    assert segments(root) == []


def test_a_segment_is_checkpointed_when_it_is_old_even_with_no_more_deliveries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "Maildir"
    monkeypatch.setattr(durable, "SEGMENT_AGE", 0.05)
    store = MaildirStore(root, HOST)
    store.recover()
    log = SyncLog(monkeypatch)
    copies = store.deliver(delivery("ALONE"), RECIPIENTS)
    (old,) = segments(root)
    wait_until(lambda: checkpointed(store, old), "the timer's checkpoint")
    removed = log.when("remove", old)
    for copy in copies:
        assert log.when("fsync", root / copy.folder / "new" / copy.key) < removed
    store.close()


def test_a_clean_close_waits_for_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "Maildir"
    store = MaildirStore(root, HOST)
    store.recover()
    stored = [store.deliver(delivery(f"Q{n}"), RECIPIENTS) for n in range(3)]
    (segment,) = segments(root)
    log = SyncLog(monkeypatch)

    store.close()

    removed = log.when("remove", segment)
    for copies in stored:
        for copy in copies:
            assert log.when("fsync", root / copy.folder / "new" / copy.key) < removed
    assert list((root / ".smtp-tutor/deliveries").iterdir()) == []
    assert MaildirStore(root, HOST).recover() == durable.Recovery()


def test_content_in_a_file_is_stored_as_content_in_memory_is(tmp_path: Path) -> None:
    """Message data may reach the store as a file (spooled past about 1 MiB): it is copied
    in chunks, and a CRLF split between two chunks still becomes one LF."""
    head = b"Subject: big\r\n\r\n"
    line = b"y" * 98 + b"\r\n"
    first = head + line * ((CHUNK - len(head)) // len(line))
    first += b"z" * (CHUNK - 1 - len(first)) + b"\r\n"  # this CR ends the first chunk
    content = first + line * 15_000  # 2.5 MB: three chunks
    assert content[CHUNK - 1 : CHUNK + 1] == b"\r\n"
    store = MaildirStore(tmp_path / "Maildir", HOST)
    in_memory = delivery("SAME", content)
    in_a_file = dataclasses.replace(in_memory, content=io.BytesIO(content))
    (from_memory,) = store.deliver(in_memory, RECIPIENTS[:1])
    (from_a_file,) = store.deliver(in_a_file, RECIPIENTS[:1])
    store.close()
    memory_copy = (tmp_path / "Maildir/you/new" / from_memory.key).read_bytes()
    file_copy = (tmp_path / "Maildir/you/new" / from_a_file.key).read_bytes()
    assert memory_copy == file_copy
    assert file_copy.endswith(content.replace(b"\r\n", b"\n"))


@given(
    st.lists(st.sampled_from([b"\r", b"\n", b"a"]), max_size=60).map(b"".join),
    st.lists(st.integers(0, 60), max_size=6),
)
def test_lf_endings_across_chunks_is_bytes_replace(data: bytes, cuts: list[int]) -> None:
    edges = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(edges)]
    assert b"".join(lf_endings(iter(chunks))) == data.replace(b"\r\n", b"\n")


# --- slow: a real `serve`, a real SIGKILL ------------------------------------------------------

# A sitecustomize module: serve delivers in a child process (forked from a forkserver, or
# spawned), which runs no code of the test's but does read sitecustomize on PYTHONPATH.
HOOK = """\
import os, re, signal, sys, threading

ROOT = {root!r} + os.sep
EVENT, PATTERN, AT = {event!r}, re.compile({pattern!r}), {at!r}
seen = 0


def stop_here():
    # To this thread: it stops before its next step; the test then sends SIGKILL.
    signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)


def matches(args):
    for arg in args:
        if isinstance(arg, (str, bytes, os.PathLike)):
            path = os.fsdecode(os.fspath(arg))
            if path.startswith(ROOT) and PATTERN.search(path[len(ROOT):].replace(os.sep, "/")):
                return True
    return False


def counted():
    global seen
    seen += 1
    return seen == AT


def before_the_event(event, args):
    # The test's hook, not the product's: stop at the AT-th EVENT on a matching path.
    if event == EVENT and matches(args) and counted():
        stop_here()


def wrapped(name, after):
    real = getattr(os, name)

    def call(*args, **kwargs):
        if not after and counted():
            stop_here()
        result = real(*args, **kwargs)
        if after and matches(args) and counted():
            stop_here()
        return result

    setattr(os, name, call)


if EVENT.startswith("before os."):
    wrapped(EVENT.removeprefix("before os."), after=False)
elif EVENT.startswith("after os."):
    wrapped(EVENT.removeprefix("after os."), after=True)
else:
    sys.addaudithook(before_the_event)
"""

COPY_TMP = r"^(you|alice|bob)/tmp/"
SEGMENT = r"^\.smtp-tutor/deliveries/[0-9]+-[0-9a-f]+/[0-9]+\.log$"


@dataclass(frozen=True)
class KillPoint:
    event: str  # an audit event (sys.audit) raised just before the step, or an os call
    pattern: str  # on the path, relative to the Maildir root
    at: int  # which occurrence
    in_new: int  # copies in new/ when the process is killed
    kept: bool  # the message is in every box after the restart (else in none)


KILL_POINTS = {
    "two copies written, the third not": KillPoint("open", COPY_TMP, 3, 0, False),
    "all written, the log not begun": KillPoint("open", SEGMENT, 1, 0, False),
    # The record complete in the log: what a killed process wrote stays (the system's).
    "the record written, the flush not begun": KillPoint("before os.fdatasync", "", 1, 0, True),
    "flushed, no copy in new/": KillPoint("os.rename", COPY_TMP, 1, 0, True),
    "one copy renamed into new/": KillPoint("os.rename", COPY_TMP, 2, 1, True),
    "two copies renamed into new/": KillPoint("os.rename", COPY_TMP, 3, 2, True),
    "all renamed, the 250 not sent": KillPoint("after os.rename", COPY_TMP, 3, 3, True),
}


def send_without_reading_the_reply(client: RawClient, content: bytes) -> None:
    assert client.code("EHLO client.example").startswith("250 ")
    assert client.code("MAIL FROM:<tester@client.example>").startswith("250 ")
    for address, _ in RECIPIENTS:
        assert client.code(f"RCPT TO:<{address}>").startswith("250 ")
    assert client.code("DATA").startswith("354 ")
    client.send_raw(content + b".\r\n")


def server_child(serve: ServeProcess) -> psutil.Process:
    """The process that delivers: serve's server process, not serve itself."""
    [child] = server_processes(serve.proc.pid)
    return child


def wait_until_stopped(serve: ServeProcess) -> None:
    """Block until the server process is stopped (or fail if it ends or never stops)."""
    child = server_child(serve)
    deadline = time.monotonic() + WAIT
    while child.status() != psutil.STATUS_STOPPED:
        assert child.is_running(), f"the server ended instead; log:\n{serve.text}"
        assert time.monotonic() < deadline, (
            f"serve never reached the chosen step in {WAIT}s; log:\n{serve.text}"
        )
        time.sleep(0.01)


def kill_9(serve: ServeProcess) -> None:
    """SIGKILL to the server process, then serve itself, which says its server died."""
    child = server_child(serve)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=WAIT)
    assert serve.proc.wait(timeout=WAIT) == 70
    serve.kill()  # releases the pipes


def restart_and_check(maildir: Path, kept: bool, content: bytes = CONTENT) -> None:
    """Start serve again on the same root: the message is in all three boxes or in none;
    a retry after it was dropped lands once per box."""
    serve = ServeProcess(maildir, "--plain")
    try:
        found = copies_by_id(maildir)
        assert leftovers(maildir) == [], "recovery leaves nothing in tmp/"
        assert segments(maildir) == [], "recovery leaves no log"
        if kept:
            ((_, folders),) = found.items()
            assert sorted(folders) == sorted(FOLDERS), "delivered: in all three"
        else:
            assert found == {}, "dropped: in none"
            with RawClient(serve.address) as client:
                send_without_reading_the_reply(client, content)
                assert client.reply()[-1].startswith("250 2.0.0 OK id=")
            ((_, folders),) = copies_by_id(maildir).items()
            assert sorted(folders) == sorted(FOLDERS), "the retry: one copy in each box"
        assert serve.interrupt() == 0
    finally:
        serve.kill()
    assert (b"finished the delivery" in serve.stderr) == kept, serve.stderr
    assert segments(maildir) == [], "a clean stop leaves no log"
    assert_readable(maildir, dict.fromkeys(FOLDERS, 1))


@pytest.mark.posix
@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_at_each_step_of_a_delivery_to_three_mailboxes(
    tmp_path: Path, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = KILL_POINTS[point]
    maildir = tmp_path / "Maildir"
    hook = HOOK.format(root=str(maildir), event=step.event, pattern=step.pattern, at=step.at)
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(hook)
    path = os.pathsep.join(filter(None, [str(tmp_path / "hook"), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    serve = ServeProcess(maildir, "--plain")
    monkeypatch.undo()  # the restart below runs without the hook
    try:
        with RawClient(serve.address) as client:
            send_without_reading_the_reply(client, CONTENT)
            wait_until_stopped(serve)
            # Stopped at the step the test chose: the state a SIGKILL there leaves.
            in_new = [f for f in FOLDERS if any((maildir / f / "new").iterdir())]
            assert len(in_new) == step.in_new
            kill_9(serve)
            with pytest.raises(ConnectionError):
                client.reply()  # no 250 was ever sent
    finally:
        serve.kill()
    restart_and_check(maildir, step.kept)


def large_message(megabytes: float) -> bytes:
    line = b"x" * 990 + b"\r\n"
    return b"Subject: large\r\n\r\n" + line * int(megabytes * 1024 * 1024 / len(line))


def first_seen(condition: Any, serve: ServeProcess) -> None:
    """Poll the Maildir (no inotify) until the condition holds, then stop serve from
    outside; the state is read while it is stopped."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert serve.proc.poll() is None, serve.text
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.0005)
    server_child(serve).send_signal(signal.SIGSTOP)
    wait_until_stopped(serve)


OUTSIDE_POINTS = {
    "bob's copy is being written": lambda root: bool(list(root.glob("bob/tmp/*"))),
    "the log appears": lambda root: bool(segments(root)),
    "the first copy is in new/": lambda root: bool(list(root.glob("*/new/*"))),
}


@pytest.mark.posix
@pytest.mark.slow
@pytest.mark.parametrize("point", list(OUTSIDE_POINTS))
def test_kill_9_from_outside_while_a_large_message_is_delivered(tmp_path: Path, point: str) -> None:
    """No hook at all: an 8 MB message to three boxes, stopped from outside when the test
    sees the point in the Maildir. Whatever the process got to, the copies are all there
    after the restart, or none are: none if its log had not begun, all if a copy had
    reached new/ (the log was flushed before the first rename)."""
    maildir = tmp_path / "Maildir"
    content = large_message(8)
    serve = ServeProcess(maildir, "--plain")
    try:
        with RawClient(serve.address) as client:
            send_without_reading_the_reply(client, content)
            first_seen(lambda: OUTSIDE_POINTS[point](maildir), serve)
            logged = bool(segments(maildir))
            linked = len(list(maildir.glob("*/new/*")))
            kill_9(serve)
    finally:
        serve.kill()
    restarted = ServeProcess(maildir, "--plain")
    try:
        found = copies_by_id(maildir)
        assert leftovers(maildir) == [] and segments(maildir) == []
        assert restarted.interrupt() == 0
    finally:
        restarted.kill()
    assert found == {} or sorted(next(iter(found.values()))) == sorted(FOLDERS)
    if linked:
        assert found, "a copy had reached new/: the record was on disk"
    if not logged:
        assert found == {}, "no log: nothing to rebuild"
    for folder in FOLDERS:
        assert len(read_with_stdlib(maildir, folder)) == len(found)


LOAD_TARGET = 200  # acknowledged messages before the kill
LOAD_MESSAGE = large_message(0.25)  # 256 KB: writing three copies takes a while


def keep_sending(
    address: tuple[str, int], acknowledged: list[str], enough: threading.Event
) -> None:
    """Three-recipient messages one after another until the server goes away."""
    try:
        with RawClient(address) as client:
            while True:
                send_without_reading_the_reply(client, LOAD_MESSAGE)
                final = client.reply()[-1]
                assert final.startswith("250 2.0.0 OK id="), final
                acknowledged.append(final.rpartition("id=")[2])
                if len(acknowledged) >= LOAD_TARGET:
                    enough.set()
    except (ConnectionError, OSError):
        return  # killed


@pytest.mark.posix
@pytest.mark.slow
def test_kill_9_under_load_leaves_every_message_in_all_three_boxes_or_none(
    tmp_path: Path,
) -> None:
    """Four clients sending 256 KB messages to three boxes each; once 200 are acknowledged,
    SIGKILL as soon as a delivery is in progress (a copy seen in tmp/). After the restart
    every acknowledged message is in all three boxes, and none is in only some."""
    maildir = tmp_path / "Maildir"
    serve = ServeProcess(maildir, "--plain")
    acknowledged: list[str] = []
    enough = threading.Event()
    clients = [
        threading.Thread(target=keep_sending, args=(serve.address, acknowledged, enough))
        for _ in range(4)
    ]
    try:
        for client in clients:
            client.start()
        assert enough.wait(120), f"only {len(acknowledged)} acknowledged"
        # A delivery in progress: a copy seen in tmp/, then the server stopped; a delivery
        # may finish between the two, so let it go on and catch the next one.
        for _ in range(50):
            first_seen(lambda: bool(leftovers(maildir)), serve)
            in_flight = len(leftovers(maildir))
            if in_flight:
                break
            server_child(serve).send_signal(signal.SIGCONT)
        kill_9(serve)
        for client in clients:
            client.join(WAIT)
    finally:
        serve.kill()
    restarted = ServeProcess(maildir, "--plain")
    try:
        found = copies_by_id(maildir)
        assert restarted.interrupt() == 0
    finally:
        restarted.kill()
    assert in_flight >= 1
    partial = {qid: boxes for qid, boxes in found.items() if sorted(boxes) != sorted(FOLDERS)}
    assert partial == {}, "a message in only some of its boxes"
    assert set(acknowledged) <= set(found), "an acknowledged message is missing"
    assert leftovers(maildir) == [] and segments(maildir) == []
    for folder in FOLDERS:
        assert len(read_with_stdlib(maildir, folder)) == len(found)
