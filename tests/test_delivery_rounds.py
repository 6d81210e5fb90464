"""Messages stored together: rounds that share each wait for the disk (one flush of the
delivery log, whatever the number of messages and copies), each message all or nothing on
its own, on the server's loop where the disk is fast and from a thread of its own where it
is slow (docs/server.md, "Durability: what a 250 guarantees").
"""

from __future__ import annotations

import asyncio
import mailbox
import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import RawClient
from tests.test_durability import delivery
from tutor.maildir.store import DeliveryRounds, MaildirStore, StorageError
from tutor.server import deliveries
from tutor.server.deliveries import DeliveryQueue
from tutor.server.runner import TeachingServer
from tutor.smtp.events import Copy, MessageStored, SessionClosed

HOST = "mx.tutor.test"
WAIT = 10.0
THREE = [("you@tutor.test", "you"), ("alice@tutor.test", "alice"), ("bob@tutor.test", "bob")]
FLUSH = "fdatasync" if hasattr(os, "fdatasync") else "fsync"


def store_at(root: Path) -> MaildirStore:
    """A store whose log segment is open and on disk (a first message stored), so that
    what is counted next is the rounds' own work."""
    store = MaildirStore(root, HOST)
    store.recover()
    for _, folder in THREE:
        store.folder(folder)  # made (durably) before the first connection, as the server does
    store.deliver(delivery("FIRST"), [("you@tutor.test", "you")])
    return store


def messages_in(root: Path, folder: str) -> list[bytes]:
    box = mailbox.Maildir(root / folder, factory=None, create=False)
    return [box.get_bytes(key) for key in box.iterkeys()]


def disk_waits(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many times the process asks the disk to flush: the log (fdatasync), anything
    else (fsync)."""
    calls = {"fdatasync": 0, "fsync": 0}
    for name in ("fdatasync", "fsync"):
        real = getattr(os, name, None)
        if real is None:
            continue

        def counted(fd: int, real: Callable[[int], None] = real, name: str = name) -> None:
            calls[name] += 1
            real(fd)

        monkeypatch.setattr(os, name, counted)
    return calls


class Unreadable:
    """Message content in a file that fails as a full disk or a bad sector would."""

    def seek(self, offset: int, whence: int = 0, /) -> int:
        return 0

    def read(self, size: int = -1, /) -> bytes:
        raise OSError(5, "Input/output error")


# --- the store: rounds ----------------------------------------------------------------------------


def test_five_messages_stored_together_share_one_wait_for_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five messages, three copies each: one flush of the log for all fifteen copies, and
    no fsync of any copy or folder before the 250s (the log's record stands for them)."""
    store = store_at(tmp_path)
    waits = disk_waits(monkeypatch)

    outcomes = store.deliver_many([(delivery(f"Q{n}"), THREE) for n in range(5)])

    assert waits[FLUSH] == 1
    assert waits["fsync"] == int(FLUSH == "fsync"), "no copy and no folder fsync'd"
    assert all(isinstance(outcome, list) for outcome in outcomes)
    assert [len(messages_in(tmp_path, f)) for f in ("you", "alice", "bob")] == [6, 5, 5]
    assert list(tmp_path.glob("*/tmp/*")) == []


def test_a_failing_message_takes_back_only_its_own_copies(tmp_path: Path) -> None:
    store = store_at(tmp_path)

    outcomes = store.deliver_many(
        [
            (delivery("FIRST"), THREE),
            (delivery("BROKEN", Unreadable()), THREE),
            (delivery("LAST"), [("you@tutor.test", "you")]),
        ]
    )

    first, broken, last = outcomes
    assert isinstance(broken, StorageError) and "Input/output error" in str(broken)
    assert isinstance(first, list) and [c.folder for c in first] == ["you", "alice", "bob"]
    assert isinstance(last, list) and [c.folder for c in last] == ["you"]
    assert [len(messages_in(tmp_path, f)) for f in ("you", "alice", "bob")] == [3, 1, 1]
    assert list(tmp_path.glob("*/tmp/*")) == []
    store.close()
    assert list(tmp_path.glob(".smtp-tutor/deliveries/*")) == [], "no log is left"


def test_a_message_joins_the_next_round_while_the_disk_works_and_ends_with_it(
    tmp_path: Path,
) -> None:
    """One round per message, whatever its copies: a message added while a round's flush
    is under way is written at once (its copies wait in tmp/) and ends with the next."""
    rounds: DeliveryRounds[str] = DeliveryRounds(store_at(tmp_path))
    rounds.add("three copies", delivery("THREE"), THREE)
    flushed = threading.Event()
    rounds.begin(on_synced=flushed.set)
    rounds.add("one copy", delivery("ONE"), [("bob@tutor.test", "bob")], now=True)
    assert len(list(tmp_path.glob("bob/tmp/*"))) == 2, "both written; neither in new/ yet"
    assert flushed.wait(WAIT)
    assert list(rounds.end()) == ["three copies"]
    assert [len(messages_in(tmp_path, f)) for f in ("you", "alice", "bob")] == [2, 1, 1]
    assert list(rounds.step()) == ["one copy"]
    assert not rounds.busy
    assert len(messages_in(tmp_path, "bob")) == 2


def test_messages_stored_on_the_loop_in_one_pass_share_one_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the disk is fast, messages are stored on the server's loop: those handed over
    in the same pass of the loop are written at once and flushed together at its end."""
    store = store_at(tmp_path)
    waits = disk_waits(monkeypatch)

    async def five_at_once() -> list[list[Copy]]:
        stores = DeliveryQueue(store)
        handed = [stores.submit(delivery(f"P{n}"), THREE) for n in range(5)]
        copies = await asyncio.gather(*handed)
        stores.close()
        return copies

    stored = asyncio.run(five_at_once())

    assert [len(copies) for copies in stored] == [3] * 5
    assert waits[FLUSH] == 1
    assert [len(messages_in(tmp_path, f)) for f in ("you", "alice", "bob")] == [6, 5, 5]
    assert not any(t.name == "smtp-tutor-delivery" for t in threading.enumerate())


def test_from_the_thread_a_message_now_and_then_measures_the_loop_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread's rounds wait for hand-overs between threads as well as for the disk, so
    they are not what the loop would wait: from the thread, a message a second (here:
    each one) is stored on the loop, and a fast disk brings the way back there."""
    monkeypatch.setattr(deliveries, "PROBE_EVERY", 0.0)
    store = store_at(tmp_path)

    async def one_by_one() -> bool:
        stores = DeliveryQueue(store)
        stores._measured(10 * deliveries.SLOW_FLUSH)  # as after a slow spell of the disk
        went_to_the_thread = not stores._on_loop
        for n in range(60):
            await stores.submit(delivery(f"M{n}"), [("you@tutor.test", "you")])
            if stores._on_loop:
                break
        stores.close()
        return went_to_the_thread and stores._on_loop

    assert asyncio.run(one_by_one()), "still in the thread after 60 fast flushes"


# --- the server: off its loop when the disk is slow ---------------------------------------------


@pytest.fixture
def slow_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every wait for the disk counts as slow: the server stores from its thread."""
    monkeypatch.setattr(deliveries, "SLOW_FLUSH", -1.0)
    monkeypatch.setattr(deliveries, "FAST_FLUSH", -2.0)
    monkeypatch.setattr(deliveries, "PROBE_EVERY", 3600.0)


def send_message(address: tuple[str, int], subject: str) -> str:
    with RawClient(address) as client:
        assert client.code("EHLO client.example").startswith("250 ")
        assert client.code("MAIL FROM:<tester@client.example>").startswith("250 ")
        assert client.code("RCPT TO:<you@tutor.test>").startswith("250 ")
        assert client.code("DATA").startswith("354 ")
        final = client.code(f"Subject: {subject}\r\n\r\nbody\r\n.".encode())
        assert client.code("QUIT").startswith("221 ")
        return final


@pytest.mark.usefixtures("slow_disk")
def test_twenty_sessions_at_once_are_stored_from_the_delivery_thread(
    server: TeachingServer,
) -> None:
    finals: list[str] = []

    def session(number: int) -> None:
        for round_ in range(3):
            finals.append(send_message(server.address, f"session {number} message {round_}"))

    threads = [threading.Thread(target=session, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)

    assert len(finals) == 60 and all(f.startswith("250 2.0.0 OK id=") for f in finals)
    assert any(t.name == "smtp-tutor-delivery" for t in threading.enumerate())
    assert len(messages_in(server.maildir, "you")) == 60
    stored = [e for e in drain(server) if isinstance(e, MessageStored)]
    assert sorted(e.subject for e in stored) == sorted(
        f"session {n} message {m}" for n in range(20) for m in range(3)
    )


def drain(server: TeachingServer) -> list[object]:
    events: list[object] = []
    while True:
        try:
            events.append(server.capture.events.get(timeout=0.5))
        except queue.Empty:
            return events


@pytest.mark.usefixtures("slow_disk")
def test_a_message_whose_connection_is_lost_while_it_is_stored_is_stored_all_the_same(
    server: TeachingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    send_message(server.address, "first")  # the first wait measured: from now on, the thread
    held = threading.Event()
    release = threading.Event()
    real_end = DeliveryRounds.end

    def held_end(self: DeliveryRounds[Any]) -> Any:
        held.set()
        assert release.wait(WAIT)
        return real_end(self)

    monkeypatch.setattr(DeliveryRounds, "end", held_end)
    client = RawClient(server.address)
    assert client.code("EHLO client.example").startswith("250 ")
    assert client.code("MAIL FROM:<tester@client.example>").startswith("250 ")
    assert client.code("RCPT TO:<you@tutor.test>").startswith("250 ")
    assert client.code("DATA").startswith("354 ")
    client.send_raw(b"Subject: lost\r\n\r\nbody\r\n.\r\n")
    assert held.wait(WAIT), "the message never reached the delivery thread"
    # A reset, not a polite close: the server loses the connection mid-store.
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    closed = wait_for(server, lambda e: isinstance(e, SessionClosed) and e.session == 2)
    release.set()

    stored = wait_for(server, lambda e: isinstance(e, MessageStored) and e.subject == "lost")
    assert closed and stored.session == 2
    subjects = sorted(
        m.split(b"Subject: ")[1].split(b"\n")[0] for m in messages_in(server.maildir, "you")
    )
    assert subjects == [b"first", b"lost"]
    record = server.capture.session(2)
    assert record is not None
    [data] = [e for e in record.exchanges if e.kind == "data"]
    assert data.replies == (), "no 250 was sent"


def wait_for(server: TeachingServer, wanted: Callable[[object], bool]) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            event = server.capture.events.get(timeout=0.1)
        except queue.Empty:
            continue
        if wanted(event):
            return event
    pytest.fail("the event never came")
