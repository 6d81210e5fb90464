"""`learn N --class HOST:PORT --name NAME`: the lesson runs on the student's own server,
and each finished step is reported, in a real SMTP session, to the teacher's server,
whose roster (`smtp-tutor class`) then shows the student (docs/teaching.md, "Students at
their own machine")."""

from __future__ import annotations

import json
import mailbox
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serve_process import LiveProcess
from tests.support import SEED_LINES, RawClient, run_cli
from tests.test_classroom import wait_for_sessions
from tests.test_coach import READY, SEED_CRLF, run_client
from tutor.classroom import periods
from tutor.classroom.report import Report, read
from tutor.engine.class_report import (
    ClassTarget,
    deliver,
    parse_address,
    sender_address,
    teacher_address,
)
from tutor.errors import UsageError
from tutor.server.persona import DEFAULT_MAILBOXES, Persona
from tutor.server.runner import TeachingServer
from tutor.smtp.wire import Reply, ReplyLine

TEACHER_PERSONA = Persona(mailboxes=(*DEFAULT_MAILBOXES, "teacher"))
SEED = [*SEED_LINES, "quit"]
# Lesson 1 with one mistake on the way: an unknown mailbox (550) before the right one.
WITH_A_MISTAKE = [*SEED[:2], "rcpt to:<nobody@tutor.test>", *SEED[2:]]
CHALLENGE_1 = [
    "helo a.b.c",
    "mail from:<you@tutor.test>",
    "rcpt to:<alice@tutor.test>",
    "data",
    "To: bob@tutor.test",
    "Subject: hi",
    "",
    "hello",
    ".",
    "quit",
]


@pytest.fixture
def teacher(tmp_path: Path) -> Iterator[TeachingServer]:
    """The teacher's server as `serve` runs it for a class: a period begun, a teacher
    mailbox, every session kept on disk."""
    root = tmp_path / "teacher"
    periods.begin(root)
    server = TeachingServer(root, TEACHER_PERSONA, save_every_session=True).start()
    yield server
    server.stop()


def script(tmp_path: Path, lines: list[str], name: str = "script.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def class_args(server: TeachingServer, name: str) -> list[str]:
    host, port = server.address
    return ["--class", f"{host}:{port}", "--name", name]


def roster_after(server: TeachingServer, sessions: int) -> dict[str, Any]:
    """`smtp-tutor class --json` once the teacher's server has kept these sessions and
    stopped."""
    wait_for_sessions(server.maildir, sessions)
    server.stop()
    result = run_cli("class", "--maildir", str(server.maildir), "--json")
    assert result.returncode == 0, result.stderr
    return {student["name"]: student for student in json.loads(result.stdout)["students"]}


def reports_in(root: Path) -> list[Report]:
    found = [read(message.as_bytes()) for message in mailbox.Maildir(root / "teacher").values()]
    assert all(report is not None for report in found)
    return sorted((r for r in found if r is not None), key=lambda r: (r.at, r.step or 0))


def report_lines(output: str) -> list[str]:
    """The lines that show a report's session (`report →` in colour, `report to` plain)."""
    return [line for line in output.splitlines() if line.startswith(("report to ", "report → "))]


# --- a lesson, reported ------------------------------------------------------------------------


def test_each_finished_step_and_the_end_reach_the_teachers_roster(
    tutor_home: Path, tmp_path: Path, teacher: TeachingServer
) -> None:
    lines = script(tmp_path, WITH_A_MISTAKE)
    result = run_cli("learn", "1", *class_args(teacher, "Ada"), "--script", str(lines), "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lesson 1 done." in result.stdout
    host, port = teacher.address
    sent = report_lines(result.stdout)
    assert sent, result.stdout
    for line in sent:  # the report's own SMTP session, in brief
        assert line.startswith(
            f"report to {host}:{port}: EHLO 250 · NOOP student=Ada 250 · MAIL 250 · RCPT 250 · "
            "DATA 354 · . 250 2.0.0 OK id="
        ), line
        assert line.endswith(" · QUIT 221")
    assert "warning" not in result.stdout + result.stderr

    reports = reports_in(teacher.maildir)
    assert len(reports) == len(sent)
    steps = [r for r in reports if r.kind == "step"]
    numbers = [r.step or 0 for r in steps]
    assert numbers == sorted(set(numbers))  # each step once, in order
    assert steps[0].step == 2 and steps[0].steps == 11  # connected: now at step 2
    assert any(r.title == "RCPT TO" for r in steps)
    end = reports[-1]
    assert (end.kind, end.lesson, end.status) == ("lesson", 1, "done")
    assert (end.messages, end.errors) == (1, 1)  # the seed message; the 550 for nobody@

    roster = roster_after(teacher, len(sent))
    assert set(roster) == {"Ada"}  # the report sessions named Ada: no row for their EHLO name
    ada = roster["Ada"]
    assert ada["lessons"] == {"1": "done"} and ada["current_step"] == ""
    assert (ada["messages"], ada["errors"]) == (1, 1)


def test_a_lesson_left_halfway_shows_its_current_step(
    tutor_home: Path, tmp_path: Path, teacher: TeachingServer
) -> None:
    lines = script(tmp_path, SEED[:3])  # HELO, MAIL and RCPT, then the input ends
    result = run_cli("learn", "1", *class_args(teacher, "Grace Hopper"), "--script", str(lines))
    assert result.returncode == 1  # left unfinished
    sent = report_lines(result.stdout)
    assert len(sent) >= 3
    grace = roster_after(teacher, len(sent))["Grace Hopper"]
    assert grace["lessons"] == {"1": "in progress"}
    assert grace["current_step"] == "lesson 1, step 5/11: DATA"  # RCPT done: now at DATA


def test_a_challenge_reports_its_solve(
    tutor_home: Path, tmp_path: Path, teacher: TeachingServer
) -> None:
    lines = script(tmp_path, CHALLENGE_1)
    result = run_cli(
        "challenge", "play", "1", *class_args(teacher, "Zoë"), "--script", str(lines), "--plain"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "NOOP student=Zoë 250" in result.stdout
    roster = roster_after(teacher, len(report_lines(result.stdout)))
    zoe = roster["Zoë"]  # the name as typed, accents kept
    assert zoe["challenges"] == {"1": "done"} and zoe["lessons"] == {}
    assert zoe["messages"] == 1


# --- when the teacher's server is not there ----------------------------------------------------


def test_a_teacher_server_that_is_down_costs_one_warning_and_the_lesson_goes_on(
    tutor_home: Path, tmp_path: Path
) -> None:
    # A bound socket that does not listen: connecting to it is refused, and no other
    # program can take the port meanwhile.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        lines = script(tmp_path, SEED)
        started = time.monotonic()
        result = run_cli(
            "learn",
            "1",
            "--class",
            f"127.0.0.1:{port}",
            "--name",
            "Ada",
            "--script",
            str(lines),
            "--plain",
        )
        took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lesson 1 done." in result.stdout
    warnings = [line for line in result.stdout.splitlines() if "warning" in line]
    assert warnings == [
        f"warning: the progress report did not reach the teacher's server at 127.0.0.1:{port} "
        f"(nothing is listening on 127.0.0.1:{port}); the lesson goes on, and later reports "
        "will try again"
    ]
    assert not report_lines(result.stdout)
    assert took < 30  # a refused connection costs nothing: no report waited out a timeout
    assert result.stdout.count("the end of this lesson is kept on this machine") == 1

    # The teacher's server is up at last: the next lesson's first report is preceded by
    # the lesson-1 end that was kept, and the roster shows lesson 1 done.
    root = tmp_path / "teacher"
    periods.begin(root)
    server = TeachingServer(root, TEACHER_PERSONA, port=port, save_every_session=True).start()
    try:
        partial = script(tmp_path, SEED[:1], name="partial.txt")  # HELO, then the input ends
        again = run_cli("learn", "2", *class_args(server, "Ada"), "--script", str(partial))
        sent = report_lines(again.stdout)
        assert len(sent) >= 2, again.stdout
        roster = roster_after(server, len(sent))
    finally:
        server.stop()
    assert roster["Ada"]["lessons"] == {"1": "done", "2": "in progress"}
    assert not list((tutor_home / "class-outbox").glob("*.json"))  # sent: not kept any more


def test_a_server_that_refuses_the_report_is_named_with_its_reply(tmp_path: Path) -> None:
    """A teaching server without the teacher mailbox (an old serve) refuses RCPT."""
    server = TeachingServer(tmp_path / "Maildir", Persona()).start()
    try:
        host, port = server.address
        report = Report("Ada", "step", 1, None, 2, 11, "HELO", "in progress", 0, 0, time.time())
        delivery = deliver(ClassTarget(host, port, "Ada"), report)
    finally:
        server.stop()
    assert not delivery.delivered
    assert [(e.label, e.code) for e in delivery.exchanges] == [
        ("EHLO", 250),
        ("NOOP student=Ada", 250),
        ("MAIL", 250),
        ("RCPT", 550),
    ]
    assert delivery.problem.startswith("the teacher's server answered RCPT with 550 5.1.1")


# --- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--class", "127.0.0.1:2525"], "--class needs --name NAME"),
        (["--name", "Ada"], "--name is your name on a class's roster: add --class"),
        (["--class", "127.0.0.1", "--name", "Ada"], "expected HOST:PORT"),
        (["--class", "127.0.0.1:99999", "--name", "Ada"], "expected HOST:PORT"),
        (["--class", "::1:2525", "--name", "Ada"], "[ADDRESS]:PORT"),
        (["--class", "127.0.0.1:2525", "--name", "<b>"], "letters, digits, spaces"),
        (["--class", "127.0.0.1:2525", "--name", "x" * 41], "at most 40 characters"),
    ],
)
def test_class_and_name_are_checked_in_one_line(
    tutor_home: Path, args: list[str], message: str
) -> None:
    # Challenges share the check (one case, below): each case costs a lesson server's start.
    command = ["challenge", "play", "1"] if "<b>" in args else ["learn", "1"]
    result = run_cli(*command, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_addresses_the_report_uses() -> None:
    assert parse_address("192.168.1.10:2525") == ("192.168.1.10", 2525)
    assert parse_address("[::1]:2525") == ("::1", 2525)
    assert parse_address("teacher.local:25") == ("teacher.local", 25)
    with pytest.raises(UsageError):
        parse_address("[::1]")
    assert sender_address("Ada") == "Ada@student.invalid"
    assert sender_address("A..B") == "A.B@student.invalid"  # a dot-atom: no two dots in a row
    assert sender_address("Zoë").startswith("Zoe-")
    greeting = Reply((ReplyLine(220, True, "mx.tutor.test ESMTP smtp-tutor ready"),))
    assert teacher_address(greeting) == "teacher@tutor.test"
    plain = Reply((ReplyLine(220, True, "school.example ESMTP"),))
    assert teacher_address(plain) == "teacher@school.example"
    nameless = Reply((ReplyLine(220, True, "<b>hi</b>"),))
    assert teacher_address(nameless) is None


# --- coach mode reports too --------------------------------------------------------------------


def test_coach_mode_reports_the_steps_done_in_telnet(teacher: TeachingServer) -> None:
    coach = LiveProcess(
        ["learn", "1", "--telnet", "--port", "0", "--plain", *class_args(teacher, "Ada")], READY
    )
    try:
        run_client(coach.port, SEED_CRLF)
        coach.wait_for(rb"End of lesson 1", timeout=60)
        assert coach.proc.wait(timeout=30) == 0
    finally:
        coach.kill()
    sent = report_lines(coach.text)
    assert sent and all(line.endswith(" · QUIT 221") for line in sent)
    ada = roster_after(teacher, len(sent))["Ada"]
    assert ada["lessons"] == {"1": "done"}


# --- a class ----------------------------------------------------------------------------------

LEARNERS = ["Ada", "Barbara Liskov", "Claude", "Dennis", "Edsger"]
AT_TELNET = {"Frances": 0, "Grace": 1, "Hedy": 2, "Ida": 0, "Jean": 1}  # name: mistakes


def telnet_student(address: tuple[str, int], name: str, mistakes: int) -> None:
    """A student at telnet: names themselves, makes a few mistakes, sends one message."""
    with RawClient(address) as client:
        assert client.code(f"EHLO pc-{name.lower()}.example").startswith("250 ")
        assert client.code(f"NOOP student={name}").startswith("250 2.0.0 OK, you are")
        assert client.code("MAIL FROM:<me@pc.example>").startswith("250 ")
        for _ in range(mistakes):
            assert client.code("RCPT TO:<nobody@tutor.test>").startswith("550 ")
        assert client.code("RCPT TO:<you@tutor.test>").startswith("250 ")
        assert client.code("DATA").startswith("354 ")
        assert client.code(f"Subject: from {name}\r\n\r\nhello\r\n.").startswith("250 ")
        assert client.code("QUIT").startswith("221 ")
