"""Presentation mode: one step per screen, the reply code large, for a projector.

Only bold and reverse video carry emphasis: they read on light and dark backgrounds
alike, and the words always say what a colour would.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text

from tutor.annotations import Annotation
from tutor.ui.safe import untrusted

# A 3x5 block font for the digits of a reply code.
_DIGITS = {
    "0": ["███", "█ █", "█ █", "█ █", "███"],
    "1": [" █ ", "██ ", " █ ", " █ ", "███"],
    "2": ["███", "  █", "███", "█  ", "███"],
    "3": ["███", "  █", " ██", "  █", "███"],
    "4": ["█ █", "█ █", "███", "  █", "  █"],
    "5": ["███", "█  ", "███", "  █", "███"],
    "6": ["███", "█  ", "███", "█ █", "███"],
    "7": ["███", "  █", " █ ", " █ ", " █ "],
    "8": ["███", "█ █", "███", "█ █", "███"],
    "9": ["███", "█ █", "███", "  █", "███"],
}
VERDICT = {2: "DONE", 3: "GO ON", 4: "NOT NOW, TRY LATER", 5: "REFUSED"}


def big_code(code: int) -> Text:
    """The three digits, five lines high, two columns per block for square-ish pixels."""
    rows = []
    for row in range(5):
        rows.append(
            "   ".join(_DIGITS[d][row].replace("█", "██").replace(" ", "  ") for d in str(code))
        )
    return Text("\n".join(rows), style="bold")


def present_reply(code: int, note: Annotation) -> RenderableType:
    verdict = VERDICT.get(code // 100, "")
    heading = Text(f" {code} · {verdict} ", style="bold reverse")
    parts: list[RenderableType] = [
        Padding(big_code(code), (1, 0, 0, 4)),
        Padding(heading, (1, 0, 0, 4)),
        Padding(untrusted(note.headline, "bold"), (1, 0, 0, 4)),
    ]
    if note.enhanced and not note.enhanced.endswith(".0.0") and note.enhanced_meaning:
        parts.append(Padding(untrusted(f"{note.enhanced}: {note.enhanced_meaning}"), (0, 0, 0, 4)))
    if note.rfc:
        parts.append(Padding(Text(note.rfc), (0, 0, 1, 4)))
    return Group(*parts)


def step_banner(lesson_number: int, title: str, index: int, total: int) -> Text:
    return untrusted(
        f" Lesson {lesson_number} · {title} · step {index + 1} of {total} ", "bold reverse"
    )
