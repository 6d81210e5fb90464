"""Run smtp-tutor (`serve`, or `learn --telnet`) as a real subprocess and read its output."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

STARTUP_TIMEOUT = 30.0
LINE_START = rb"^\d\d:\d\d:\d\d "  # each line of serve's log begins with the time


class LiveProcess:
    """A smtp-tutor subprocess whose output is read line by line as it is written."""

    def __init__(
        self,
        args: list[str],
        ready: bytes,
        python_prefix: list[str] | None = None,
        stdin: int = subprocess.DEVNULL,  # subprocess.PIPE to type into it (`type_line`)
        cwd: Path | None = None,
    ) -> None:
        command = python_prefix or [sys.executable, "-m", "tutor"]
        env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
        self.proc = subprocess.Popen(
            [*command, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=stdin,
            env=env,
            cwd=cwd,
        )
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.output: list[bytes] = []
        self.stderr = b""
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()
        banner = self.wait_for(ready, STARTUP_TIMEOUT)
        self.port = int(banner.group(1))

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern: bytes, timeout: float = 10.0) -> re.Match[bytes]:
        """Read log lines until one matches; every line read is kept in `output`."""
        regex = re.compile(pattern)
        for line in self.output:
            match = regex.search(line)
            if match:
                return match
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no log line matching {pattern!r}; log so far:\n{self.text}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"serve exited before {pattern!r}; log:\n{self.text}")
            self.output.append(line)
            match = regex.search(line)
            if match:
                return match

    def type_line(self, line: str) -> None:
        """A line on its standard input (started with stdin=subprocess.PIPE)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    @property
    def text(self) -> str:
        return b"".join(self.output).decode("utf-8", "replace")

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def interrupt(self, timeout: float = 15.0) -> int:
        """Ctrl-C, as a user would; returns the exit code, keeps the rest of the log."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=timeout)
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                break
            self.output.append(line)
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()
        return code

    def kill(self) -> None:
        """Stop the process if it still runs and release its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._pump_thread.join(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


class ServeProcess(LiveProcess):
    """`smtp-tutor serve` on a free port; `port` is read from its banner."""

    def __init__(
        self,
        maildir: Path,
        *args: str,
        python_prefix: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.maildir = maildir
        super().__init__(
            ["serve", "--port", "0", "--maildir", str(maildir), *args],
            rb"listening on \[?[0-9a-f.:]+?\]?:(\d+)",
            python_prefix,
            cwd=cwd,
        )

    # serve numbers its sessions and starts each of their log lines with the time and the
    # number ("12:34:56 #12  "), so a test can read its own sessions in the log of a serve
    # other tests use too.

    def session_of(self, client_port: int) -> int:
        """The number of the session of the client on this local port."""
        port = str(client_port).encode()
        return self.session_where(rb"connected from 127\.0\.0\.1 port " + port + rb"$")

    def session_where(self, pattern: bytes) -> int:
        """The number of the first session with a log line that matches `pattern`."""
        return int(self.wait_for(LINE_START + rb"#(\d+)\s.*?" + pattern).group(1))

    def wait_in_session(
        self, number: int, pattern: bytes, timeout: float = 10.0
    ) -> re.Match[bytes]:
        """wait_for, among the lines of session #number only."""
        return self.wait_for(
            LINE_START + rb"#" + str(number).encode() + rb"\s.*?" + pattern, timeout
        )

    def session_text(self, number: int) -> str:
        """The log lines of session #number read so far."""
        tag = re.compile(LINE_START + rb"#" + str(number).encode() + rb"\s")
        return b"".join(line for line in self.output if tag.match(line)).decode("utf-8", "replace")
