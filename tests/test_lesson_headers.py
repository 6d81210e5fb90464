"""Lesson 15 (the headers that matter) as a learner takes it, in a pseudo-terminal: after
AUTH the stored copy of the message with a Bcc: line has none, bob still has a copy, the
server's Date: and Message-ID: are shown in it, and the questions take the answers read
from the learner's own session."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.pty_session import PtySession, tutor_in_pty
from tutor.engine.answers import canonical
from tutor.engine.loader import load_all

pexpect = pytest.importorskip("pexpect") if sys.platform != "win32" else None

pytestmark = [pytest.mark.posix, pytest.mark.slow]


def tutor(*args: str) -> PtySession:
    return tutor_in_pty(*args)


def stored(home: Path, mailbox: str) -> list[str]:
    folder = home / "Maildir" / mailbox / "new"
    return [path.read_text() for path in sorted(folder.iterdir(), key=os.path.getmtime)]


def test_lesson_15_shows_the_submission_fixups(tutor_home: Path) -> None:
    [lesson] = [lesson for lesson in load_all() if lesson.id == "headers"]
    session = tutor("learn", "headers")
    for step in lesson.steps:
        answer = canonical(step)
        if answer.action == "advance":
            session.type("", prompt=r"Press Enter to continue")
        for line in answer.lines if answer.action == "lines" else ():
            session.type(line)
        if step.id == "message":
            session.expect(r"Delivered to: alice \(alice@tutor\.test\), bob \(bob@tutor\.test\)")
            session.expect(r"Date: \w{3}, ")
            session.expect(r"Message-ID: <\d{14}\.\w+@mx\.tutor\.test>")
            session.expect(r"line is gone from both, yet bob has a copy")
    session.expect(r"answer>")
    newsletter = stored(tutor_home, "alice")[-1]
    queue_id = re.search(r"with ESMTPSA id (\w+)", newsletter)
    assert queue_id, newsletter
    session.child.sendline(queue_id.group(1))
    session.type("1", prompt=r"answer>")
    session.expect(r"End of lesson \d+")
    assert session.finish() == 0

    [bobs] = stored(tutor_home, "bob")
    header = bobs.split("\n\n", 1)[0]
    assert "Bcc:" not in header and "Reply-To: Help Desk <postmaster@tutor.test>" in header
    assert re.search(r"^Message-ID: <\d{14}\.\w+@mx\.tutor\.test>$", header, re.M)
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in newsletter
    assert "Message-ID: <" in newsletter and f".{queue_id.group(1)}@" in newsletter
