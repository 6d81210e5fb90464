"""What the tutor tells a learner to run in another terminal works exactly as typed: each
command line that coach mode and `serve` show is run here, word for word, and talks to the
server; a challenge played from the telnet it invites is solved without being hung up on.
"""

from __future__ import annotations

import functools
import os
import queue
import re
import shlex
import subprocess
import threading
from collections.abc import Iterator

import pytest

from tests.serve_process import LiveProcess
from tests.support import require_tool
from tutor.sandbox.serve import client_hints
from tutor.server.runner import TeachingServer
from tutor.smtp.events import Exchange, MessageStored, TlsStarted
from tutor.ui.lesson.coach_app import client_commands

TIMEOUT = 20.0
COACH_READY = rb"listens on 127\.0\.0\.1 port (\d+)"


class Tool:
    """A real client run from the command line a learner was shown: lines typed into its
    standard input (ended by LF, as a keyboard's Enter), its output read as it comes."""

    def __init__(self, command: str) -> None:
        words = shlex.split(command)
        require_tool(words[0], linux_only=words[0] == "nc")
        self.proc = subprocess.Popen(
            words, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.output = b""
        self._chunks: queue.Queue[bytes] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := os.read(self.proc.stdout.fileno(), 4096):
            self._chunks.put(chunk)
        self._chunks.put(b"")

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def expect(self, pattern: bytes) -> re.Match[bytes]:
        """Output up to a line matching `pattern` (the first one not yet expected)."""
        regex = re.compile(pattern, re.MULTILINE)
        while (match := regex.search(self.output, getattr(self, "_seen", 0))) is None:
            try:
                chunk = self._chunks.get(timeout=TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"no {pattern!r} in:\n{self.output.decode()}") from None
            if not chunk:
                raise AssertionError(f"ended before {pattern!r}:\n{self.output.decode()}")
            self.output += chunk
        self._seen = match.end()
        return match

    def close(self) -> int:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=TIMEOUT)
        self._reader.join(timeout=TIMEOUT)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code


def new_session_closed(server: TeachingServer, seen: int) -> bool:
    sessions = server.capture.sessions()
    return len(sessions) > seen and sessions[-1].closed is not None


def shown_commands(server: TeachingServer) -> list[str]:
    """Every command line coach mode (on this system) and serve's banner show."""
    host, port = server.address
    coach = [command for command, _why in client_commands(host, port)]
    return list(dict.fromkeys([*coach, *client_hints(host, port)]))


def test_every_command_shown_reaches_the_server_with_crlf(server: TeachingServer) -> None:
    commands = shown_commands(server)
    port = server.address[1]
    assert f"telnet 127.0.0.1 {port}" in commands and f"nc -C 127.0.0.1 {port}" in commands
    for command in commands:
        seen = len(server.capture.sessions())
        tool = Tool(command)
        try:
            if command.startswith("swaks "):
                assert tool.close() == 0, tool.output.decode()
            else:
                tool.expect(rb"^220 .*ESMTP|^250 ")  # the greeting, or (openssl) EHLO's end
                tool.type("ehlo invitation.example")
                tool.expect(rb"^250 HELP")
                tool.type("quit")
                tool.expect(rb"^221 ")
                tool.close()
        finally:
            if tool.proc.poll() is None:
                tool.close()
        closed = functools.partial(new_session_closed, server, seen)
        assert server.capture.wait_for(closed, TIMEOUT), command
        events = server.capture.sessions()[-1].events
        sent = [e.sent for e in events if isinstance(e, Exchange) and e.kind == "command"]
        assert sent and all(line.endswith(b"\r\n") for line in sent), (command, sent)
        if command.startswith("swaks "):
            assert any(isinstance(e, MessageStored) for e in events)
        else:
            assert b"ehlo invitation.example\r\n" in sent, (command, sent)
        if "-starttls smtp" in command:
            assert any(isinstance(e, TlsStarted) for e in events)


@pytest.fixture
def coached_challenge() -> Iterator[LiveProcess]:
    process = LiveProcess(
        ["challenge", "1", "--telnet", "--port", "0", "--plain"],
        COACH_READY,
        stdin=subprocess.PIPE,
    )
    yield process
    process.kill()


@pytest.mark.posix
def test_a_challenge_played_from_the_telnet_it_invites_is_never_hung_up(
    coached_challenge: LiveProcess,
) -> None:
    coach = coached_challenge
    for shown, _why in client_commands("127.0.0.1", coach.port):  # `--port 0`: the real one
        coach.wait_for(re.escape(f"  {shown}").encode())
    coach.type_line("/show")  # at the connect step: what to run in the other terminal
    command = coach.wait_for(rb"^Type exactly: (telnet .+?)\r?\n$").group(1).decode()
    assert command == f"telnet 127.0.0.1 {coach.port}"
    telnet = Tool(command)
    try:
        telnet.expect(rb"^220 ")
        coach.wait_for(rb"Step 2/2")
        coach.type_line("/show")
        coach.wait_for(rb" / \.\r?\n$")  # the last of the offered lines, the lone dot
        offered = coach.text.split("The lines are: ", 1)[1].split(" / .\n", 1)[0] + " / ."
        offered = " ".join(offered.split("\n"))  # a line wider than the window wraps
        for line in offered.split(" / "):
            telnet.type("" if line == "(empty)" else line)
        telnet.expect(rb"^250 2\.0\.0 OK id=")
        coach.wait_for(rb"Challenge 1 solved with help\.")
        coach.wait_for(rb"Your session stays open")
        telnet.type("noop")  # solved, and still connected
        telnet.expect(rb"^250 2\.0\.0 OK\r?$")
        coach.wait_for(rb"\bnoop\b")  # explained in the coach window too
        telnet.type("quit")
        telnet.expect(rb"^221 ")
        assert coach.proc.wait(timeout=TIMEOUT) == 0
    finally:
        telnet.close()
    assert b"421" not in telnet.output
    coach.wait_for(rb"Your session is over; the server stops\.")
