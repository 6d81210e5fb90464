"""Messages stored together: rounds that share each wait for the disk, each message all or
nothing on its own, and a server that stores off its loop when the disk is slow
(docs/server.md, "Durability: what a 250 guarantees").
"""

from __future__ import annotations

import mailbox
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
from tutor.maildir import durable
from tutor.maildir.store import DeliveryRounds, MaildirStore, StorageError
from tutor.server import deliveries
from tutor.server.runner import TeachingServer
from tutor.smtp.events import MessageStored, SessionClosed

HOST = "mx.tutor.test"
WAIT = 10.0


def store_at(root: Path) -> MaildirStore:
    store = MaildirStore(root, HOST)
    store.recover()
    return store


def messages_in(root: Path, folder: str) -> list[bytes]:
    box = mailbox.Maildir(root / folder, factory=None, create=False)
    return [box.get_bytes(key) for key in box.iterkeys()]


def waits_for_the_disk(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many fsyncs each wait for the disk issued together, in order."""
    waits: list[int] = []
    real = durable._start_at_once

    def counted(jobs: list[Callable[[], None]], on_done: Any) -> Any:
        waits.append(len(jobs))
        return real(jobs, on_done)

    monkeypatch.setattr(durable, "_start_at_once", counted)
    return waits


class Unreadable:
    """Message content in a file that fails as a full disk or a bad sector would."""

    def seek(self, offset: int, whence: int = 0, /) -> int:
        return 0

    def read(self, size: int = -1, /) -> bytes:
        raise OSError(5, "Input/output error")


# --- the store: rounds ----------------------------------------------------------------------------


def test_five_messages_stored_together_share_two_waits_for_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_at(tmp_path)
    waits = waits_for_the_disk(monkeypatch)

    outcomes = store.deliver_many(
        [(delivery(f"Q{n}"), [("you@tutor.test", "you")]) for n in range(5)]
    )

    # Five files fsync'd at once, then the one new/ folder they were linked into.
    assert waits == [5, 1]
    assert all(isinstance(outcome, list) for outcome in outcomes)
    assert len(messages_in(tmp_path, "you")) == 5
    assert list(tmp_path.glob("*/tmp/*")) == []


def test_a_failing_message_takes_back_only_its_own_copies(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    three = [("you@tutor.test", "you"), ("alice@tutor.test", "alice"), ("bob@tutor.test", "bob")]

    outcomes = store.deliver_many(
        [
            (delivery("FIRST"), three),
            (delivery("BROKEN", Unreadable()), three),
            (delivery("LAST"), [("you@tutor.test", "you")]),
        ]
    )

    first, broken, last = outcomes
    assert isinstance(broken, StorageError) and "Input/output error" in str(broken)
    assert isinstance(first, list) and [c.folder for c in first] == ["you", "alice", "bob"]
    assert isinstance(last, list) and [c.folder for c in last] == ["you"]
    assert [len(messages_in(tmp_path, f)) for f in ("you", "alice", "bob")] == [2, 1, 1]
    assert list(tmp_path.glob("*/tmp/*")) == []
    assert list(tmp_path.glob(".smtp-tutor/deliveries/*/*")) == [], "no journal is left"


def test_a_message_may_join_at_any_round_and_ends_when_its_own_steps_do(
    tmp_path: Path,
) -> None:
    """One copy takes two rounds; three copies take four (the journal first)."""
    rounds: DeliveryRounds[str] = DeliveryRounds(store_at(tmp_path))
    three = [("you@tutor.test", "you"), ("alice@tutor.test", "alice"), ("bob@tutor.test", "bob")]
    rounds.add("three copies", delivery("THREE"), three)
    assert rounds.step() == {}  # its journal written
    rounds.add("one copy", delivery("ONE"), [("bob@tutor.test", "bob")])
    assert rounds.step() == {}  # the journal committed; the single copy written
    ended = rounds.step()  # the three copies written; the single copy linked: it ends
    assert list(ended) == ["one copy"]
    assert len(messages_in(tmp_path, "bob")) == 1
    assert list(rounds.step()) == ["three copies"]
    assert not rounds.busy
    assert [len(messages_in(tmp_path, f)) for f in ("you", "alice", "bob")] == [1, 1, 2]


# --- the server: off its loop when the disk is slow ---------------------------------------------


@pytest.fixture
def slow_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every wait for the disk counts as slow: the server stores from its thread."""
    monkeypatch.setattr(deliveries, "SLOW_FLUSH", -1.0)
    monkeypatch.setattr(deliveries, "FAST_FLUSH", -2.0)


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
    events = []
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
