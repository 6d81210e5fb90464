"""The servers under test, each started as its own process on 127.0.0.1.

- `serve`: `smtp-tutor serve --plain`, stdout (the line log) redirected to a file, as a
  teacher would run it with the log kept for later.
- `aiosmtpd-mailbox`: aiosmtpd with its stock `aiosmtpd.handlers.Mailbox` (a Maildir).
- `aiosmtpd-noop`: aiosmtpd with a handler that keeps nothing.
- `smtp-sink`: Postfix's test server, when installed (C; the ceiling of the machine).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
STARTUP_TIMEOUT = 30.0


def tutor_command() -> list[str]:
    """The installed `smtp-tutor` script beside this Python, else `python -m tutor`."""
    script = Path(sys.executable).parent / "smtp-tutor"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tutor"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll (this is a benchmark, not a test): servers started elsewhere, files written."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc (Linux); 0 where unknown."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else 0


class Target:
    """One server process: start(), then host/port/pid, then stop()."""

    name = ""
    host = "127.0.0.1"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir / self.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def available(cls) -> bool:
        return True

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Target:
        raise NotImplementedError

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        self.proc = None

    def stored(self) -> int:
        """Messages on disk, where the server stores any."""
        return 0

    def __enter__(self) -> Target:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _count_maildir(root: Path) -> int:
    return sum(1 for path in root.rglob("new/*") if path.is_file())


class Serve(Target):
    name = "serve"

    def start(self) -> Target:
        self.log = self.workdir / "serve.log"
        self.maildir = self.workdir / "Maildir"
        env = dict(os.environ, SMTP_TUTOR_HOME=str(self.workdir / "home"), COLUMNS="200")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    *tutor_command(),
                    "serve",
                    "--plain",
                    "--host",
                    self.host,
                    "--port",
                    "0",
                    "--maildir",
                    str(self.maildir),
                ],
                stdout=log,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        pattern = re.compile(rb"listening on [0-9.]+:(\d+)")
        found: list[int] = []

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                stderr = self.proc.stderr.read() if self.proc.stderr else b""
                raise RuntimeError(f"serve exited: {stderr!r}")
            match = pattern.search(self.log.read_bytes())
            if match:
                found.append(int(match.group(1)))
            return bool(found)

        wait_until(ready, STARTUP_TIMEOUT, "serve's banner")
        self.port = found[0]
        return self

    def logged_messages(self) -> int:
        return self.log.read_bytes().count(b" stored id=")

    def stored(self) -> int:
        return _count_maildir(self.maildir)


class AiosmtpdServer(Target):
    handler = ""

    def start(self) -> Target:
        self.maildir = self.workdir / "Maildir"
        args = [self.handler, str(self.maildir)] if self.handler == "mailbox" else [self.handler]
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "aiosmtpd_server.py"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.match(rb"port (\d+)", line)
        if not match:
            raise RuntimeError(f"{self.name} did not start: {line!r}")
        self.port = int(match.group(1))
        return self

    def stored(self) -> int:
        return _count_maildir(self.maildir) if self.handler == "mailbox" else 0


class AiosmtpdMailbox(AiosmtpdServer):
    name = "aiosmtpd-mailbox"
    handler = "mailbox"


class AiosmtpdNoop(AiosmtpdServer):
    name = "aiosmtpd-noop"
    handler = "noop"


class SmtpSink(Target):
    name = "smtp-sink"

    @classmethod
    def available(cls) -> bool:
        return os.access(SMTP_SINK, os.X_OK)

    def start(self) -> Target:
        self.port = free_port()
        # -u: it refuses to run as root without a user to switch to; -m: more than the
        # default 256 simultaneous connections, for the idle-connections test.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [SMTP_SINK, *user, "-m", "2000", f"{self.host}:{self.port}", "1024"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                stderr = self.proc.stderr.read() if self.proc.stderr else b""
                raise RuntimeError(f"smtp-sink exited: {stderr!r}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return True
            except OSError:
                return False

        wait_until(ready, STARTUP_TIMEOUT, "smtp-sink")
        return self


TARGETS: list[type[Target]] = [Serve, AiosmtpdMailbox, AiosmtpdNoop, SmtpSink]


def smtp_source_available() -> bool:
    return os.access(SMTP_SOURCE, os.X_OK) and shutil.which(SMTP_SOURCE) is not None
