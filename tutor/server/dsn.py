"""Delivery status notifications (RFC 3464): the bounce a failed delivery produces.

A bounce goes to the envelope sender (MAIL FROM), never to the From: header, and is
itself sent with the null sender `<>` so that a failing bounce cannot bounce again.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

from tutor.server.persona import Persona

# The diagnostic-type of a failure this server decided itself (RFC 3464 §2.3.6): `smtp`
# is only for a reply a remote SMTP server gave; Postfix writes `X-Postfix` likewise.
LOCAL_DIAGNOSTIC = "X-smtp-tutor"


@dataclass(frozen=True)
class Failure:
    recipient: str
    status: str  # RFC 3463, e.g. "5.1.2"
    diagnostic: str  # a remote server's reply, or the local reason (see diagnostic_type)
    diagnostic_type: str = "smtp"  # "smtp" for a remote reply, LOCAL_DIAGNOSTIC otherwise


def build_dsn(
    persona: Persona,
    *,
    original_sender: str,
    original_queue_id: str,
    original_content: bytes,
    arrival: float,
    failures: list[Failure],
) -> bytes:
    """A multipart/report DSN addressed to the original envelope sender (CRLF endings)."""
    boundary = f"=_report_{original_queue_id}"
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
    per_message = [
        f"Reporting-MTA: dns; {persona.hostname}",
        f"X-Queue-ID: {original_queue_id}",
        f"Arrival-Date: {email.utils.formatdate(arrival, localtime=True)}",
    ]
    per_recipient = [
        "\n".join(
            [
                f"Final-Recipient: rfc822; {f.recipient}",
                "Action: failed",
                f"Status: {f.status}",
                f"Diagnostic-Code: {f.diagnostic_type}; {f.diagnostic}",
            ]
        )
        for f in failures
    ]
    original_headers = original_content.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    head = [
        f"From: Mail Delivery System <MAILER-DAEMON@{persona.hostname}>",
        f"To: <{original_sender}>",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {email.utils.formatdate(localtime=True)}",
        f"Message-ID: {email.utils.make_msgid(domain=persona.hostname)}",
        "Auto-Submitted: auto-replied",  # RFC 3834: nobody should auto-reply to this
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        *report_parts(boundary, human, per_message, per_recipient),
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "",
    ]
    text = "\n".join(head).encode("utf-8", "surrogateescape") + b"\n"
    text += original_headers + b"\n\n" + f"--{boundary}--\n".encode()
    return text.replace(b"\n", b"\r\n")


def report_parts(
    boundary: str, human: str, per_message: list[str], per_recipient: list[str]
) -> list[str]:
    """A DSN's body lines up to the end of its delivery-status part (RFC 3464 §2): the
    human-readable part, then the per-message fields and one block per recipient."""
    return [
        "This is a MIME-encapsulated delivery status notification (RFC 3464).",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        human,
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        "\n".join(per_message),
        "",
        "\n\n".join(per_recipient),
        "",
    ]
