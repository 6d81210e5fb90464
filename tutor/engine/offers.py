"""The screen contract's offered lines, stdlib only: what a text offers the learner to type.

Three forms, each running to the end of its line with nothing added after it:

    Type exactly: LINE                   one line
    The lines are: A / B / (empty) / .   several lines; (empty) is an empty line
    Type: CMD — CMD                      several commands

The lesson screen renders the offered part literally (ui/common/safe.py `lesson_markdown`),
`lessons validate` reads it back from the rendered text and replays it
(engine/validate.py), and a learner or a robot types it as shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TYPE_EXACTLY = "Type exactly: "
THE_LINES_ARE = "The lines are: "
TYPE_COMMANDS = "Type: "
LINES_SEPARATOR = " / "
COMMANDS_SEPARATOR = " — "
EMPTY = "(empty)"

# A marker opens a line or follows a space: `Content-Type: x` offers nothing.
_MARKER = re.compile(
    rf"(?:^|(?<=\s))(?:{re.escape(TYPE_EXACTLY)}|{re.escape(THE_LINES_ARE)}|{re.escape(TYPE_COMMANDS)})"
)


@dataclass(frozen=True)
class Offer:
    """An offer found in one line: the text before it, its marker, and what it offers."""

    lead: str
    marker: str
    rest: str  # everything after the marker, to the end of the line

    @property
    def items(self) -> tuple[str, ...]:
        """The offered parts as written: `(empty)` is still `(empty)` here."""
        if self.marker == TYPE_EXACTLY:
            return (self.rest,)
        separator = LINES_SEPARATOR if self.marker == THE_LINES_ARE else COMMANDS_SEPARATOR
        return tuple(self.rest.split(separator))

    @property
    def separator(self) -> str:
        return LINES_SEPARATOR if self.marker == THE_LINES_ARE else COMMANDS_SEPARATOR

    @property
    def lines(self) -> tuple[str, ...]:
        """The lines to type, `(empty)` made an empty line."""
        return tuple("" if item == EMPTY else item for item in self.items)


def find_offer(line: str) -> Offer | None:
    """The offer in one line of text, if any; `Type exactly:` wins over the other forms."""
    found = [match for match in _MARKER.finditer(line)]
    if not found:
        return None
    priority = (TYPE_EXACTLY, THE_LINES_ARE, TYPE_COMMANDS)
    match = min(found, key=lambda m: (priority.index(m.group(0)), m.start()))
    return Offer(line[: match.start()], match.group(0), line[match.end() :])
