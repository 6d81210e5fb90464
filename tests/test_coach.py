"""Coach mode: the lesson advances on what a real client in another process sends."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.serve_process import LiveProcess
from tests.support import require_tool

SEED_CRLF = [
    b"helo a.b.c\r\n",
    b"mail from:<bugs@looney.example>\r\n",
    b"rcpt to:<you@tutor.test>\r\n",
    b"data\r\n",
    b"From: Bugs Bunny\r\nTo: Daffy Duck\r\nSubject: Loony Toons!\r\n\r\nHi there!\r\n.\r\n",
    b"quit\r\n",
]
CLIENT = """
import socket, sys
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
reader = sock.makefile("rb")
def reply():
    while True:
        line = reader.readline()
        if not line or line[3:4] != b"-":
            return line
reply()
for chunk in sys.stdin.buffer.read().split(b"\\0"):
    quiet = chunk.startswith(b"!")  # no reply is due (a bare-LF message never ends)
    sock.sendall(chunk[1:] if quiet else chunk)
    if not quiet:
        reply()
sock.close()
"""


@pytest.fixture
def coach() -> Iterator[LiveProcess]:
    process = LiveProcess(
        ["learn", "1", "--telnet", "--port", "0", "--plain"], rb"listens on 127\.0\.0\.1 port (\d+)"
    )
    yield process
    process.kill()


def run_client(port: int, chunks: list[bytes]) -> None:
    subprocess.run(
        [sys.executable, "-c", CLIENT, str(port)], input=b"\0".join(chunks), check=True, timeout=60
    )


def test_a_crlf_client_in_another_process_completes_lesson_1(coach: LiveProcess) -> None:
    if sys.platform != "darwin":  # macOS has no telnet: the tutor suggests nc -c there
        coach.wait_for(rb"telnet 127\.0\.0\.1 \d+")
    run_client(coach.port, SEED_CRLF)
    coach.wait_for(rb"End of lesson 1")
    assert coach.proc.wait(timeout=30) == 0
    text = coach.text
    assert "S: 250 mx.tutor.test Hello a.b.c [127.0.0.1]" in text
    assert "Greeting accepted (HELO)" in text
    assert "where it went: the envelope" in text and "From: Bugs Bunny" in text
    assert text.count("Done.") >= 7


def test_a_bare_lf_client_is_told_at_once_and_can_still_finish(coach: LiveProcess) -> None:
    chunks = [line.replace(b"\r\n", b"\n") for line in SEED_CRLF[:4]]
    chunks[-1] = b"data\r\n"  # so that the 354 comes back before the message
    chunks += [b"!From: Bugs Bunny\nTo: Daffy Duck\n\nHi\n.\n", b"\r\n.\r\n", b"quit\r\n"]
    run_client(coach.port, chunks)
    coach.wait_for(rb"Your client ends lines with LF only")
    coach.wait_for(rb"Your client sends LF only inside DATA: this message cannot end")
    coach.wait_for(rb"End of lesson 1")
    assert coach.proc.wait(timeout=30) == 0


def test_nc_dash_c_drives_the_lesson(coach: LiveProcess) -> None:
    nc = require_tool("nc", linux_only=True)
    script = b"".join(SEED_CRLF).replace(b"\r\n", b"\n")
    subprocess.run(
        [nc, "-C", "-q", "2", "127.0.0.1", str(coach.port)],
        input=script,
        capture_output=True,
        timeout=60,
    )
    coach.wait_for(rb"End of lesson 1")
    assert coach.proc.wait(timeout=30) == 0


def test_backspace_bytes_are_shown_and_explained(coach: LiveProcess) -> None:
    with socket.create_connection(("127.0.0.1", coach.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(b"helx\x08o a.b.c\r\n")
        reader.readline()
        coach.wait_for(rb"backspace bytes")
        sock.sendall(b"quit\r\n")
        reader.readline()
    coach.wait_for(rb"helx\\x08o a\.b\.c")
