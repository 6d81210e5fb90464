"""Delivery status notifications (RFC 3464): the bounce a failed delivery produces.

A bounce goes to the envelope sender (MAIL FROM), never to the From: header, and is
itself sent with the null sender `<>` so that a failing bounce cannot bounce again.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from email.policy import compat32

from tutor.server.persona import Persona


@dataclass(frozen=True)
class Failure:
    recipient: str
    status: str  # RFC 3463, e.g. "5.1.2"
    diagnostic: str  # the reply the (simulated) next hop gave


def build_dsn(
    persona: Persona,
    *,
    original_sender: str,
    original_queue_id: str,
    original_content: bytes,
    arrival: float,
    failures: list[Failure],
) -> bytes:
    """A multipart/report DSN addressed to the original envelope sender."""
    report = EmailMessage(policy=SMTP_POLICY)
    report["From"] = f"Mail Delivery System <MAILER-DAEMON@{persona.hostname}>"
    report["To"] = f"<{original_sender}>"
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = email.utils.formatdate(localtime=True)
    report["Message-ID"] = email.utils.make_msgid(domain=persona.hostname)
    report["Auto-Submitted"] = "auto-replied"  # RFC 3834: no auto-replies to this

    failed = "\n".join(f"  <{f.recipient}>: {f.diagnostic}" for f in failures)
    human = (
        f"This is the mail system at {persona.hostname} (smtp-tutor).\n\n"
        "Your message could not be delivered to one or more recipients.\n"
        "This bounce was sent to the envelope sender (MAIL FROM), whatever the\n"
        "message's From: header said.\n\n"
        f"{failed}\n\n"
        "The delivery attempt was simulated: smtp-tutor never connects to another\n"
        "server. The failure comes from its simulated DNS table.\n"
    )
    report.set_content(human)
    report.make_mixed()
    report.replace_header("Content-Type", 'multipart/report; report-type="delivery-status"')

    status = EmailMessage(policy=SMTP_POLICY)
    status_lines = [
        f"Reporting-MTA: dns; {persona.hostname}",
        f"X-Queue-ID: {original_queue_id}",
        f"Arrival-Date: {email.utils.formatdate(arrival, localtime=True)}",
        "",
    ]
    for failure in failures:
        status_lines += [
            f"Final-Recipient: rfc822; {failure.recipient}",
            "Action: failed",
            f"Status: {failure.status}",
            f"Diagnostic-Code: smtp; {failure.diagnostic}",
            "",
        ]
    status.set_payload("\n".join(status_lines))
    status["Content-Type"] = "message/delivery-status"
    report.attach(status)

    headers = BytesHeaderParser(policy=compat32).parsebytes(original_content)
    returned = EmailMessage(policy=SMTP_POLICY)
    returned["Content-Type"] = "text/rfc822-headers"
    returned.set_payload(
        "".join(f"{name}: {value}\n" for name, value in headers.items()), charset=None
    )
    report.attach(returned)
    return report.as_bytes(policy=SMTP_POLICY)
