"""smtp-tutor in a pseudo-terminal (pexpect): type, press keys, wait for text on screen.

Shared by the lesson, fault and dashboard tests. POSIX only: their modules are marked
`posix`, which conftest skips on Windows.
"""

from __future__ import annotations

import os
import re
import sys
import time

# Colour and cursor sequences, OSC titles, keypad and charset switches, carriage returns.
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[=>()][0-9A-Za-z]?|\r")


EXPECT_TIMEOUT = 30.0  # seconds for one expect(), however much the screen redraws meanwhile


class PtySession:
    """`python -m tutor ARGS` in a pty of rows x columns; `environment` replaces os.environ."""

    def __init__(
        self,
        *args: str,
        rows: int = 50,
        columns: int = 120,
        environment: dict[str, str] | None = None,
    ) -> None:
        import pexpect

        self.pexpect = pexpect
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "tutor", *args],
            env=environment if environment is not None else dict(os.environ),
            dimensions=(rows, columns),
            encoding="utf-8",
            codec_errors="replace",
            timeout=20,
        )
        self.raw = ""
        self.position = 0  # how far expect() has read, in the escape-free text

    def screen(self) -> str:
        return ANSI.sub("", self.raw)

    def expect(self, pattern: str, timeout: float = EXPECT_TIMEOUT) -> re.Match[str]:
        """Wait for a regex in the escape-free output, after what was matched before. The
        wait is bounded in all: a screen that keeps redrawing (a dashboard's clock) never
        lets a read time out on its own."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            match = regex.search(text, self.position)
            if match:
                self.position = match.end()
                return match
            try:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self.pexpect.TIMEOUT("deadline")
                self.raw += self.child.read_nonblocking(65536, timeout=min(left, 20))
            except self.pexpect.TIMEOUT:
                raise AssertionError(
                    f"no {pattern!r} on screen; after what was matched it shows:\n"
                    f"{text[self.position :]}"
                ) from None
            except self.pexpect.EOF:
                raise AssertionError(f"exited before {pattern!r}; it showed:\n{text}") from None

    def type(self, line: str, *, prompt: str = r"(smtp|data)>") -> None:
        """Wait for the prompt, then type the line and Enter."""
        self.expect(prompt)
        self.child.sendline(line)

    def press(self, key: str) -> None:
        self.child.send(key)

    def finish(self) -> int:
        """Read to the end; the exit code."""
        try:
            while True:
                self.raw += self.child.read_nonblocking(65536, timeout=20)
        except self.pexpect.EOF:
            pass
        self.child.close()
        return int(self.child.exitstatus if self.child.exitstatus is not None else -1)


def tutor_in_pty(*args: str, columns: int = 120, rows: int = 50) -> PtySession:
    """`python -m tutor ARGS` as a learner's terminal: that size, prompt_toolkit's cursor
    queries off (a pty answers none), colour on."""
    environment = {
        **os.environ,
        "PROMPT_TOOLKIT_NO_CPR": "1",
        "TERM": "xterm-256color",
        "COLUMNS": str(columns),
        "LINES": str(rows),
    }
    return PtySession(*args, rows=rows, columns=columns, environment=environment)
