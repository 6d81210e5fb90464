"""Progress reports to a class's teacher (`learn N --class HOST:PORT --name NAME`,
docs/teaching.md, "Students at their own machine").

The lesson runs on the student's own server as always; after each finished step, and
when the lesson or challenge is done, this module sends the teacher's server one report
(tutor/classroom/report.py) in a real SMTP session, with the project's own client:

    EHLO <this machine>  ·  NOOP student=NAME  ·  MAIL FROM:<NAME@student.invalid>
    RCPT TO:<teacher@DOMAIN>  ·  DATA  ·  the report  ·  .  ·  QUIT

- It connects to HOST:PORT and nowhere else: no DNS lookup of the teacher's domain, no
  MX, no second address. DOMAIN is read from the server's own 220 greeting (RFC 5321
  §4.3.1 puts the server's name first), less a leading `mx.`: `smtp-tutor serve` greets
  as `mx.tutor.test` and takes `teacher@tutor.test` (it takes its host name as local
  too, so a greeting without `mx.` works as it stands).
- `NOOP student=NAME` comes first, so the roster files the session under the student,
  not under the machine's EHLO name: the report and its session make one row.
- The sender is `<NAME@student.invalid>` (the name as a file-safe local part): `.invalid`
  is reserved (RFC 2606 §2, RFC 6761 §6.4) and never resolves, so no server can ever
  send a bounce for a report to a real mailbox; the roster reads the student from the
  report, not from the sender.
- The whole session has REPORT_TIMEOUT (5 s) from connect to QUIT. It never raises: a
  report that does not arrive is a `Delivery` with its `problem` in one line.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from typing import Literal

from tutor.classroom.report import TEACHER, Report, compose
from tutor.client.client import SmtpClient, SmtpClientError
from tutor.engine.model import Lesson, Step
from tutor.engine.progress import Status
from tutor.engine.runner import LessonRun
from tutor.errors import UsageError, reason
from tutor.smtp.events import Event, Exchange, MessageStored
from tutor.smtp.student import file_safe, noop_student
from tutor.smtp.wire import PathError, Reply, address_literal, dot_stuff, host_port
from tutor.smtp.wire import parse_path as parse_smtp_path

REPORT_TIMEOUT = 5.0  # seconds for the whole report session, connect to QUIT
SENDER_DOMAIN = "student.invalid"
_ANSWERED = ("command", "data", "auth")  # exchanges where the learner sent something
_PORT = re.compile(r"[0-9]{1,5}\Z")

Played = Literal["lesson", "challenge"]


# --- where reports go ---------------------------------------------------------------------


@dataclass(frozen=True)
class ClassTarget:
    """The teacher's server and the name this student reports under."""

    host: str
    port: int
    student: str  # as NOOP student= takes it: spaces collapsed, NFC

    @property
    def where(self) -> str:
        return host_port(self.host, self.port)


def class_target(address: str, name: str | None) -> ClassTarget:
    """`--class HOST:PORT --name NAME`, checked; UsageError (exit 2) in one line if not."""
    host, port = parse_address(address)
    if name is None:
        raise UsageError(
            "--class needs --name NAME: the name the teacher's roster shows, "
            'e.g. --class 192.168.1.10:2525 --name "Ada Lovelace"'
        )
    return ClassTarget(host, port, student_name(name))


def student_name(name: str) -> str:
    """The name as `NOOP student=NAME` would take it, or UsageError saying why not."""
    taken = noop_student(f"student={name}")
    if taken is None or taken.name is None:
        why = taken.problem if taken is not None else "not a name"
        raise UsageError(f"--name {name!r}: {why}")
    return taken.name


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT or [IPv6]:PORT (the port is required: serve's is usually 2525)."""
    example = "e.g. --class 192.168.1.10:2525"
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        port_text = rest[1:] if bracket and rest.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":")
        if ":" in host:  # a bare IPv6 address: its port is ambiguous without brackets
            raise UsageError(f"--class {text!r}: write an IPv6 address as [ADDRESS]:PORT")
    if not host or not _PORT.match(port_text) or not 0 < int(port_text) < 65536:
        raise UsageError(f"--class {text!r}: expected HOST:PORT, {example}")
    return host, int(port_text)


# --- what a report says -------------------------------------------------------------------


def counts(events: Sequence[Event]) -> tuple[int, int]:
    """Messages stored and errors made (4xx and 5xx replies to what the learner sent) on
    the learner's own server: what the roster counts on the teacher's (classroom/roster)."""
    messages = sum(1 for event in events if isinstance(event, MessageStored))
    errors = sum(
        1
        for event in events
        if isinstance(event, Exchange)
        and event.kind in _ANSWERED
        and event.code is not None
        and event.code >= 400
    )
    return messages, errors


def step_title(step: Step) -> str:
    """A step in a few words for the roster (a step has no title of its own): the verb
    of its command, its goal, or what kind of step it is."""
    if step.kind == "goal" and step.goal:
        return step.goal[:80]
    if step.kind == "command" and step.command:
        words = step.command.upper().split()
        if words[0] in ("MAIL", "RCPT") and len(words) > 1:
            return f"{words[0]} {words[1].split(':')[0]}"
        return words[0]
    return {
        "connect": "connect",
        "data": "the message",
        "read": "reading",
        "library": "a library sends",
        "pipeline": "PIPELINING",
    }.get(step.kind, step.kind)


def progress_report(
    student: str, played: Played, run: LessonRun, events: Sequence[Event], at: float
) -> Report:
    """Where the learner is: the step they are at now (the one after the step just
    finished), or the lesson (challenge) done."""
    lesson: Lesson = run.lesson
    total = len(lesson.steps)
    messages, errors = counts(events)
    if run.finished:
        status = Status.DONE_WITH_HELP if run.assisted else Status.DONE
        kind: Literal["step", "lesson", "challenge"] = played
        step, title = total, lesson.title
    else:
        status, kind = Status.IN_PROGRESS, "step"
        step = min(max(run.index, 0) + 1, total)
        title = step_title(lesson.steps[step - 1])
    number = lesson.number
    return Report(
        student=student,
        kind=kind,
        lesson=number if played == "lesson" else None,
        challenge=number if played == "challenge" else None,
        step=step,
        steps=total,
        title=title,
        status=str(status),
        messages=messages,
        errors=errors,
        at=at,
    )


# --- sending one --------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchanged:
    """One command of the report session and the final line of its reply, as it came."""

    label: str  # "EHLO", "NOOP student=Ada", "MAIL", "RCPT", "DATA", "." or "QUIT"
    code: int
    text: str  # the reply's last line without its code: shown for the lone dot's 250


@dataclass(frozen=True)
class Delivery:
    """How one report went: what was said, and why it did not arrive ("" if it did)."""

    exchanges: tuple[Exchanged, ...]
    problem: str = ""

    @property
    def delivered(self) -> bool:
        return not self.problem


class _Refused(Exception):
    """A reply that ends the report session (the text says which)."""


def sender_address(student: str) -> str:
    """`Ada@student.invalid`: the name as one dot-atom (file_safe keeps letters, digits,
    `.`, `-` and `_`; two dots in a row are not a dot-atom, so they become one)."""
    return f"{re.sub(r'[.]{2,}', '.', file_safe(student))}@{SENDER_DOMAIN}"


def helo_name(local_host: str) -> str:
    """This machine's name if it is a valid domain (RFC 5321 §4.1.1.1 asks for one), else
    the address literal of the connection's own end, which always is one."""
    name = socket.gethostname().rstrip(".")
    try:
        parse_smtp_path(f"FROM:<x@{name}>", "FROM:", allow_null=False, allow_postmaster=False)
    except PathError:
        return f"[{address_literal(local_host)}]"
    return name


def teacher_address(greeting: Reply) -> str | None:
    """`teacher@` the domain the server greets with, less a leading `mx.`; None if the
    greeting names no valid domain."""
    words = greeting.lines[0].text.split()
    domain = words[0].rstrip(".") if words else ""
    if domain.lower().startswith("mx.") and "." in domain[3:]:
        domain = domain[3:]
    address = f"{TEACHER}@{domain}"
    try:
        parse_smtp_path(f"TO:<{address}>", "TO:", allow_null=False, allow_postmaster=False)
    except PathError:
        return None
    return address


def deliver(target: ClassTarget, report: Report, *, timeout: float = REPORT_TIMEOUT) -> Delivery:
    """One report, in one SMTP session to the teacher's server; never raises."""
    deadline = time.monotonic() + timeout
    said: list[Exchanged] = []
    try:
        client = SmtpClient.connect(target.host, target.port, timeout=timeout)
    except SmtpClientError as error:
        return Delivery((), str(error))
    try:
        with client:
            _session(client, target, report, said, deadline)
    except SmtpClientError as error:
        return Delivery(tuple(said), str(error))
    except OSError as error:  # the client words socket errors itself; this is a last guard
        return Delivery(tuple(said), reason(error))
    except _Refused as refusal:
        return Delivery(tuple(said), str(refusal))
    return Delivery(tuple(said))


def _session(
    client: SmtpClient, target: ClassTarget, report: Report, said: list[Exchanged], deadline: float
) -> None:
    def exchange(label: str, line: str, *wanted: int, message: bytes | None = None) -> Reply:
        """One command (or, with `message`, the message and its lone dot in one write)."""
        client.timeout = max(0.05, deadline - time.monotonic())
        reply = client.send_line(line) if message is None else client.end_data(message)
        said.append(Exchanged(label, reply.code, reply.lines[-1].text))
        if reply.code not in wanted:
            if reply.code != 421:  # after a 421 the server is closing: nothing more to say
                _quit_quietly(client)
            raise _Refused(f"the teacher's server answered {label} with {reply.wire_lines()[-1]}")
        return reply

    if client.banner.code != 220:
        raise _Refused(f"the teacher's server greeted with {client.banner.wire_lines()[-1]}")
    teacher = teacher_address(client.banner)
    if teacher is None:
        raise _Refused("the teacher's server did not name its domain in its greeting")
    ehlo = exchange("EHLO", f"EHLO {helo_name(client.local_address[0])}", 250)
    exchange(f"NOOP student={target.student}", f"NOOP student={target.student}", 250)
    sender = sender_address(target.student)
    # From: names the student as a mail reader shows it; the policy quotes and encodes.
    message = compose(report, str(Address(target.student, addr_spec=sender)), teacher)
    offers_8bit = any(line.text.upper() == "8BITMIME" for line in ehlo.lines[1:])
    body = " BODY=8BITMIME" if offers_8bit and not message.isascii() else ""
    exchange("MAIL", f"MAIL FROM:<{sender}>{body}", 250)
    exchange("RCPT", f"RCPT TO:<{teacher}>", 250, 251)
    exchange("DATA", "DATA", 354)
    exchange(".", ".", 250, message=dot_stuff(message))
    with contextlib.suppress(_Refused, SmtpClientError):
        exchange("QUIT", "QUIT", 221)  # the report is stored: how it ends no longer matters


def _quit_quietly(client: SmtpClient) -> None:
    with contextlib.suppress(SmtpClientError):
        client.send_line("QUIT")
