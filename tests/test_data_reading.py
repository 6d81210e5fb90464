"""DATA is read the same however the client's bytes arrive: one burst with the commands
around it, or a byte at a time. The server takes the whole lines its reader already holds
at once (protocol.py, `_buffered_lines`) and awaits the reader only for the rest; the
reply, the stored copy and the captured exchange must not depend on which path a line took.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support import RawClient
from tutor.server.policy import GTUBE
from tutor.server.runner import TeachingServer
from tutor.smtp.events import Exchange, MessageStored

WAIT = 5.0
ENVELOPE = b"EHLO client.example\r\nMAIL FROM:<sender@example.test>\r\nRCPT TO:<you@tutor.test>\r\n"

MESSAGES = {
    "plain": b"From: a@b.example\r\nSubject: s\r\n\r\nline one\r\nline two\r\n.\r\n",
    "dot-stuffed": b"Subject: s\r\n\r\n..\r\n...twice\r\n.x\r\n\r\n.\r\n",
    "empty": b".\r\n",
    "GTUBE (refused as spam)": b"Subject: s\r\n\r\nbefore\r\n" + GTUBE + b"\r\nafter\r\n.\r\n",
    "bare LF inside": b"Subject: s\r\n\r\na\nb\r\n\n.\n\r\n.\r\n",
    "a dot line that is not the end": b"Subject: s\r\n\r\n .\r\n.\r\r\n.\r\n",
    "a 1001-octet line": b"Subject: s\r\n\r\n" + b"a" * 999 + b"\r\nafter\r\n.\r\n",
    "a line longer than the reader's limit": b"Subject: s\r\n\r\n" + b"b" * 5000 + b".\r\n.\r\n",
}


def exchange_once(server: TeachingServer, message: bytes, *, piecewise: bool) -> list[str]:
    """DATA with `message` then QUIT; every reply line the client read after 354."""
    with RawClient(server.address) as client:
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.send_raw(ENVELOPE)
        assert client.reply()[-1] == "250 HELP"
        assert client.reply()[0].startswith("250 2.1.0")
        assert client.reply()[0].startswith("250 2.1.5")
        if piecewise:
            assert client.code("DATA").startswith("354 ")
            for i in range(len(message)):
                client.send_raw(message[i : i + 1])
            client.send_raw(b"QUIT\r\n")
        else:  # DATA, the message and QUIT in one write: the reader holds them all at once
            client.send_raw(b"DATA\r\n" + message + b"QUIT\r\n")
            assert client.reply()[0].startswith("354 ")
        return [client.reply()[0], client.reply()[0]]


def outcome(server: TeachingServer, replies: list[str]) -> tuple[object, ...]:
    """What a run left: the replies (queue id masked), the stored copy's message text and
    the captured DATA exchange."""
    assert server.capture.wait_for(
        lambda: all(r.closed is not None for r in server.capture.sessions()), WAIT
    )
    record = server.capture.sessions()[-1]
    data = [e for e in record.events if isinstance(e, Exchange) and e.kind == "data"]
    stored = [e for e in record.events if isinstance(e, MessageStored)]
    text = b""
    for message in stored:
        (copy,) = message.copies
        path = Path(server.maildir) / copy.folder / "new" / copy.key
        text = path.read_bytes().partition(b"Delivered-To: you@tutor.test\n")[2]
    masked = [r.split(" id=")[0] for r in replies]
    return masked, text, [e.sent for e in data], [e.replies[0].split(" id=")[0] for e in data]


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_a_message_reads_the_same_in_one_burst_and_byte_by_byte(
    start_server: object, name: str
) -> None:
    results = []
    for piecewise in (False, True):
        server = start_server()  # type: ignore[operator]
        replies = exchange_once(server, MESSAGES[name], piecewise=piecewise)
        results.append(outcome(server, replies))
    burst, byte_by_byte = results
    assert burst == byte_by_byte
    assert burst[0][1].startswith("221 ")  # the QUIT after the dot was read as a command
