"""The learner robot: takes a lesson or a challenge the way a learner who follows the
hints would, reading nothing but the screen of the real program in a pseudo-terminal.

At each step it asks `/hint` until a hint offers a line to type, types that line
exactly, and asks the next hint if the same step comes back. It never uses `/show` or
`/skip`. It passes when the program ends with exit 0, the end of the lesson is on the
screen, and the progress list (`lessons --plain`, `challenge list --plain`) shows what a
learner earns without help: `done` for a lesson, `solved` for a challenge.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tutor.robot import screen as contract
from tutor.robot.terminal import PtyProgram

ROWS, COLUMNS = 40, 100
PREDICTION = "2"  # any digit is a fair guess; a wrong one costs nothing
ANSWER = "I am not sure"  # to the end-of-lesson questions: right or wrong costs nothing
# What a learner earns with hints but without /show: never "done with help", which /show
# leaves ("with hints" in case hints are ever told apart from no help at all).
EARNED = {
    "lesson": ("done", "done with hints"),
    "challenge": ("solved", "solved with hints"),
}
HINTS_PER_STEP = 30  # more /hint than this in one step means the tutor keeps repeating
# Colour and size come from the terminal alone, as for a person at a terminal.
DROPPED_VARIABLES = ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "SMTP_TUTOR_HOME")


@dataclass(frozen=True)
class Failure:
    reason: str


class Plan:
    """What the learner types next, given what the screen shows (no terminal needed)."""

    def __init__(self) -> None:
        self.step_row = -1
        self.queue: list[str] = []  # the rest of the lines the last hint offered
        self.used_hint: contract.Hint | None = None  # the hint whose lines were typed
        self.asked = 0

    def decide(self, reading: contract.Reading) -> str | Failure:
        if reading.shown_by_tutor:
            return Failure(f"the tutor typed a line for the learner: {contract.TYPED_BY_TUTOR}")
        if reading.step_row != self.step_row:  # a new step began (or an earlier one again)
            self.step_row, self.queue, self.used_hint, self.asked = reading.step_row, [], None, 0
        if reading.prompt == "predict":
            return PREDICTION
        if reading.prompt == "enter":
            return ""
        if reading.prompt == "answer":
            return ANSWER
        if self.queue:
            return self.queue.pop(0)
        latest = reading.hints[-1] if reading.hints else None
        if latest is not None and latest.offer is not None and latest != self.used_hint:
            self.used_hint = latest
            first, *self.queue = latest.offer
            return first
        if reading.hints_ran_out:
            return Failure(self._ran_out(reading))
        self.asked += 1
        if self.asked > HINTS_PER_STEP:
            return Failure(f"asked /hint {HINTS_PER_STEP} times and the step did not change")
        return "/hint"

    def _ran_out(self, reading: contract.Reading) -> str:
        if self.used_hint is None:
            last = reading.hints[-1] if reading.hints else None
            shown = f" (the last: 'Hint {last.number}/{last.total}: {last.text}')" if last else ""
            return f"the hints ran out and none offered a line to type{shown}"
        hint = self.used_hint
        typed = " / ".join(repr(line) for line in hint.offer or ())
        return (
            f"the hints ran out; from 'Hint {hint.number}/{hint.total}: {hint.text}' "
            f"the robot typed {typed} and the step did not complete"
        )


@dataclass(frozen=True)
class Outcome:
    kind: str  # lesson or challenge
    number: int
    plain: bool
    failure: str = ""  # empty when the run passed
    screen: tuple[str, ...] = field(default_factory=tuple)  # the last screen, on failure

    @property
    def ok(self) -> bool:
        return not self.failure

    def line(self) -> str:
        """`lesson 3 colour: ok`, `lesson 3 plain: FAILED at step 4/9: …`."""
        mode = "plain" if self.plain else "colour"
        verdict = "ok" if self.ok else f"FAILED {self.failure}"
        return f"{self.kind} {self.number} {mode}: {verdict}"


@dataclass(frozen=True)
class Course:
    """Which program and folder: lessons (`--lessons-dir`) or challenges (`--challenges-dir`)."""

    kind: str  # lesson or challenge
    folder: Path | None = None

    def arguments(self, plain: bool, *command: str) -> list[str]:
        words = [sys.executable, "-m", "tutor", *(["--plain"] if plain else [])]
        if self.kind == "lesson":
            folder = ["--lessons-dir", str(self.folder)] if self.folder else []
            return [*words, *folder, *command]
        folder = ["--challenges-dir", str(self.folder)] if self.folder else []
        return [*words, "challenge", *command, *folder]

    def play(self, number: int, plain: bool) -> list[str]:
        if self.kind == "lesson":
            return self.arguments(plain, "learn", str(number))
        return self.arguments(plain, "play", str(number))

    def listing(self) -> list[str]:
        return (
            self.arguments(True, "lessons")
            if self.kind == "lesson"
            else (self.arguments(True, "list"))
        )


def environment(home: Path) -> dict[str, str]:
    variables = {k: v for k, v in os.environ.items() if k not in DROPPED_VARIABLES}
    variables.update(TERM="xterm-256color", SMTP_TUTOR_HOME=str(home))
    return variables


def statuses(course: Course, home: Path) -> dict[int, str]:
    """The progress list as a learner reads it: number -> the status in brackets."""
    listing = subprocess.run(
        course.listing(), env=environment(home), capture_output=True, text=True, timeout=60
    )
    found: dict[int, str] = {}
    rows = listing.stdout.split("\n")  # what a terminal ends lines at
    for index, row in enumerate(rows):
        match = re.match(r"\s{0,3}(\d+)\. ", row)
        if match:
            text = " ".join(rows[index : index + 2]) if "]" not in row else row
            status = re.search(r"\[([^\]]*)\]", text)
            found[int(match[1])] = status[1] if status else ""
    return found


def numbers(course: Course) -> list[int]:
    """Every lesson or challenge the list shows."""
    with tempfile.TemporaryDirectory(prefix="smtp-tutor-robot-") as home:
        return sorted(statuses(course, Path(home)))


class Robot:
    """One run: a lesson or a challenge, with colour or with --plain, in its own data home."""

    def __init__(
        self,
        course: Course,
        number: int,
        *,
        plain: bool,
        wait: float = 60.0,
        time_limit: float = 600.0,
    ) -> None:
        self.course, self.number, self.plain = course, number, plain
        self.wait, self.time_limit = wait, time_limit

    def run(self) -> Outcome:
        with tempfile.TemporaryDirectory(prefix="smtp-tutor-robot-") as name:
            home = Path(name)
            program = PtyProgram(
                self.course.play(self.number, self.plain),
                environment(home),
                rows=ROWS,
                columns=COLUMNS,
            )
            try:
                return self._follow(program, home)
            finally:
                program.close()

    def _outcome(self, failure: str = "", program: PtyProgram | None = None) -> Outcome:
        screen: tuple[str, ...] = ()
        if program is not None:
            rows: list[str] = []
            for row in (row.rstrip() for row in program.rows()):
                if row or (rows and rows[-1]):  # blank runs (above the toolbar) as one
                    rows.append(row)
            screen = tuple(rows[:-1] if rows and not rows[-1] else rows)
        return Outcome(self.course.kind, self.number, self.plain, failure, screen)

    def _follow(self, program: PtyProgram, home: Path) -> Outcome:
        plan = Plan()
        deadline = time.monotonic() + self.time_limit
        answered_row = -1  # where the last prompt answered was, counted from the scrollback
        while True:
            reading = self._next_prompt(program, answered_row, deadline)
            if reading is None:
                break
            if isinstance(reading, Failure):
                return self._outcome(self._where(program) + reading.reason, program)
            decision = plan.decide(reading)
            if isinstance(decision, Failure):
                return self._outcome(
                    f"at {reading.step or 'the start'}: {decision.reason}", program
                )
            answered_row = len(program.screen.scrollback) + program.cursor()[0]
            program.type_line(decision)
        status = program.exit_status(self.wait)
        return self._verdict(program, home, status)

    def _read(self, program: PtyProgram) -> contract.Reading:
        row, column = program.cursor()
        return contract.read(program.screen.scrollback, program.rows(), row, column)

    def _where(self, program: PtyProgram) -> str:
        step = self._read(program).step
        return f"at {step}: " if step else "at the start: "

    def _next_prompt(
        self, program: PtyProgram, answered_row: int, deadline: float
    ) -> contract.Reading | Failure | None:
        """Wait for a fresh prompt (below the one answered last) and a quiet moment;
        None when the program ended."""
        waited_until = min(deadline, time.monotonic() + self.wait)
        while True:
            if program.read(0.05):
                continue
            if program.eof:
                return None
            now = time.monotonic()
            row = len(program.screen.scrollback) + program.cursor()[0]
            if row > answered_row and now - program.last_output >= 0.05:
                reading = self._read(program)
                if reading.prompt:
                    return reading
            if now >= waited_until:
                if now >= deadline:
                    return Failure(f"the run took longer than {self.time_limit:.0f} s")
                return Failure(f"nothing to answer for {self.wait:.0f} s")

    def _verdict(self, program: PtyProgram, home: Path, status: int | None) -> Outcome:
        reading = self._read(program)
        where = f"after {reading.step}: " if reading.step else ""
        if status is None:
            return self._outcome(f"{where}the program did not exit", program)
        if status != 0:
            return self._outcome(f"{where}exit status {status}", program)
        if not reading.ended:
            return self._outcome(f"{where}no `End of {self.course.kind}` on screen", program)
        earned = statuses(self.course, home).get(self.number, "")
        if earned not in EARNED[self.course.kind]:
            wanted = EARNED[self.course.kind][0]
            return self._outcome(f"progress shows [{earned}], not [{wanted}]", program)
        return self._outcome()
