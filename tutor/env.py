"""The Environment: everything a command needs to know about where it runs, decided once.

Made by the root callback from the root options and the process (streams, environment
variables) and passed to every command through the typer context (httpie's pattern).
Tests build one around in-memory streams. Exit statuses are named here too, so that
one place decides what a run ends with.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property
from pathlib import Path
from typing import IO

from rich.console import Console

from tutor.ui.common.reply_detail import Verbosity
from tutor.ui.common.terminal import Terminal, build_console
from tutor.ui.common.theme import DEFAULT_THEME


class ExitStatus(IntEnum):
    OK = 0
    USER_ERROR = 1  # a problem the user can fix; also "lesson left unfinished"
    USAGE = 2  # the command line itself was wrong
    BUG = 70  # EX_SOFTWARE: an internal error
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def wants_colour(*, plain: bool, environ: Mapping[str, str], isatty: bool) -> bool:
    """--plain, then NO_COLOR (no-color.org: set and not empty), then FORCE_COLOR, then
    TERM=dumb, then whether the stream is a terminal."""
    if plain or environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR"):
        return True
    return environ.get("TERM") != "dumb" and isatty


@dataclass
class Environment:
    plain: bool = False
    debug: bool = False
    lessons_dir: Path | None = None
    theme: str = DEFAULT_THEME  # "dark" or "light": see tutor/ui/common/theme.py
    verbosity: Verbosity = Verbosity.AUTO
    stdin: IO[str] = field(default_factory=lambda: sys.stdin)
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def stdin_isatty(self) -> bool:
        return _isatty(self.stdin)

    @property
    def stdout_isatty(self) -> bool:
        return _isatty(self.stdout)

    @property
    def dumb(self) -> bool:
        return self.environ.get("TERM") == "dumb"

    def _console(self, stream: IO[str]) -> Console:
        isatty = _isatty(stream)
        colour = wants_colour(plain=self.plain, environ=self.environ, isatty=isatty)
        return build_console(
            stream, colour=colour, force_terminal=colour and not isatty, theme=self.theme
        )

    @cached_property
    def terminal(self) -> Terminal:
        return Terminal(
            out=self._console(self.stdout),
            err=self._console(self.stderr),
            stdin=self.stdin,
            plain=self.plain,
            stdin_isatty=self.stdin_isatty,
            stdout_isatty=self.stdout_isatty,
            dumb=self.dumb,
            theme=self.theme,
            verbosity=self.verbosity,
        )

    def read_stdin(self) -> str:
        """All of standard input; bytes that are not UTF-8 are kept, to be shown escaped."""
        binary = getattr(self.stdin, "buffer", None)
        if binary is not None:
            data: bytes = binary.read()
            return data.decode("utf-8", "surrogateescape")
        return self.stdin.read()

    @property
    def home(self) -> Path:
        """The data directory: $SMTP_TUTOR_HOME, else the platform's."""
        from tutor.paths import data_home

        return data_home()

    def maildir(self, chosen: Path | None) -> Path:
        """--maildir, else the Maildir root under the data directory."""
        return (chosen or self.home / "Maildir").expanduser()
