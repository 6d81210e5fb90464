"""A program in a pseudo-terminal, its output read through a terminal emulator (pyte).

POSIX only (pty, fcntl, termios are imported when a terminal is opened). The emulator
answers the program's cursor-position requests the way a real terminal does, so
prompt_toolkit runs exactly as it does for a person.
"""

from __future__ import annotations

import os
import select
import struct
import subprocess
import time
from collections.abc import Mapping, Sequence

import pyte


class _Screen(pyte.Screen):
    """pyte's screen, keeping each row that scrolls off the top (the scrollback)."""

    def __init__(self, columns: int, lines: int) -> None:
        super().__init__(columns, lines)
        self.scrollback: list[str] = []
        self.answer_back: list[str] = []  # replies to the program's requests, to be sent

    def index(self) -> None:
        top, bottom = self.margins or (0, self.lines - 1)
        if self.cursor.y == bottom and top == 0:
            row = self.buffer[top]
            self.scrollback.append("".join(row[x].data for x in range(self.columns)))
        super().index()

    def write_process_input(self, data: str) -> None:
        self.answer_back.append(data)


class PtyProgram:
    """`argv` running in a pseudo-terminal of rows x columns; `environment` is all it gets."""

    def __init__(
        self,
        argv: Sequence[str],
        environment: Mapping[str, str],
        *,
        rows: int = 40,
        columns: int = 100,
    ) -> None:
        import fcntl
        import pty
        import termios

        self.master, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        try:
            self.process = subprocess.Popen(
                list(argv),
                stdin=follower,
                stdout=follower,
                stderr=follower,
                env=dict(environment),
                start_new_session=True,
            )
        finally:
            os.close(follower)
        self.screen = _Screen(columns, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.eof = False
        self.last_output = time.monotonic()

    def read(self, timeout: float) -> bool:
        """Feed what the program writes within `timeout` to the emulator; False if nothing."""
        if self.eof:
            return False
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the program closed the terminal (it exited)
            data = b""
        if not data:
            self.eof = True
            return False
        self.stream.feed(data)
        self.last_output = time.monotonic()
        while self.screen.answer_back:
            self.write(self.screen.answer_back.pop(0).encode())
        return True

    def write(self, data: bytes) -> None:
        while data:
            written = os.write(self.master, data)
            data = data[written:]

    def type_line(self, line: str) -> None:
        """Type a line and press Enter (a carriage return, as a keyboard sends)."""
        self.write(line.encode() + b"\r")

    def rows(self) -> list[str]:
        return list(self.screen.display)

    def cursor(self) -> tuple[int, int]:
        return self.screen.cursor.y, self.screen.cursor.x

    def exit_status(self, timeout: float) -> int | None:
        """Wait for the exit (reading what is left), its status; None if it did not exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.read(0.05)
            status = self.process.poll()
            if status is not None and self.eof:
                return status
            if self.eof:
                try:
                    return self.process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    return None
        return self.process.poll()

    def close(self) -> None:
        """Stop the program if it still runs, and release the terminal."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)
