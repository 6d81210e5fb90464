"""Building the rich Console for the environment we run in (tty, pipe, NO_COLOR, --plain)."""

from __future__ import annotations

import os
import sys

from rich.console import Console


def make_console(*, plain: bool = False, stderr: bool = False, record: bool = False) -> Console:
    """Colour on a terminal; plain text (no colour, no wrapping) in a pipe or with --plain."""
    stream = sys.stderr if stderr else sys.stdout
    is_tty = stream.isatty()
    no_color = plain or "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb"
    return Console(
        file=stream,
        no_color=no_color,
        color_system=None if (no_color or not is_tty) else "auto",
        highlight=False,
        emoji=False,
        markup=False,
        record=record,  # kept for --transcript
    )
