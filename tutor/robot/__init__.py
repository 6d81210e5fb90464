"""The learner robot: holds lessons and challenges to the screen contract (docs/lessons.md).

It imports nothing else from `tutor` and reads no lesson file: its only input is the
screen of the real `smtp-tutor learn N` / `challenge play N` in a pseudo-terminal, read
through a terminal emulator (pyte). POSIX only.
"""

from __future__ import annotations

from tutor.robot.learner import Course, Outcome, Robot, numbers

__all__ = ["Course", "Outcome", "Robot", "numbers"]
