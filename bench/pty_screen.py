"""A program on a pseudo-terminal whose output is always read, and read through pyte on demand.

The benchmark runs `serve`'s dashboard as a teacher does, on a terminal: the dashboard
really renders every frame, and a reader thread takes the bytes off the pty as fast as
they come (a terminal that stops reading would block the program, which no real
terminal does). Most of the time the bytes are discarded; while the benchmark waits for
something to appear on screen they go through pyte, a terminal emulator, so "what the
dashboard shows" is what a person would see. rich's Live on the alternate screen redraws
the whole screen from the top on every frame, so a pyte screen started mid-stream is
right from the next frame on.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import termios
import threading
import time
from dataclasses import dataclass

import pyte


@dataclass
class _Watch:
    pattern: re.Pattern[str]
    screen: pyte.Screen
    stream: pyte.ByteStream
    found: threading.Event
    match: re.Match[str] | None = None
    seen_at: float = 0.0  # perf_counter() when the bytes that showed it were read


class PtyProgram:
    """`command` with a pty of columns × lines as its stdin, stdout and stderr."""

    def __init__(
        self, command: list[str], env: dict[str, str], cwd: str, columns: int, lines: int
    ) -> None:
        self.columns, self.lines = columns, lines
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        try:
            self.proc = subprocess.Popen(
                command,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                cwd=cwd,
                start_new_session=True,  # its own session, as in a terminal window
            )
        finally:
            os.close(slave)
        self._master = master
        self._lock = threading.Lock()
        self._watch: _Watch | None = None
        self.bytes_read = 0
        self._tail = b""  # the last bytes read, for an error message
        self._error = ""
        self.last_screen: list[str] = []  # what the screen showed when wait_for matched
        self._reader = threading.Thread(target=self._read, name="pty-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 1 << 16)
            except OSError:  # EIO: the program closed its side
                return
            if not data:
                return
            now = time.perf_counter()
            self.bytes_read += len(data)
            self._tail = (self._tail + data)[-4096:]
            with self._lock:
                watch = self._watch
                if watch is None or watch.found.is_set():
                    continue
                try:
                    watch.stream.feed(data)
                    match = watch.pattern.search("\n".join(watch.screen.display))
                except Exception as error:  # keep reading; wait_for reports it
                    self._error = f"pyte: {type(error).__name__}: {error}"
                    continue
                if match:
                    watch.match, watch.seen_at = match, now
                    self.last_screen = [line.rstrip() for line in watch.screen.display]
                    watch.found.set()

    def wait_for(self, pattern: str, timeout: float) -> tuple[re.Match[str], float]:
        """Wait until the screen shows a line matching pattern; (match, perf_counter() then)."""
        screen = pyte.Screen(self.columns, self.lines)
        watch = _Watch(re.compile(pattern), screen, pyte.ByteStream(screen), threading.Event())
        with self._lock:
            self._watch = watch
        deadline = time.monotonic() + timeout
        try:
            while not watch.found.wait(0.1):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"exited ({self.proc.returncode}): {self._tail[-800:]!r}")
                if time.monotonic() > deadline:
                    with self._lock:
                        shown = "\n".join(line.rstrip() for line in screen.display)
                    raise RuntimeError(
                        f"timed out waiting for {pattern!r} {self._error}; the screen:\n{shown}"
                    )
        finally:
            with self._lock:
                self._watch = None
        assert watch.match is not None
        return watch.match, watch.seen_at

    def send(self, data: bytes) -> None:
        """Keys typed on the terminal."""
        os.write(self._master, data)

    def close(self) -> None:
        """After the program has exited: the reader stops at EOF."""
        self._reader.join(timeout=5)
        os.close(self._master)
