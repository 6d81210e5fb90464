"""The class roster: who each student is, what their reports say, periods, and
`smtp-tutor class` read from disk alone (docs/teaching.md)."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import RawClient, run_cli
from tutor.classroom import periods
from tutor.classroom.identity import student_of
from tutor.classroom.report import REPORT_TYPE, Report, compose, read
from tutor.classroom.roster import SessionEvents, build
from tutor.server.persona import DEFAULT_MAILBOXES, Persona
from tutor.server.runner import TeachingServer
from tutor.smtp.events import (
    Authenticated,
    Copy,
    Exchange,
    MessageStored,
    SessionClosed,
    SessionOpened,
    StudentNamed,
)
from tutor.smtp.student import NameSource

TEACHER_PERSONA = Persona(mailboxes=(*DEFAULT_MAILBOXES, "teacher"))


def opened(session: int = 1, host: str = "192.0.2.7") -> SessionOpened:
    return SessionOpened(session, host, 40000 + session, 25)


def exchange(command: str, reply: str, kind: Any = "command", session: int = 1) -> Exchange:
    return Exchange(session, kind, command.encode() + b"\r\n", (reply,))


def stored(folder: str, key: str = "K1", session: int = 1) -> MessageStored:
    copy = Copy(folder, key, f"{folder}@tutor.test")
    return MessageStored(
        session, "Q1", "s@example.org", (copy.recipient,), (copy,), "", "", "", "", 10
    )


def report(**changes: Any) -> Report:
    fields: dict[str, Any] = dict(
        student="Ada",
        kind="step",
        lesson=1,
        challenge=None,
        step=2,
        steps=9,
        title="Say hello",
        status="in progress",
        messages=1,
        errors=0,
        at=1_764_500_000.0,
    )
    fields.update(changes)
    return Report(**fields)


# --- who a session is ---------------------------------------------------------------------------


def test_a_session_is_named_by_noop_then_auth_then_helo_then_address() -> None:
    base = [opened(), exchange("EHLO laptop.example", "250 mx.tutor.test")]
    assert student_of(base[:1]).source == NameSource.ADDRESS
    assert student_of(base) == student_of(base[::-1])
    assert student_of(base).name == "laptop.example"
    logged_in = [*base, Authenticated(1, "PLAIN", "alice", True)]
    assert student_of(logged_in).name == "alice"
    failed = [*base, Authenticated(1, "PLAIN", "mallory", False)]
    assert student_of(failed).name == "laptop.example"
    named = [*logged_in, StudentNamed(1, "Alice B")]
    assert (student_of(named).name, student_of(named).source) == ("Alice B", NameSource.NOOP)


def test_a_refused_greeting_names_nobody_and_wire_text_is_made_visible() -> None:
    events = [opened(), exchange("HELO", "501 5.5.4 Syntax: HELO hostname")]
    assert student_of(events).name == "192.0.2.7"
    hostile = [opened(), exchange("EHLO \x1b[2J\u202eevil", "250 ok")]
    name = student_of(hostile).name
    assert "\x1b" not in name and "\u202e" not in name


# --- reports ------------------------------------------------------------------------------------


def test_a_report_reads_back_as_it_was_sent() -> None:
    sent = report(kind="lesson", status="done", step=None, steps=None)
    raw = compose(sent, "ada@student.example", "teacher@tutor.test")
    assert read(raw) == sent
    text = raw.decode()
    assert f"Content-Type: {REPORT_TYPE}" in text
    assert "Ada: lesson 1 done." in text  # the readable part, for whoever opens the mailbox


@pytest.mark.parametrize(
    "change",
    [
        {"student": "<script>"},
        {"student": ""},
        {"kind": "quiz"},
        {"status": "perfect"},
        {"lesson": True},
        {"lesson": None, "challenge": None},
        {"lesson": 1, "challenge": 2},
        {"version": 2},
        {"format": "other"},
    ],
)
def test_a_report_that_is_not_one_is_ignored(change: dict[str, Any]) -> None:
    record = {"format": "smtp-tutor-report", "version": 1, **report().__dict__}
    assert read(single_part(record)) == report(), "the well-formed one is read"
    assert read(single_part({**record, **change})) is None


def single_part(record: dict[str, Any]) -> bytes:
    """A message whose one part is a report, as any client could send it."""
    return b"Content-Type: " + REPORT_TYPE.encode() + b"\r\n\r\n" + json.dumps(record).encode()


def test_a_reported_title_cannot_act_on_a_terminal() -> None:
    record = {"format": "smtp-tutor-report", "version": 1, **report().__dict__}
    read_back = read(single_part({**record, "title": "\x1b[2J\u202eevil"}))
    assert read_back is not None
    assert "\x1b" not in read_back.title and "\u202e" not in read_back.title


def test_messages_without_a_report_part_are_no_reports() -> None:
    assert read(b"Subject: hi\r\n\r\nbody\r\n") is None
    assert read(b"\xff\xfe garbage") is None
    assert read(b"Content-Type: " + REPORT_TYPE.encode() + b"\r\n\r\n" + b"[" * 5000) is None


# --- the roster ---------------------------------------------------------------------------------


def test_the_roster_counts_messages_errors_and_reports_per_student() -> None:
    files = {
        "R1": compose(report(step=2), "ada@x.example", "teacher@tutor.test"),
        "R2": compose(
            report(kind="lesson", status="done", step=None, messages=3, errors=2),
            "ada@x.example",
            "teacher@tutor.test",
        ),
        "R3": compose(report(step=1, lesson=2, title=""), "ada@x.example", "teacher@tutor.test"),
    }
    telnet = SessionEvents(
        "run",
        1,
        (
            opened(1),
            exchange("EHLO grace.example", "250 mx", session=1),
            exchange("NOOP student=Grace", "250 2.0.0 OK", session=1),
            StudentNamed(1, "Grace"),
            exchange("RCPT TO:<x@y>", "503 5.5.1 Bad sequence", session=1),
            exchange("MAIL FROM:<g@x.example>", "250 ok", session=1),
            exchange("RCPT TO:<you@tutor.test>", "250 ok", session=1),
            stored("you", session=1),
            Exchange(1, "notice", b"", ("421 4.3.2 shutting down",)),
            SessionClosed(1, "server"),
        ),
    )
    reports = SessionEvents(
        "run",
        2,
        (
            opened(2),
            StudentNamed(2, "Ada"),
            stored("teacher", "R1", session=2),
            stored("teacher", "R2", session=2),
            stored("teacher", "R3", session=2),
        ),
    )
    rows = build([reports, telnet], lambda copy: files.get(copy.key))

    assert [row.as_json() for row in rows] == [
        {
            "name": "Ada",
            "lessons": {"1": "done", "2": "in progress"},
            "challenges": {},
            "current_step": "lesson 2, step 1/9",
            "messages": 3 + 1,  # lesson 1's last report said 3; lesson 2's says 1
            "errors": 2,
            "last_seen": rows[0].as_json()["last_seen"],
        },
        {
            "name": "Grace",
            "lessons": {},
            "challenges": {},
            "current_step": "",
            "messages": 1,
            "errors": 1,  # the 503; the server's own 421 at shutdown is not the student's
            "last_seen": rows[1].as_json()["last_seen"],
        },
    ]


# --- periods ------------------------------------------------------------------------------------


def test_periods_begin_in_order_and_never_overwrite(tmp_path: Path) -> None:
    with pytest.raises(periods.PeriodError, match="no period yet"):
        periods.find(tmp_path, None)
    first = periods.begin(tmp_path, now=1_764_500_000.0)
    again = periods.begin(tmp_path, now=1_764_500_000.0)  # the same second
    later = periods.begin(tmp_path, now=1_764_503_600.0)
    assert again.name == first.name + "-2"
    assert periods.current(tmp_path) == later
    assert periods.find(tmp_path, first.name) == (first, again.start)
    assert periods.find(tmp_path, None) == (later, None)
    with pytest.raises(periods.PeriodError, match="no period 'nope'"):
        periods.find(tmp_path, "nope")
    assert periods.current_or_new(tmp_path) == later


# --- smtp-tutor class, from disk ----------------------------------------------------------------


def send_report(server: TeachingServer, sent: Report) -> None:
    raw = compose(sent, "ada@student.example", "teacher@tutor.test")
    with RawClient(server.address) as client:
        assert client.code("EHLO ada-laptop.example").startswith("250 ")
        assert client.code(f"NOOP student={sent.student}").startswith("250 2.0.0 OK, you are")
        assert client.code("MAIL FROM:<ada@student.example>").startswith("250 ")
        assert client.code("RCPT TO:<teacher@tutor.test>").startswith("250 ")
        assert client.code("DATA").startswith("354 ")
        assert client.code(raw.replace(b"\r\n.", b"\r\n..") + b".").startswith("250 ")
        assert client.code("QUIT").startswith("221 ")


def telnet_student(server: TeachingServer, name: str) -> None:
    with RawClient(server.address) as client:
        assert client.code("HELO pc.example").startswith("250 ")
        assert client.code(f"NOOP student={name}").startswith("250 ")
        assert client.code("RCPT TO:<you@tutor.test>").startswith("503 ")
        assert client.code("QUIT").startswith("221 ")


def wait_for_sessions(root: Path, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(list(root.glob(".smtp-tutor/sessions/*/*.jsonl"))) < count:
        assert time.monotonic() < deadline, "sessions were not saved as they closed"
        time.sleep(0.02)


def test_class_reads_the_roster_from_disk_after_the_server_stopped(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    periods.begin(root)
    server = TeachingServer(root, TEACHER_PERSONA, save_every_session=True).start()
    try:
        send_report(server, report(kind="lesson", status="done", step=None))
        telnet_student(server, "Grace Hopper")
        telnet_student(server, '=HYPERLINK("x")')
        wait_for_sessions(root, 3)
    finally:
        server.stop()

    result = run_cli("class", "--maildir", str(root), "--json")
    assert result.returncode == 0, result.stderr
    roster = json.loads(result.stdout)
    by_name = {student["name"]: student for student in roster["students"]}
    assert set(by_name) == {"Ada", "Grace Hopper", "pc.example"}  # the bad name was refused
    assert by_name["Ada"]["lessons"] == {"1": "done"}
    assert by_name["Grace Hopper"]["errors"] == 1
    assert by_name["Ada"]["messages"] == 1  # its report said 1; the report itself is none

    table = run_cli("class", "--maildir", str(root), "--plain")
    assert "3 students" in table.stdout and "Grace Hopper" in table.stdout

    rows = list(csv.reader(io.StringIO(run_cli("class", "--maildir", str(root), "--csv").stdout)))
    assert rows[0] == [
        "name",
        "lessons",
        "challenges",
        "current_step",
        "messages",
        "errors",
        "last_seen",
    ]
    assert rows[1][:2] == ["Ada", "1:done"]


def test_a_cell_that_looks_like_a_formula_is_kept_as_text(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    periods.begin(root)
    server = TeachingServer(root, TEACHER_PERSONA, save_every_session=True).start()
    try:
        with RawClient(server.address) as client:
            assert client.code("HELO =cmd|calc").startswith("250 ")
            assert client.code("QUIT").startswith("221 ")
        wait_for_sessions(root, 1)
    finally:
        server.stop()
    rows = list(csv.reader(io.StringIO(run_cli("class", "--maildir", str(root), "--csv").stdout)))
    assert rows[1][0] == "'=cmd|calc"


def test_class_without_a_period_and_with_two_formats_says_so_in_one_line(tmp_path: Path) -> None:
    empty = run_cli("class", "--maildir", str(tmp_path / "none"))
    assert empty.returncode == 1
    assert empty.stderr.strip().startswith("smtp-tutor: no period yet: `smtp-tutor serve` begins")
    both = run_cli("class", "--json", "--csv", "--maildir", str(tmp_path))
    assert both.returncode == 2 and "not both" in both.stderr


def test_class_reset_asks_first_and_begins_a_new_period(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    first = periods.begin(root, now=time.time() - 60)
    refused = run_cli("class", "reset", "--maildir", str(root))
    assert refused.returncode == 2 and "add --yes" in refused.stderr
    assert periods.current(root) == first
    done = run_cli("class", "reset", "--yes", "--maildir", str(root))
    assert done.returncode == 0, done.stderr
    assert periods.current(root) != first
    listed = run_cli("class", "--maildir", str(root), "--period", first.name, "--json")
    assert json.loads(listed.stdout)["period"] == first.name
