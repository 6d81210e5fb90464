"""Where a screen runs: its consoles, its input, and what kind of terminal that is.

The command line's Environment decides these once (colour, --plain, NO_COLOR,
FORCE_COLOR, TERM, which streams are terminals) and hands every screen one Terminal,
so no screen looks at sys.stdin, sys.stdout or os.environ on its own.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from rich.console import Console

from tutor.errors import UserError
from tutor.ui.common.reply_detail import Verbosity
from tutor.ui.common.theme import DEFAULT_THEME, ThemedConsole


@dataclass(frozen=True)
class Terminal:
    out: Console
    err: Console
    stdin: IO[str]
    plain: bool  # no colour and no boxes: pipes, screen readers, --plain
    stdin_isatty: bool
    stdout_isatty: bool
    dumb: bool  # TERM=dumb: a terminal that cannot take prompt_toolkit's drawing
    theme: str = DEFAULT_THEME  # colours for a dark or a light background (ui/common/theme.py)
    verbosity: Verbosity = Verbosity.AUTO  # how much of each reply's meaning to show

    @property
    def interactive(self) -> bool:
        """A person at a real terminal on both ends: prompt_toolkit's prompt, keys, menus."""
        return self.stdin_isatty and self.stdout_isatty and not self.dumb

    def recorded(self) -> Terminal:
        """The same terminal whose `out` also records what it prints (--transcript)."""
        out = build_console(
            self.out.file,
            colour=self.out.color_system is not None,
            force_terminal=self.out.is_terminal and not self.stdout_isatty,
            record=True,
            theme=self.theme,
        )
        return replace(self, out=out)

    def open_script(self, path: str) -> IO[str]:
        """A --script FILE, or standard input for '-'."""
        if path == "-":
            return self.stdin
        try:  # read whole (a script is a few lines), so no file is left open
            return io.StringIO(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise UserError(f"cannot read the script {path}: {error.strerror}") from error


def build_console(
    stream: IO[str],
    *,
    colour: bool,
    force_terminal: bool,
    record: bool = False,
    theme: str = DEFAULT_THEME,
) -> Console:
    """The one way a rich Console is made: markup, emoji and highlighting always off,
    because what it prints is mostly untrusted text (see tutor/ui/common/safe.py). The light
    theme redraws colours for a white background; without colour there is nothing to do."""
    console_class = ThemedConsole if colour and theme == "light" else Console
    return console_class(
        file=stream,
        no_color=not colour,
        color_system="auto" if colour else None,
        force_terminal=True if force_terminal else None,
        highlight=False,
        emoji=False,
        markup=False,
        record=record,
    )


def confirm(term: Terminal, question: str) -> bool:
    """Ask a yes/no question at the terminal; anything but y/yes (or end of input) is no."""
    term.out.print(question, end="")
    term.out.file.flush()
    answer = term.stdin.readline()
    return answer.strip().lower() in ("y", "yes")
