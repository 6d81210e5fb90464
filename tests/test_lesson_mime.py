"""Lesson 14 (MIME and 8-bit) as a learner takes it, in a pseudo-terminal: the /qp and /b64
helpers show lines and send nothing, the hand-made multipart's MIME tree is shown once
stored, and the 8-bit and SMTPUTF8 steps get the replies the lesson says."""

from __future__ import annotations

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


def test_lesson_14_with_the_encoding_helpers(tutor_home: Path) -> None:
    [lesson] = [lesson for lesson in load_all() if lesson.id == "mime"]
    session = tutor("learn", "mime")
    session.type("/qp café")
    session.expect(r"quoted-printable of \"café\" \(5 octets of UTF-8\), 1 line to type:")
    session.expect(r"\ncaf=C3=A9\n")
    session.expect(r"Nothing was sent")
    session.type("/b64 hi")
    session.expect(r"\naGk=\n")
    session.type("/state")
    session.expect(r"not greeted")  # the helpers sent nothing
    for step in lesson.steps:
        if step.predict:
            session.type("5", prompt=r"Predict first")
        answer = canonical(step)
        if answer.action == "advance":
            session.type("", prompt=r"Press Enter to continue")
        for line in answer.lines if answer.action == "lines" else ():
            session.type(line)
        if step.id == "multipart":
            session.expect(r"MIME structure")
            session.expect(r"1\.1\.1 text/plain; charset=utf-8  quoted-printable")
            session.expect(r"│ Hello café")
            session.expect(r"1\.2 text/plain  base64  4 bytes, 2 decoded  file note\.txt")
        if step.id == "seven-bit":
            session.expect(r"250 2\.0\.0 OK")
        if step.id == "utf8-refused":
            session.expect(r"553 5\.6\.7")
        if step.id == "utf8-send":
            session.expect(r"with UTF8SMTP")
    session.type("5.6.7", prompt=r"answer>")
    session.type("jörg@sender.example", prompt=r"answer>")
    session.type("I am not sure", prompt=r"answer>")
    session.expect(r"End of lesson \d+")
    assert session.finish() == 0
    stored = sorted((tutor_home / "Maildir" / "you" / "new").iterdir())
    assert len(stored) == 4
    eight_bit = [path.read_bytes() for path in stored if b"(7BIT)" in path.read_bytes()]
    assert eight_bit and b"caf\xc3\xa9 (7BIT)" in eight_bit[0]  # stored byte for byte
