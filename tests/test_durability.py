"""Durability: the copies of a message are all or nothing across a crash, and a delivery
a dead server left half done is settled at the next start: rolled back, or finished when
every copy had reached new/ (docs/server.md, "Durability: what a 250 guarantees").

The fast tier stops a delivery dead at a chosen step in this process (an exception that
no handler catches, then the lock's descriptor closed, as the system closes it for a
process that dies) and starts the next store or server on the same Maildir root. The
slow tier does it to a real `serve` with a real SIGKILL to its server process (the
spawned child that delivers): the child stops itself (SIGSTOP) at the step the test
chose, spotted by an audit hook the test installs as a sitecustomize module on
PYTHONPATH (the product has no switch for tests), and the test kills it; or, with no hook
at all, the test stops it from outside when it sees the journal or a copy appear while a
large message is written. serve then says its server died and exits 70. Every case ends
with a restart and the same question: is the message in all three mailboxes or in none,
and can the standard library's `mailbox` and `smtp-tutor mailbox` read what is there?
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import mailbox
import os
import re
import signal
import sys
import threading
import time
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
    goes; its files stay as they were."""
    fd = store._journals._lock
    assert fd is not None, "the store never claimed its journal folder"
    os.close(fd)
    store._journals._lock = None


def copies_by_id(root: Path) -> dict[str, list[str]]:
    """The folders holding each queue id, from new/ and cur/ (what a mail reader sees)."""
    found: dict[str, list[str]] = {}
    for path in sorted([*root.glob("*/new/*"), *root.glob("*/cur/*")]):
        match = STORED_ID.search(path.read_bytes())
        assert match, f"{path} has no Received header of ours"
        found.setdefault(match.group(1).decode(), []).append(path.parent.parent.name)
    return found


def journals(root: Path) -> list[Path]:
    return sorted(root.glob(".smtp-tutor/deliveries/*/*.json"))


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


class StopsAtCopy(io.BytesIO):
    """Message content in a file that makes the process die when copy number `at` starts
    to read it: the copies before it are written, this one has its trace headers only."""

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


def half_delivered(
    root: Path, monkeypatch: pytest.MonkeyPatch, step: str, recipients: Any = RECIPIENTS
) -> MaildirStore:
    """A store whose delivery of queue id HALF died at `step` (its lock still held)."""
    store = MaildirStore(root, HOST)
    store.recover()
    content: Any = CONTENT
    if step == "writing the third copy":
        content = StopsAtCopy(CONTENT, at=3)
    elif step == "writing the only copy":
        content = StopsAtCopy(CONTENT, at=1)
    elif step == "before the second link":
        crash_on_call(monkeypatch, "link", at=2)
    elif step == "before the third link":
        crash_on_call(monkeypatch, "link", at=3)
    elif step == "all linked, the journal still there":
        crash_on_call(monkeypatch, "remove", at=1)
    with pytest.raises(Crash):
        store.deliver(delivery("HALF", content), recipients)
    monkeypatch.undo()
    return store


# --- fast: recovery in this process -----------------------------------------------------------

STEPS = {  # where the copies are when the process dies: (in tmp/, in new/)
    "writing the third copy": (3, 0),  # the third has its trace headers only
    "before the second link": (3, 1),  # the tmp/ names stay until all are linked
    "before the third link": (3, 2),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_delivery_that_died_half_done_is_rolled_back_at_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    root = tmp_path / "Maildir"
    dead = half_delivered(root, monkeypatch, step)
    in_tmp, in_new = STEPS[step]
    assert len(journals(root)) == 1, "the journal stays when the process dies"
    assert len(leftovers(root)) == in_tmp
    assert len(copies_by_id(root).get("HALF", [])) == in_new
    die(dead)

    recovery = MaildirStore(root, HOST).recover()

    (undone,) = recovery.rolled_back
    assert (undone.queue_id, undone.copies, len(undone.delivered)) == ("HALF", 3, in_new)
    assert recovery.finished == ()
    assert copies_by_id(root) == {}, "none of the three copies is left"
    assert leftovers(root) == []
    assert journals(root) == []
    assert_readable(root, dict.fromkeys(FOLDERS, 0))


def test_a_delivery_whose_copies_were_all_linked_is_finished_not_taken_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every copy in new/: the 250 may have gone out (the journal's removal is not
    fsync'd), so the delivery is finished: kept in every box, its tmp/ names removed."""
    root = tmp_path / "Maildir"
    dead = half_delivered(root, monkeypatch, "all linked, the journal still there")
    assert len(journals(root)) == 1
    assert len(leftovers(root)) == 3
    die(dead)

    recovery = MaildirStore(root, HOST).recover()

    (done,) = recovery.finished
    assert (done.queue_id, sorted(done.delivered)) == ("HALF", sorted(FOLDERS))
    assert recovery.rolled_back == ()
    assert copies_by_id(root) == {"HALF": sorted(FOLDERS)}
    assert leftovers(root) == [] and journals(root) == []
    assert_readable(root, dict.fromkeys(FOLDERS, 1))


def test_a_single_copy_needs_no_journal_and_what_it_left_in_tmp_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One copy is all or nothing by its one link; a store that died while writing it
    left a file in tmp/ (named with the store's token), which the next start removes."""
    root = tmp_path / "Maildir"
    dead = half_delivered(root, monkeypatch, "writing the only copy", RECIPIENTS[:1])
    assert journals(root) == []
    assert len(leftovers(root)) == 1
    die(dead)

    running = MaildirStore(root, HOST)
    recovery = running.recover()

    assert (recovery.stray, recovery.rolled_back, recovery.finished) == (1, (), ())
    assert leftovers(root) == []
    assert copies_by_id(root) == {}
    token = running._journals.claim().name.rpartition("-")[2]
    writing = root / "you" / "tmp" / durable.unique_name(token)  # a copy being written
    writing.write_bytes(b"in progress\n")
    assert MaildirStore(root, HOST).recover().stray == 0
    assert leftovers(root) == [writing], "a running store's file is never removed"


def test_the_client_retry_after_a_rollback_is_the_one_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a real server: it rolls back at start, then the retry lands once per box."""
    root = tmp_path / "Maildir"
    die(half_delivered(root, monkeypatch, "before the second link"))
    assert copies_by_id(root) == {"HALF": ["you"]}, (
        "half delivered: the state a crash used to leave"
    )

    with TeachingServer(root, Persona(tls=False)) as server:
        assert [u.queue_id for u in server.recovery.rolled_back] == ["HALF"]
        assert server.recovery.rolled_back[0].delivered == ("you",)
        with RawClient(server.address) as client:
            assert client.code("EHLO client.example").startswith("250 ")
            assert client.code("MAIL FROM:<tester@client.example>").startswith("250 ")
            for address, _ in RECIPIENTS:
                assert client.code(f"RCPT TO:<{address}>").startswith("250 ")
            assert client.code("DATA").startswith("354 ")
            final = client.code(CONTENT + b".")
        queue_id = final.rpartition("id=")[2]
        assert final.startswith("250 2.0.0")
    assert copies_by_id(root) == {queue_id: sorted(FOLDERS)}
    assert_readable(root, dict.fromkeys(FOLDERS, 1))
    assert journals(root) == [] and leftovers(root) == []


def test_a_running_servers_delivery_is_never_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Servers share a Maildir root (serve, the sandbox, learn): a start rolls back only
    what a server that is gone left, never what one still running is in the middle of."""
    root = tmp_path / "Maildir"
    running = half_delivered(root, monkeypatch, "before the second link")

    assert MaildirStore(root, HOST).recover().rolled_back == ()
    assert copies_by_id(root) == {"HALF": ["you"]}
    assert len(journals(root)) == 1

    die(running)
    (undone,) = MaildirStore(root, HOST).recover().rolled_back
    assert undone.queue_id == "HALF"
    assert copies_by_id(root) == {}


def test_a_copy_a_mail_reader_has_already_seen_is_rolled_back_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "Maildir"
    dead = half_delivered(root, monkeypatch, "before the third link")
    (path,) = (root / "alice" / "new").iterdir()  # a reader moved it to cur/, flagged seen
    path.rename(root / "alice" / "cur" / f"{path.name}{INFO}2,S")
    die(dead)

    (undone,) = MaildirStore(root, HOST).recover().rolled_back
    assert sorted(undone.delivered) == ["alice", "you"]
    assert copies_by_id(root) == {}
    assert sorted(root.glob("*/cur/*")) == []


def test_a_lock_file_that_is_gone_counts_as_a_dead_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "Maildir"
    dead = half_delivered(root, monkeypatch, "before the second link")
    die(dead)
    (root / ".smtp-tutor/deliveries" / f"{journals(root)[0].parent.name}.lock").unlink()

    assert [u.queue_id for u in MaildirStore(root, HOST).recover().rolled_back] == ["HALF"]
    assert copies_by_id(root) == {}


def test_unreadable_journals_are_set_aside_and_never_followed_out_of_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal is a file the tutor reads: any bytes in it give no internal error, and
    a name in it that is not a plain file name is never removed."""
    root = tmp_path / "Maildir"
    victim = tmp_path / "victim"
    victim.write_bytes(b"not the tutor's to remove\n")
    dead = half_delivered(root, monkeypatch, "before the second link")
    keep = root / "you" / "new" / "keep"
    keep.write_bytes(b"a message of someone else\n")
    die(dead)
    folder = journals(root)[0].parent
    broken = {
        "not-json.json": b"{ this is not JSON",
        "deep.json": b"[" * 200_000,
        "binary.json": b"\xff\xfe\x00garbage",
        "a-list.json": b"[1, 2, 3]",
        "escape.json": json.dumps(
            {"queue_id": "X", "copies": [{"folder": "..", "key": "victim"}]}
        ).encode(),
        "hidden.json": json.dumps(
            {"queue_id": "Y", "copies": [{"folder": "you", "key": "../new/keep"}]}
        ).encode(),
        "huge.json": b" " * (durable.JOURNAL_LIMIT + 10),
    }
    for name, data in broken.items():
        (folder / name).write_bytes(data)

    with TeachingServer(root, Persona(tls=False)) as server:
        recovery = server.recovery
    assert [u.queue_id for u in recovery.rolled_back] == ["HALF"]
    assert sorted(p.name for p in recovery.set_aside) == sorted(
        f"{folder.name}-{name}" for name in broken
    )
    assert all(p.parent.name == "unreadable" for p in recovery.set_aside)
    assert victim.read_bytes() == b"not the tutor's to remove\n"
    assert keep.exists()
    assert not folder.exists(), "the dead server's folder is gone once it is empty"


def test_a_storage_error_takes_every_copy_back_and_leaves_no_journal(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    store = MaildirStore(root, HOST)
    store.recover()
    store.folder("bob")
    (root / "bob" / "new").rmdir()
    (root / "bob" / "new").write_text("a file where bob's new/ should be\n")
    with pytest.raises(StorageError):
        store.deliver(delivery("FAILS"), RECIPIENTS)
    assert copies_by_id(root) == {}
    assert leftovers(root) == []
    assert journals(root) == []
    store.close()
    assert list((root / ".smtp-tutor/deliveries").iterdir()) == []


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


def stop_at_the_chosen_step(event, args):
    # The test's hook, not the product's: stop this process (SIGSTOP) at the AT-th EVENT
    # on a path under the Maildir root matching PATTERN; the test then sends SIGKILL.
    global seen
    if event != EVENT:
        return
    for arg in args:
        if isinstance(arg, (str, bytes, os.PathLike)):
            path = os.fsdecode(os.fspath(arg))
            if path.startswith(ROOT) and PATTERN.search(path[len(ROOT):].replace(os.sep, "/")):
                seen += 1
                if seen == AT:  # to this thread: it stops before its next step
                    signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
                return


sys.addaudithook(stop_at_the_chosen_step)
"""

COPY_TMP = r"^(you|alice|bob)/tmp/"


@dataclass(frozen=True)
class KillPoint:
    event: str  # the audit event (sys.audit) raised just before the step
    pattern: str  # on the path, relative to the Maildir root
    at: int  # which occurrence
    in_new: int  # copies in new/ when the process is killed
    journal: bool  # the journal still there when it is killed
    kept: bool  # the message is in every box after the restart (else in none)


JOURNAL = r"^\.smtp-tutor/deliveries/[0-9]+-[0-9a-f]+/[^/]+\.json$"

KILL_POINTS = {
    "journal written, no copy begun": KillPoint("open", COPY_TMP, 1, 0, True, False),
    "two copies written, the third not": KillPoint("open", COPY_TMP, 3, 0, True, False),
    "all written, none linked": KillPoint("os.link", COPY_TMP, 1, 0, True, False),
    "one copy linked into new/": KillPoint("os.link", COPY_TMP, 2, 1, True, False),
    "two copies linked into new/": KillPoint("os.link", COPY_TMP, 3, 2, True, False),
    # Every copy in new/: finished at the restart, since the 250 may have gone out.
    "all linked, tmp/ names still there": KillPoint("os.remove", COPY_TMP, 1, 3, True, True),
    "just before the journal's removal": KillPoint("os.remove", JOURNAL, 1, 3, True, True),
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
    a retry after a rollback lands once per box."""
    serve = ServeProcess(maildir, "--plain")
    try:
        found = copies_by_id(maildir)
        assert leftovers(maildir) == [], "recovery leaves nothing in tmp/"
        assert journals(maildir) == [], "recovery leaves no journal"
        if kept:
            ((_, folders),) = found.items()
            assert sorted(folders) == sorted(FOLDERS), "delivered: in all three"
        else:
            assert found == {}, "rolled back: in none"
            with RawClient(serve.address) as client:
                send_without_reading_the_reply(client, content)
                assert client.reply()[-1].startswith("250 2.0.0 OK id=")
            ((_, folders),) = copies_by_id(maildir).items()
            assert sorted(folders) == sorted(FOLDERS), "the retry: one copy in each box"
        assert serve.interrupt() == 0
    finally:
        serve.kill()
    said = b"finished the delivery" if kept else b"rolled back the unfinished delivery"
    assert said in serve.stderr, serve.stderr
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
            assert len(journals(maildir)) == int(step.journal)
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
    "the journal appears": lambda root: bool(journals(root)),
    "bob's copy is being written": lambda root: bool(list(root.glob("bob/tmp/*"))),
    "the first copy is in new/": lambda root: bool(list(root.glob("*/new/*"))),
}


@pytest.mark.posix
@pytest.mark.slow
@pytest.mark.parametrize("point", list(OUTSIDE_POINTS))
def test_kill_9_from_outside_while_a_large_message_is_delivered(tmp_path: Path, point: str) -> None:
    """No hook at all: an 8 MB message to three boxes, stopped from outside when the test
    sees the point in the Maildir. Whatever the process got to, the copies are all there
    after the restart, or none are: all if the journal was gone or every copy linked."""
    maildir = tmp_path / "Maildir"
    content = large_message(8)
    serve = ServeProcess(maildir, "--plain")
    try:
        with RawClient(serve.address) as client:
            send_without_reading_the_reply(client, content)
            first_seen(lambda: OUTSIDE_POINTS[point](maildir), serve)
            journal_left = bool(journals(maildir))
            linked = len(list(maildir.glob("*/new/*")))
            kill_9(serve)
    finally:
        serve.kill()
    restart_and_check_large(maildir, kept=not journal_left or linked == len(FOLDERS))


def restart_and_check_large(maildir: Path, *, kept: bool) -> None:
    serve = ServeProcess(maildir, "--plain")
    try:
        found = copies_by_id(maildir)
        assert leftovers(maildir) == [] and journals(maildir) == []
        if kept:
            ((_, folders),) = found.items()
            assert sorted(folders) == sorted(FOLDERS)
        else:
            assert found == {}
        assert serve.interrupt() == 0
    finally:
        serve.kill()
    for folder in FOLDERS:
        assert len(read_with_stdlib(maildir, folder)) == int(kept)


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
    SIGKILL as soon as a delivery is in progress (its journal seen). After the restart
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
        # A delivery in progress: the journal seen, then the server stopped; a delivery
        # may finish between the two, so let it go on and catch the next one.
        for _ in range(50):
            first_seen(lambda: bool(journals(maildir)), serve)
            in_flight = len(journals(maildir))
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
    assert leftovers(maildir) == [] and journals(maildir) == []
    for folder in FOLDERS:
        assert len(read_with_stdlib(maildir, folder)) == len(found)
