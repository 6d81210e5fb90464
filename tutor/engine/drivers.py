"""Which driver a lesson needs: the simulated internet's, or one with its own server.

Apart from driver.py so that a lesson that is not in the world never imports the world's
code (dnspython and the sending side): lesson 1's first prompt comes sooner.
"""

from __future__ import annotations

from pathlib import Path

from tutor.engine.driver import LessonDriver, LessonServer
from tutor.engine.model import Lesson
from tutor.engine.runner import LessonRun


def driver_for(
    lesson: Lesson, run: LessonRun, maildir: Path, server: LessonServer | None = None
) -> LessonDriver:
    if lesson.world:
        from tutor.engine.world_driver import WorldLessonDriver

        return WorldLessonDriver(lesson, run, maildir, server=server)
    return LessonDriver(lesson, run, maildir, server=server)
