"""A progress report: the message a student's tutor sends the teacher's server after each
finished step, lesson and challenge (`learn N --class HOST:PORT --name NAME`).

It is a real message, sent in a real SMTP session, to `teacher@<the server's domain>`:
a readable summary for whoever opens the teacher's mailbox, and a machine-readable part
of its own content type, REPORT_TYPE, that `smtp-tutor class` reads back:

    {"format": "smtp-tutor-report", "version": 1, "student": "Ada", "kind": "step",
     "lesson": 1, "challenge": null, "step": 3, "steps": 9, "title": "Say hello",
     "status": "in progress", "messages": 1, "errors": 0, "at": 1764500000.0}

`kind` is "step", "lesson" or "challenge"; in a step report, `step` and `title` are the
step the student is at now (sent when the one before it is finished); `status` uses
the words `smtp-tutor lessons` shows. A report is data from the network: every field
is checked, and a part that is not one (wrong type, too large, a name that is not a
student name) is ignored.
"""

from __future__ import annotations

import email.policy
import email.utils
import json
import time
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, Literal

from tutor.smtp.student import noop_student
from tutor.smtp.textsafe import visible

REPORT_TYPE = "application/vnd.smtp-tutor.report+json"
FORMAT = "smtp-tutor-report"
VERSION = 1
TEACHER = "teacher"  # the mailbox reports go to, at the teacher's server's domain
PART_LIMIT = 16 * 1024  # a report is a few hundred bytes
STATUSES = ("not started", "in progress", "done", "done with help")

ReportKind = Literal["step", "lesson", "challenge"]
_KINDS: tuple[ReportKind, ...] = ("step", "lesson", "challenge")


@dataclass(frozen=True)
class Report:
    student: str
    kind: ReportKind
    lesson: int | None
    challenge: int | None
    step: int | None
    steps: int | None
    title: str
    status: str
    messages: int
    errors: int
    at: float

    @property
    def subject(self) -> str:
        where = (
            f"lesson {self.lesson}" if self.lesson is not None else f"challenge {self.challenge}"
        )
        if self.kind == "step":
            return f"{self.student}: {where}, at step {self.step}/{self.steps}"
        return f"{self.student}: {where} {self.status}"


def compose(report: Report, sender: str, teacher: str) -> bytes:
    """The report as a message (CRLF line endings, as it goes on the wire)."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = teacher
    message["Subject"] = report.subject
    message["Date"] = email.utils.formatdate(report.at, localtime=True)
    summary = [report.subject + "."]
    if report.title:
        summary.append(f"Title: {report.title}")
    summary += [
        f"Messages sent: {report.messages}; errors made: {report.errors}.",
        "",
        "Sent by smtp-tutor; `smtp-tutor class` reads the attached part.",
    ]
    message.set_content("\n".join(summary) + "\n")
    record = to_record(report)
    maintype, subtype = REPORT_TYPE.split("/")
    message.add_attachment(
        json.dumps(record).encode("utf-8"),
        maintype=maintype,
        subtype=subtype,
        filename="report.json",
    )
    return message.as_bytes()


def to_record(report: Report) -> dict[str, Any]:
    """The report's machine-readable part, as JSON takes it."""
    return {"format": FORMAT, "version": VERSION, **asdict(report)}


def from_record(record: Any) -> Report | None:
    """A report from its record (`to_record`), checked field by field; None if it is not
    one."""
    return _checked(record)


def read(raw: bytes) -> Report | None:
    """The report a stored message carries; None if it carries none (or a broken one)."""
    try:
        message = BytesParser(policy=email.policy.default).parsebytes(raw)
        for part in message.walk():
            if part.get_content_type() == REPORT_TYPE:
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes) and len(payload) <= PART_LIMIT:
                    return _checked(json.loads(payload))
    except (ValueError, TypeError, LookupError, RecursionError):
        return None
    return None


def _checked(record: Any) -> Report | None:
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    if record.get("version") != VERSION:
        return None
    student = noop_student(f"student={record.get('student')}")
    kind = record.get("kind")
    status = record.get("status")
    if student is None or student.name is None or kind not in _KINDS or status not in STATUSES:
        return None
    lesson, challenge = _count(record.get("lesson")), _count(record.get("challenge"))
    if (lesson is None) == (challenge is None):
        return None
    title = record.get("title")
    at = record.get("at")
    return Report(
        student=student.name,
        kind=kind,
        lesson=lesson,
        challenge=challenge,
        step=_count(record.get("step")),
        steps=_count(record.get("steps")),
        # From the network: shown in the roster, the dashboard, JSON and CSV alike.
        title=visible(title[:200]) if isinstance(title, str) else "",
        status=status,
        messages=_count(record.get("messages")) or 0,
        errors=_count(record.get("errors")) or 0,
        at=float(at) if isinstance(at, int | float) and 0 <= at < 1e11 else time.time(),
    )


def _count(value: Any) -> int | None:
    """A small whole number, or None (bools are not numbers here)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1_000_000:
        return value
    return None
