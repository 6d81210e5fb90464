"""Reading the screen contract off the text a terminal shows (pure functions, no terminal).

The text is the terminal's scrollback followed by its visible rows, one string per row, as
a learner would see them by scrolling up. Only the contract's words are read:
`Step N/M`, `Hint k/n:`, `Type exactly: LINE`, `The lines are: A / B / (empty) / .`,
`Type: CMD — CMD`, the prompts, `No more hints`, `End of lesson` / `End of challenge`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

STEP = re.compile(r"\bStep (\d+)/(\d+)\b")
HINT = re.compile(r"^\s*Hint (\d+)/(\d+):\s?(.*)$")
NO_MORE_HINTS = re.compile(r"^\s*No more hints\b")
TYPED_BY_TUTOR = "(typed by the tutor)"
END = re.compile(r"\bEnd of (lesson|challenge) \d+\b")

TYPE_EXACTLY = "Type exactly: "
THE_LINES_ARE = "The lines are: "
TYPE_COMMANDS = re.compile(r"(?:^|\s)Type: (.+)$")
EMPTY_LINE = "(empty)"

# The prompts the tutor draws where it waits for a line, by the text that opens them.
PROMPTS = {
    "smtp> ": "smtp",
    "data> ": "data",
    "answer> ": "answer",
    "Predict first": "predict",
    "Press Enter to continue": "enter",
}


@dataclass(frozen=True)
class Hint:
    number: int
    total: int
    text: str  # the hint's words after `Hint k/n:`, wrapped rows joined with one space
    offer: tuple[str, ...] | None  # the lines it offers to type, if it offers any


@dataclass(frozen=True)
class Reading:
    """What the learner sees: where the tutor waits, which step this is, its hints."""

    prompt: str  # smtp, data, answer, predict, enter, or "" when it is not waiting
    step: str = ""  # "Step 4/9", the last one opened
    step_row: int = -1  # where that step opened, counted from the top of the scrollback
    hints: tuple[Hint, ...] = field(default_factory=tuple)  # this step's, in order
    hints_ran_out: bool = False  # `No more hints` after this step's last hint
    shown_by_tutor: bool = False  # `(typed by the tutor)` somewhere: /show was used
    ended: str = ""  # "End of lesson 3" once the end appeared


def offered_lines(hint_text: str) -> tuple[str, ...] | None:
    """The lines a hint offers to type, exactly as the contract spells them, else None."""
    if TYPE_EXACTLY in hint_text:
        return (hint_text.split(TYPE_EXACTLY, 1)[1],)
    if THE_LINES_ARE in hint_text:
        parts = hint_text.split(THE_LINES_ARE, 1)[1].split(" / ")
        return tuple("" if part == EMPTY_LINE else part for part in parts)
    match = TYPE_COMMANDS.search(hint_text)
    if match:
        return tuple(match.group(1).split(" — "))
    return None


def prompt_at(screen: list[str], cursor_row: int, cursor_column: int) -> str:
    """The prompt the cursor sits after, with nothing typed yet; "" when there is none."""
    if not 0 <= cursor_row < len(screen):
        return ""
    row = screen[cursor_row]
    before, after = row[:cursor_column], row[cursor_column:]
    if not before.endswith("> ") or after.strip():
        return ""
    return next((kind for opening, kind in PROMPTS.items() if before.startswith(opening)), "")


def is_prompt_row(row: str) -> bool:
    """A row that opens with a prompt (rows are compared without their trailing spaces)."""
    return any(row.lstrip().startswith(opening.rstrip()) for opening in PROMPTS)


def hint_text(rows: list[str], start: int) -> str:
    """A hint's words: its own row and the rows it wrapped onto, up to a blank row, a
    prompt or the next hint; joined with one space (the terminal wrapped at a space)."""
    match = HINT.match(rows[start])
    assert match is not None
    parts = [match.group(3).rstrip()]
    for row in rows[start + 1 :]:
        if not row.strip() or is_prompt_row(row) or HINT.match(row) or NO_MORE_HINTS.match(row):
            break
        parts.append(row.strip())
    return " ".join(part for part in parts if part)


def read(scrollback: list[str], screen: list[str], cursor_row: int, cursor_column: int) -> Reading:
    """Read the contract off what scrolled away and what the screen shows (cursor: on it).

    Rows below the cursor are left out: there the prompt's bottom toolbar is drawn, and
    it is redrawn for each prompt rather than printed once like the lesson."""
    prompt = prompt_at(screen, cursor_row, cursor_column)
    rows = [row.rstrip() for row in [*scrollback, *screen[: cursor_row + 1]]]
    step_row = max((i for i, row in enumerate(rows) if STEP.search(row)), default=-1)
    step = STEP.search(rows[step_row]) if step_row >= 0 else None
    hints: list[Hint] = []
    ran_out = False
    for index in range(step_row + 1, len(rows)):
        match = HINT.match(rows[index])
        if match:
            words = hint_text(rows, index)
            hints.append(Hint(int(match[1]), int(match[2]), words, offered_lines(words)))
            ran_out = False
        elif NO_MORE_HINTS.match(rows[index]):
            ran_out = True
    ends = [end.group(0) for row in rows for end in END.finditer(row)]
    return Reading(
        prompt=prompt,
        step=step.group(0) if step else "",
        step_row=step_row,
        hints=tuple(hints),
        hints_ran_out=ran_out,
        shown_by_tutor=any(TYPED_BY_TUTOR in row for row in rows),
        ended=ends[-1] if ends else "",
    )
