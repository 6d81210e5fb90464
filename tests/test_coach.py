"""Coach mode: the lesson advances on what a real client in another process sends."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pty_session import PtySession
from tests.serve_process import LiveProcess
from tests.support import require_tool

READY = rb"listens on 127\.0\.0\.1 port (\d+)"
LESSONS = Path(__file__).resolve().parent.parent / "lessons"

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
    process = LiveProcess(["learn", "1", "--telnet", "--port", "0", "--plain"], READY)
    yield process
    process.kill()


@pytest.fixture
def coach_with_keyboard() -> Iterator[LiveProcess]:
    """Coach mode whose own window reads lines (a pipe: plain lines, no prompt_toolkit)."""
    process = LiveProcess(
        ["learn", "1", "--telnet", "--port", "0", "--plain"], READY, stdin=subprocess.PIPE
    )
    yield process
    process.kill()


class Client:
    """A raw-socket SMTP client in this process: the learner's telnet, byte for byte."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.reader = self.sock.makefile("rb")
        self.greeting = self.reply()

    @property
    def name(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"{host}:{port}"

    def reply(self) -> bytes:
        lines = b""
        while True:
            line = self.reader.readline()
            lines += line
            if not line or line[3:4] != b"-":
                return lines

    def send(self, line: str) -> bytes:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def send_message(self, lines: list[str]) -> bytes:
        """Message lines get no reply until the lone dot."""
        self.sock.sendall("".join(f"{line}\r\n" for line in [*lines, "."]).encode())
        return self.reply()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


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


@pytest.mark.slow  # the same lesson as the CRLF client's above, through nc -C: 4 s
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


def test_a_session_that_ends_says_what_the_server_knows_once(coach: LiveProcess) -> None:
    client = Client(coach.port)
    client.send("helo a.b.c")
    client.send("quit")
    client.close()
    coach.wait_for(rb"The session ended before the lesson did")
    assert coach.text.count("server knows: greeted: HELO a.b.c · closed") == 1


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


MESSAGE = ["From: Bugs Bunny", "To: Daffy Duck", "Subject: Loony Toons!", "", "Hi there!"]


def finish_lesson_1(client: Client) -> None:
    """From MAIL FROM on (HELO done): the rest of lesson 1, every reply a success."""
    assert client.send("mail from:<bugs@looney.example>").startswith(b"250")
    assert client.send("rcpt to:<you@tutor.test>").startswith(b"250")
    assert client.send("data").startswith(b"354")
    assert client.send_message(MESSAGE).startswith(b"250")
    assert client.send("quit").startswith(b"221")
    client.close()


def test_the_250_that_stores_the_message_completes_the_step_without_a_not_yet(
    coach: LiveProcess,
) -> None:
    run_client(coach.port, SEED_CRLF)
    coach.wait_for(rb"End of lesson 1")
    assert coach.proc.wait(timeout=30) == 0
    text = coach.text
    assert "Not there yet" not in text
    assert "you's mailbox" not in text
    accepted = text.index("S: 250 2.0.0 OK id=")
    envelope = text.index("envelope against headers", accepted)
    done = text.index("Done.", accepted)
    assert envelope < done  # the message is shown, then the step is done: nothing between
    assert "Not there yet" not in text[accepted:done]


def test_hint_and_show_typed_in_the_coach_window_reach_only_the_coach(
    coach_with_keyboard: LiveProcess,
) -> None:
    coach = coach_with_keyboard
    client = Client(coach.port)
    coach.wait_for(rb"Step 2/11")
    coach.type_line("/hint")
    coach.wait_for(rb"Hint 1/3: The first command is a greeting")
    for _ in range(3):
        coach.type_line("/hint")
    coach.wait_for(rb"Hint 3/3")
    # the tutor types nothing into the learner's telnet, and says so when hints run out
    coach.wait_for(rb"No more hints: /show shows what to type in your telnet window")
    coach.type_line("/show")
    coach.wait_for(rb"the tutor types nothing there")
    offered = coach.wait_for(rb"^Type exactly: (.+?)\r?\n$").group(1).decode()
    assert offered == "helo a.b.c"
    coach.type_line("/state")  # answered in order: /show was handled before it
    coach.wait_for(rb"server knows")
    # Nothing reached the session: the next reply is the one to NOOP, and the server has
    # seen no HELO (MAIL is out of sequence).
    assert client.send("noop") == b"250 2.0.0 OK\r\n"
    assert client.send("mail from:<you@tutor.test>").startswith(b"503")
    assert client.send(offered).startswith(b"250 mx.tutor.test Hello a.b.c")
    coach.wait_for(rb"Step 3/11")
    finish_lesson_1(client)
    coach.wait_for(rb"End of lesson 1")
    assert coach.proc.wait(timeout=30) == 0
    text = coach.text
    assert text.count("C: helo a.b.c") == 1  # the learner's own, once
    assert "(typed by the tutor)" not in text
    assert "Another connection" not in text  # the tutor opened no session of its own
    assert "helped" in text  # /show counts as help, as in the lesson screen


def test_the_coach_names_the_client_it_follows_and_switches_when_another_one_types(
    coach: LiveProcess,
) -> None:
    first = Client(coach.port)
    coach.wait_for(re.escape(f"Following {first.name}, the newest connection.").encode())
    assert first.send("helo a.b.c").startswith(b"250")
    coach.wait_for(rb"Step 3/11")
    second = Client(coach.port)
    coach.wait_for(
        re.escape(f"Another connection, from {second.name}. Still following {first.name}").encode()
    )
    assert second.send("helo d.e.f").startswith(b"250")
    coach.wait_for(re.escape(f"Following {second.name}, a command came from there.").encode())
    coach.wait_for(rb"the lesson goes back to the greeting")
    coach.wait_for(rb"Step 3/11")  # that HELO completed the greeting step of the new session
    first.send("quit")
    first.close()
    finish_lesson_1(second)
    coach.wait_for(rb"End of lesson 1")
    assert coach.proc.wait(timeout=30) == 0


@pytest.mark.slow  # waits out a real idle timeout: 4 s
def test_another_session_idling_out_with_421_does_not_reset_the_lesson(tmp_path: Path) -> None:
    lesson = (LESSONS / "01-conversation.toml").read_text(encoding="utf-8")
    steps = lesson.index("[[steps]]")
    # 3 s, not 2: a loaded machine can pause the learner between commands for over a second
    quick = lesson[:steps] + "[persona]\nidle_timeout = 3\n\n" + lesson[steps:]
    (tmp_path / "01-conversation.toml").write_text(quick, encoding="utf-8")
    coach = LiveProcess(
        ["--lessons-dir", str(tmp_path), "learn", "1", "--telnet", "--port", "0", "--plain"], READY
    )
    try:
        learner = Client(coach.port)
        assert learner.send("helo a.b.c").startswith(b"250")
        coach.wait_for(rb"Step 3/11")
        idle = Client(coach.port)
        coach.wait_for(re.escape(f"Still following {learner.name}").encode())
        # The learner keeps its own session alive until the other one is closed for idling.
        while not select.select([idle.sock], [], [], 0.3)[0]:
            assert learner.send("noop").startswith(b"250")
        assert idle.reply().startswith(b"421")
        idle.close()
        finish_lesson_1(learner)
        coach.wait_for(rb"End of lesson 1")
        assert coach.proc.wait(timeout=30) == 0
        text = coach.text
        assert "goes back to the greeting" not in text
        assert text.count("Step 2/11") == 1
        # another session's notice is not this lesson's business (the port may hold "421")
        assert re.search(r"\b421\b", text) is None
    finally:
        coach.kill()


@pytest.mark.posix
def test_a_learner_at_a_terminal_asks_for_a_hint_while_the_coach_follows(
    tutor_home: Path,
) -> None:
    """The coach window at a real terminal: prompt_toolkit's prompt in its own thread."""
    pytest.importorskip("pexpect")
    environment = {
        **os.environ,
        "PROMPT_TOOLKIT_NO_CPR": "1",
        "TERM": "xterm-256color",
        "COLUMNS": "120",
        "LINES": "50",
    }
    tutor = PtySession("learn", "1", "--telnet", "--port", "0", environment=environment)
    try:
        port = int(tutor.expect(r"listens on 127\.0\.0\.1 port (\d+)").group(1))
        client = Client(port)
        tutor.expect(r"Step 2/11")
        tutor.type("/hint", prompt=r"coach>")
        tutor.expect(r"Hint 1/3: The first command is a greeting")
        tutor.type("/show", prompt=r"coach>")
        tutor.expect(r"Type exactly: helo a\.b\.c")
        assert client.send("helo a.b.c").startswith(b"250")
        tutor.expect(r"Step 3/11")
        finish_lesson_1(client)
        tutor.expect(r"End of lesson 1")
        assert tutor.finish() == 0
    finally:
        tutor.child.close(force=True)
