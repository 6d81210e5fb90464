"""Limits a client cannot talk its way around, over real sockets (docs/server.md,
"Memory: the capture, the session store and message data").

- The recipient limit counts every accepted RCPT, the same address again too.
- Message text past SPOOL_THRESHOLD is held in an unnamed file under the Maildir root,
  not in memory, and that file is gone however DATA ends: the lone dot, a 552, a 500,
  a storage failure, the client leaving mid-message, the server stopping.
"""

from __future__ import annotations

import mailbox
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import RawClient
from tutor.server.persona import Persona
from tutor.server.runner import TeachingServer
from tutor.server.spool import SPOOL_THRESHOLD, spool_directory
from tutor.smtp.events import MessageStored
from tutor.smtp.wire import RECIPIENT_LIMIT

WAIT = 10.0
LINE = b"y" * 78 + b"\r\n"
Start = Callable[..., TeachingServer]


# --- the recipient limit ------------------------------------------------------------------


def test_repeating_one_recipient_counts_against_the_limit(server: TeachingServer) -> None:
    with RawClient(server.address) as client:
        client.code("EHLO client.example")
        client.code("MAIL FROM:<a@client.example>")
        for _ in range(RECIPIENT_LIMIT):
            assert client.code("RCPT TO:<you@tutor.test>").startswith("250 2.1.5")
        assert client.code("RCPT TO:<you@tutor.test>").startswith("452 4.5.3")
        assert client.code("RCPT TO:<alice@tutor.test>").startswith("452 4.5.3")
        assert client.code("DATA").startswith("354")
        assert client.code(b"Subject: once\r\n\r\nhi\r\n.").startswith("250 2.0.0")
        # A new transaction starts counting again.
        client.code("MAIL FROM:<a@client.example>")
        assert client.code("RCPT TO:<you@tutor.test>").startswith("250 2.1.5")
        client.code("RSET")
        client.code("MAIL FROM:<a@client.example>")
        assert client.code("RCPT TO:<you@tutor.test>").startswith("250 2.1.5")
    [stored] = stored_messages(server)
    assert stored.recipients == ("you@tutor.test",)  # one mailbox, one copy
    assert len(stored.copies) == 1


def test_a_refused_rcpt_does_not_count(server: TeachingServer) -> None:
    with RawClient(server.address) as client:
        client.code("EHLO client.example")
        client.code("MAIL FROM:<a@client.example>")
        for _ in range(5):
            assert client.code("RCPT TO:<nobody@tutor.test>").startswith("550 5.1.1")
        for _ in range(RECIPIENT_LIMIT):
            assert client.code("RCPT TO:<bob@tutor.test>").startswith("250 2.1.5")


def stored_messages(server: TeachingServer) -> list[MessageStored]:
    return [m for record in server.capture.sessions() for m in record.messages]


# --- the spool ----------------------------------------------------------------------------


def spool_files(directory: Path) -> int:
    """How many spool files this process holds open (they have no name: count the open
    descriptors whose target lies in the spool directory)."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc to see unnamed files")
    count = 0
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed while we looked
            continue
        count += target.startswith(str(directory) + os.sep)
    return count


def wait_until(condition: Callable[[], bool]) -> bool:
    """Poll a fact about another thread's progress (the server reading what we sent)."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def message(size: int, subject: str = "big") -> bytes:
    head = f"From: a@client.example\r\nTo: you@tutor.test\r\nSubject: {subject}\r\n\r\n".encode()
    return head + LINE * ((size - len(head)) // len(LINE) + 1)


@pytest.fixture
def in_data(server: TeachingServer) -> Iterator[tuple[TeachingServer, RawClient, Path]]:
    """A session inside DATA after two thresholds of text: the spool file is open."""
    directory = spool_directory(server.maildir)
    client = RawClient(server.address)
    client.code("EHLO client.example")
    client.code("MAIL FROM:<a@client.example>")
    client.code("RCPT TO:<you@tutor.test>")
    assert client.code("DATA").startswith("354")
    client.send_raw(message(2 * SPOOL_THRESHOLD))
    assert wait_until(lambda: spool_files(directory) == 1), "the text went to a spool file"
    yield server, client, directory
    client.close()


def test_a_large_message_is_spooled_and_stored_whole(
    in_data: tuple[TeachingServer, RawClient, Path],
) -> None:
    server, client, directory = in_data
    sent = message(2 * SPOOL_THRESHOLD)
    assert client.code(".").startswith("250 2.0.0")
    assert spool_files(directory) == 0
    [stored] = stored_messages(server)
    assert stored.size == len(sent)
    assert stored.subject == "big"
    assert stored.body_lines[:2] == (LINE.decode().rstrip(), LINE.decode().rstrip())
    assert len(stored.body_lines) == 200
    [copy] = mailbox.Maildir(server.maildir / "you", factory=None).values()
    text = copy.as_bytes()
    assert text.endswith(sent.replace(b"\r\n", b"\n"))  # after the trace headers


def test_a_spooled_message_reaches_every_mailbox_whole(server: TeachingServer) -> None:
    """Delivery reads the spool file from its start for each copy."""
    sent = message(3 * SPOOL_THRESHOLD, subject="three")
    with RawClient(server.address) as client:
        client.code("EHLO client.example")
        client.code("MAIL FROM:<a@client.example>")
        for name in ("you", "alice", "bob"):
            assert client.code(f"RCPT TO:<{name}@tutor.test>").startswith("250")
        client.code("DATA")
        assert client.code(sent + b".").startswith("250 2.0.0")
    for name in ("you", "alice", "bob"):
        [copy] = mailbox.Maildir(server.maildir / name, factory=None).values()
        assert copy.as_bytes().endswith(sent.replace(b"\r\n", b"\n")), name
    assert spool_files(spool_directory(server.maildir)) == 0


def test_the_spool_file_goes_when_the_client_leaves_mid_message(
    in_data: tuple[TeachingServer, RawClient, Path],
) -> None:
    server, client, directory = in_data
    client.close()
    capture = server.capture
    assert capture.wait_for(lambda: all(r.closed for r in capture.sessions()), WAIT)
    assert wait_until(lambda: spool_files(directory) == 0)
    assert stored_messages(server) == []


def test_the_spool_file_goes_when_the_server_stops_mid_message(
    in_data: tuple[TeachingServer, RawClient, Path],
) -> None:
    server, client, directory = in_data
    server.stop()
    assert client.reply()[-1].startswith("421 4.3.2")
    assert spool_files(directory) == 0


def test_the_spool_file_goes_with_a_line_too_long(
    in_data: tuple[TeachingServer, RawClient, Path],
) -> None:
    _server, client, directory = in_data
    client.send_raw(b"z" * 1200 + b"\r\n")
    assert client.code(".").startswith("500 5.5.2")
    assert spool_files(directory) == 0


def test_the_spool_file_goes_with_a_message_too_big(start_server: Start) -> None:
    server = start_server(Persona(max_message_size=3 * SPOOL_THRESHOLD))
    directory = spool_directory(server.maildir)
    with RawClient(server.address) as client:
        client.code("EHLO client.example")
        client.code("MAIL FROM:<a@client.example>")
        client.code("RCPT TO:<you@tutor.test>")
        client.code("DATA")
        client.send_raw(message(2 * SPOOL_THRESHOLD))
        assert wait_until(lambda: spool_files(directory) == 1)
        client.send_raw(message(2 * SPOOL_THRESHOLD))
        assert client.code(".").startswith("552 5.3.4")
        assert spool_files(directory) == 0
        assert client.code("NOOP").startswith("250")  # the session goes on
    assert stored_messages(server) == []


def test_a_message_that_cannot_be_spooled_is_refused(server: TeachingServer) -> None:
    """No room for the spool (here a file where its folder should be): 452 after the dot,
    never a 250 for a message that was not kept."""
    directory = spool_directory(server.maildir)
    directory.parent.mkdir(parents=True, exist_ok=True)
    directory.write_text("in the way")
    with RawClient(server.address) as client:
        client.code("EHLO client.example")
        client.code("MAIL FROM:<a@client.example>")
        client.code("RCPT TO:<you@tutor.test>")
        client.code("DATA")
        client.send_raw(message(2 * SPOOL_THRESHOLD))
        assert client.code(".").startswith("452 4.3.1")
        # A small message needs no spool file and is still accepted.
        client.code("MAIL FROM:<a@client.example>")
        client.code("RCPT TO:<you@tutor.test>")
        client.code("DATA")
        assert client.code(message(4000) + b".").startswith("250 2.0.0")
    assert [m.size for m in stored_messages(server)] == [len(message(4000))]


def test_a_small_message_never_touches_the_disk_before_delivery(server: TeachingServer) -> None:
    with RawClient(server.address) as client:
        client.code("EHLO client.example")
        client.code("MAIL FROM:<a@client.example>")
        client.code("RCPT TO:<you@tutor.test>")
        client.code("DATA")
        assert client.code(message(SPOOL_THRESHOLD // 2) + b".").startswith("250 2.0.0")
    assert not spool_directory(server.maildir).exists()
