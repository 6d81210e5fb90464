"""The line students type to reach a class's server, big enough to read on a projector.

Shown at the start of `serve`'s line log and in the dashboard's header whenever other
machines can connect (`--lan`, or a `--host` that is not loopback). A terminal has one
font size, so "big" is room: a box with wide margins, centred. With --plain there is no
box, only blank lines and an indent, so a screen reader reads the commands alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.align import Align
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from tutor.ui.common.safe import untrusted

TITLE = "students type one of these"


def students_banner(commands: Sequence[str], *, plain: bool) -> RenderableType:
    """The commands, one per line: `telnet ADDR PORT`, `nc -C ADDR PORT`."""
    if plain:
        lines = [Text(""), Text(TITLE.capitalize() + ":"), Text("")]
        for command in commands:
            lines += [untrusted("        " + command), Text("")]
        return Group(*lines)
    body: list[RenderableType] = []
    for number, command in enumerate(commands):
        if number:
            body.append(Text(""))
        body.append(untrusted(command, "bold"))
    return Align.center(_panel(Group(*body), padding=(1, 8)))


def students_header(commands: Sequence[str], *, roomy: bool) -> RenderableType:
    """For the dashboard: the commands on one line, in a box (with blank lines around them
    when the terminal is tall enough to spare them)."""
    line = Text()
    for number, command in enumerate(commands):
        if number:
            line.append("      or      ")
        line.append_text(untrusted(command, "bold"))
    return Align.center(_panel(line, padding=(1, 8) if roomy else (0, 4)))


def _panel(body: RenderableType, *, padding: tuple[int, int]) -> Panel:
    return Panel(
        body,
        title=Text(f" {TITLE} ", style="bold"),
        padding=padding,
        expand=False,
        border_style="bold cyan",
    )
