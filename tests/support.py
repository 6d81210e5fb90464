"""Test helpers: a tiny raw-socket SMTP client, used to put exact bytes on the wire."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
from typing import Any

from tutor.smtp.wire import Reply, parse_reply_line

TIMEOUT = 10.0

# The seed tutorial's session, as a learner types it in lesson 1 (up to the lone dot).
SEED_LINES = [
    "helo a.b.c",
    "mail from:<bugs@looney.example>",
    "rcpt to:<you@tutor.test>",
    "data",
    "From: Bugs Bunny",
    "To: Daffy Duck",
    "Subject: Loony Toons!",
    "",
    "Hi there!",
    ".",
]


class RawClient:
    """Send exact bytes, read whole (multi-line) replies. Every call has a timeout."""

    def __init__(self, address: tuple[str, int], *, source: str | None = None) -> None:
        bind = (source, 0) if source else None
        self.sock = socket.create_connection(address, timeout=TIMEOUT, source_address=bind)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> list[str]:
        lines = []
        while True:
            raw = self.file.readline()
            if not raw:
                raise ConnectionError(f"connection closed after {lines!r}")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if line[3:4] != "-":
                return lines

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, line: str | bytes) -> list[str]:
        """Send one command line (CRLF added) and return the reply lines."""
        data = line if isinstance(line, bytes) else line.encode("utf-8")
        self.sock.sendall(data + b"\r\n")
        return self.reply()

    def code(self, line: str | bytes) -> str:
        """Send a command; return the last reply line (code, enhanced code, text)."""
        return self.cmd(line)[-1]

    def starttls(self) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.file.close()
        self.sock = context.wrap_socket(self.sock, server_hostname="mx.tutor.test")
        self.file = self.sock.makefile("rb")

    def at_eof(self) -> bool:
        """True if the server closed the connection (reads nothing more)."""
        return self.file.readline() == b""

    def close(self) -> None:
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_cli(
    *args: str, stdin: str | bytes | None = None, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    """`smtp-tutor ARGS` run in this process (typer's CliRunner): the same parser, the same
    Environment, the same exit statuses as the installed command, without a new interpreter.

    stdin and stdout are not terminals here; use run_cli_process where the process itself
    is the point (python -m, signals, completion) and tests/pty_session.py for a terminal.
    """
    from typer.testing import CliRunner

    from tutor.cli import app_for

    try:
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:
        runner = CliRunner()  # click >= 8.2 (or typer's own): stderr is always separate
    # The app as tutor.cli.main builds it: narrowed to the command the words name (typer
    # builds the whole tree in some 12 ms, one command in 3; the tests call this hundreds
    # of times).
    result = runner.invoke(
        app_for(args),
        list(args),
        input=stdin,
        env={"COLUMNS": str(columns)},
        prog_name="smtp-tutor",
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a bug, not an exit status: show its traceback
    return subprocess.CompletedProcess(
        ["smtp-tutor", *args], result.exit_code, result.stdout, result.stderr
    )


def run_cli_process(
    *args: str, stdin: str | None = None, columns: int = 200, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m tutor ARGS` in a new process: output captured, one width for wrapping."""
    return subprocess.run(
        [sys.executable, "-m", "tutor", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, COLUMNS=str(columns)),
    )


def require_tool(name: str, *places: str, linux_only: bool = False) -> str:
    """A real client the test needs (swaks, nc, openssl, smtp-sink): its path.

    Missing on a developer's machine: the test is skipped. Missing in CI (the CI variable
    is set): the test fails, because .ci/run installs every tool. A CI job that cannot have
    a tool (the GitHub macOS and Windows runners) says so with SMTP_TUTOR_OPTIONAL_TOOLS=1.
    """
    import pytest

    found = shutil.which(name) or next((p for p in places if os.access(p, os.X_OK)), None)
    if linux_only and not sys.platform.startswith("linux"):
        found = None  # e.g. Debian's netcat-openbsd flags (-C, -q) that BSD nc lacks
    if found is None:
        message = f"{name} is not installed (this test drives the real client)"
        if os.environ.get("CI") and not os.environ.get("SMTP_TUTOR_OPTIONAL_TOOLS"):
            pytest.fail(message + "; .ci/run installs it")
        pytest.skip(message)
    return found


def reply(*lines: str) -> Reply:
    """A Reply parsed from its wire lines ("250-a", "250 b")."""
    parsed = [parse_reply_line(line) for line in lines]
    assert all(parsed), lines
    return Reply(tuple(line for line in parsed if line is not None))


def send_noops(sock: socket.socket, count: int) -> None:
    """`count` NOOPs pipelined in batches of 10,000, without reading a reply (a flood)."""
    batch = b"NOOP\r\n" * 10_000
    for _ in range(count // 10_000):
        sock.sendall(batch)


def count_reply_lines(sock: socket.socket, expected: int) -> int:
    """Read reply lines until `expected` arrived (or the server closed); how many came."""
    count, rest = 0, b""
    while count < expected:
        data = sock.recv(1 << 16)
        if not data:
            break
        rest += data
        count += rest.count(b"\n")
        rest = rest[rest.rfind(b"\n") + 1 :]
    return count


def server_processes(root_pid: int) -> list[Any]:
    """The teaching servers running in a process tree (psutil.Process objects): spawned
    ones, and those a forkserver forked (whose command line is the forkserver's, so they
    are told from the forkserver itself by their parent)."""
    import psutil

    def command(process: psutil.Process) -> str:
        return " ".join(process.cmdline())

    found = []
    for child in psutil.Process(root_pid).children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            line = command(child)
            parent = child.parent()
            forked = parent is not None and "multiprocessing.forkserver" in command(parent)
            if "spawn_main" in line or ("multiprocessing.forkserver" in line and forked):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def pipe_console(*, record: bool = False) -> tuple[Any, Any]:
    """A rich Console as the Environment builds it for a pipe with --plain, and what it
    wrote; record=True takes rich's own rendering path."""
    import io

    from rich.console import Console

    out = io.StringIO()
    console = Console(
        file=out,
        no_color=True,
        color_system=None,
        highlight=False,
        emoji=False,
        markup=False,
        width=100,
        record=record,
    )
    return console, out


def closed_session(server: Any, port: int) -> list[Any]:
    """Every event of the session of the loopback client on this port, once it closed."""
    capture = server.capture
    assert capture.wait_for(lambda: capture.find_peer("127.0.0.1", port) is not None, TIMEOUT)
    record = capture.find_peer("127.0.0.1", port)
    assert record is not None
    assert capture.wait_for(lambda: record.closed is not None, TIMEOUT)
    return list(record.events)
