"""Students name themselves with NOOP student=NAME; names become safe file names
(tutor/smtp/student.py, docs/teaching.md)."""

from __future__ import annotations

import os
import queue
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support import RawClient
from tutor.server.runner import TeachingServer
from tutor.smtp.events import Exchange, StudentNamed
from tutor.smtp.student import NAME_LIMIT, file_safe, noop_student


@pytest.mark.parametrize(
    ("argument", "name"),
    [
        ("student=Ada", "Ada"),
        ("STUDENT=Ada Lovelace", "Ada Lovelace"),
        ("student=  Zoë   O'Neil ", "Zoë O'Neil"),
        ("student=x", "x"),
    ],
)
def test_a_student_argument_gives_the_name(argument: str, name: str) -> None:
    student = noop_student(argument)
    assert student is not None and student.name == name and student.problem is None


@pytest.mark.parametrize(
    ("argument", "problem"),
    [
        ("student=", "no name after student="),
        ("student=" + "a" * (NAME_LIMIT + 1), f"a name of at most {NAME_LIMIT} characters"),
        ("student=<script>", "letters, digits, spaces and . - _ ' only"),
        ("student=../../etc", "letters, digits, spaces and . - _ ' only"),
        ("student=a\x1b[2Jb", "letters, digits, spaces and . - _ ' only"),
    ],
)
def test_a_bad_name_is_refused_with_the_reason(argument: str, problem: str) -> None:
    student = noop_student(argument)
    assert student is not None and student.name is None and student.problem == problem


@pytest.mark.parametrize("argument", [None, "", "are you there", "students=Ada", "x student=A"])
def test_any_other_argument_is_ignored(argument: str | None) -> None:
    assert noop_student(argument) is None


@given(st.text(min_size=1, max_size=60))
def test_any_name_becomes_one_safe_path_component(name: str) -> None:
    safe = file_safe(name)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", safe), safe
    assert os.path.basename(safe) == safe and safe not in (".", "..")
    assert len(safe) <= NAME_LIMIT + 7


def test_names_that_look_alike_keep_apart_and_plain_ones_stay_as_they_are() -> None:
    assert file_safe("ada") == "ada"
    assert file_safe("Ada.L_2-b") == "Ada.L_2-b"
    assert len({file_safe("Zoë"), file_safe("Zoe"), file_safe("Zo-e"), file_safe("Zo e")}) == 4
    assert file_safe("NUL").startswith("student-NUL-")
    assert file_safe("..").startswith("student-")


def test_noop_student_names_the_session_on_a_real_server(server: TeachingServer) -> None:
    with RawClient(server.address) as client:
        assert client.code("EHLO client.example").startswith("250 ")
        assert (
            client.code("NOOP student=Ada Lovelace")
            == "250 2.0.0 OK, you are Ada Lovelace in this class"
        )
        assert client.code("NOOP student=<b>") == (
            "250 2.0.0 OK, but no name taken: letters, digits, spaces and . - _ ' only"
        )
        assert client.code("NOOP student=Zoë") == "250 2.0.0 OK, you are Zo? in this class"
        assert client.code("NOOP are you there") == "250 2.0.0 OK"
        assert client.code("QUIT").startswith("221 ")
    seen = []
    while True:
        try:
            event = server.capture.events.get(timeout=2)
        except queue.Empty:
            break
        if isinstance(event, StudentNamed):
            seen.append(event.name)
        elif isinstance(event, Exchange) and event.command.startswith("NOOP student"):
            seen.append(event.command)
    # Each name comes after the NOOP that gave it, in wire order; a refused one gives none.
    assert seen == [
        "NOOP student=Ada Lovelace",
        "Ada Lovelace",
        "NOOP student=<b>",
        "NOOP student=Zoë",
        "Zoë",
    ]
