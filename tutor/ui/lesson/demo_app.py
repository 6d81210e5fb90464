"""`smtp-tutor demo LESSON`: the lesson played by the tutor itself, for a class to watch.

Every canonical command really goes to the server, typed out at a readable pace. Each
step is held for `delay` seconds before the tutor types (the class reads it) and each
reply for `delay` seconds after it arrives (the class reads that too, before the next
command or, with --present, the next screen replaces it). On a terminal: space pauses
and resumes, n (or →) goes on at once, q stops. Without a terminal, or with --delay 0,
it runs straight through.
"""

from __future__ import annotations

import select
import sys
import time
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text

from tutor.engine import questions
from tutor.engine.driver import LessonDriver, Turn
from tutor.ui.common import lesson_view as view
from tutor.ui.common.safe import untrusted
from tutor.ui.lesson.lesson_app import LessonScreen

TYPING = 0.03  # seconds per character of the typing effect


@dataclass
class DemoScreen(LessonScreen):
    delay: float = 1.5
    interactive: bool = False  # keys and the typing effect only on a real terminal
    asks_predictions: ClassVar[bool] = False  # nobody is typing
    pauses_in_present: ClassVar[bool] = False  # the demo's own holds pace it

    def _step(self, driver: LessonDriver) -> bool:
        step = self.run.step
        if self.quit_requested:  # q while a reply was held
            return False
        self._intro(step)
        if not self._pause():
            return False
        before = self.run.index
        self._perform(driver, step)
        if self.run.index == before and not self.run.finished:
            # The canonical answer did not complete the step (a lesson bug): say so, go on.
            self.console.print(
                Text("(the demo could not complete this step; moving on)", style="red")
            )
            self.run.skip()
        return True

    def _stopped(self) -> None:
        """A demo keeps no progress: say where it stopped and how to see it all."""
        self.console.print(
            Text(
                f"Demo stopped at step {self.run.index + 1}. "
                f"`smtp-tutor demo {self.lesson.number}` plays it again from the start.",
                style="bold",
            )
        )

    def _show_turn(self, turn: Turn) -> None:
        """A reply stays on screen for the delay before anything replaces it."""
        super()._show_turn(turn)
        self._hold_if_replied(turn)

    def _show_library(self, turn: Turn) -> None:
        super()._show_library(turn)
        self._hold_if_replied(turn)

    def _hold_if_replied(self, turn: Turn) -> None:
        replied = any(exchange.reply is not None for exchange in turn.exchanges)
        if replied and not self.quit_requested and not self._pause():
            self.quit_requested = True

    def _echo_typed(self, prompt: str, line: str, how: str = "typed by the tutor") -> None:
        """The tutor "types" the line: character by character on a terminal."""
        if not (self.interactive and self.delay > 0):
            super()._echo_typed(prompt, line, how)
            return
        self.console.print(Text(prompt, style="bold"), end="")
        for char in untrusted(line).plain:
            self.console.print(char, end="", markup=False, highlight=False)
            self.console.file.flush()
            time.sleep(TYPING)
        self.console.print(Text(f"   ({how})", style="dim"))

    def _ask_questions(self) -> None:
        """In a demo the answers are shown, read off the session just played."""
        for number, question in enumerate(self.lesson.questions, start=1):
            answer = questions.fact(question.fact, self.events)
            self.console.print(view.question_view(number, question.ask))
            self.console.print(
                untrusted(f"  answer: {answer}  ({questions.WHERE[question.fact]})", "green")
            )

    def _pause(self) -> bool:
        """Hold the screen for `delay` seconds; space pauses, n goes on, q stops (False)."""
        if self.delay <= 0:
            return True
        if not self.interactive or sys.platform == "win32":  # select() needs POSIX for stdin
            time.sleep(self.delay)
            return True
        from tutor.ui.common.keys import TerminalKeys

        keys = TerminalKeys()
        paused = False
        deadline = time.monotonic() + self.delay
        with keys.raw():
            while paused or time.monotonic() < deadline:
                timeout = 0.2 if paused else max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select([sys.stdin], [], [], timeout)
                for key in keys.read() if ready else []:
                    if key in ("q", "c-c", "escape"):
                        return False
                    if key in ("n", "right", "enter"):
                        return True
                    if key == " ":
                        paused = not paused
                        self.console.print(
                            Text(
                                "paused (space resumes, n steps on)" if paused else "resumed",
                                style="dim",
                            )
                        )
        return True
