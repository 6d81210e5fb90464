"""Reading a stored bounce back: who it went to, and what its delivery-status part says.

A DSN (RFC 3464) is a multipart/report: a human-readable part, then a
message/delivery-status part with one block of fields per failed recipient.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import compat32


@dataclass(frozen=True)
class FailedRecipient:
    recipient: str  # Final-Recipient, without its "rfc822;" type
    action: str  # failed, delayed, …
    status: str  # RFC 3463, e.g. 5.1.2
    diagnostic: str  # Diagnostic-Code, with its type ("smtp; 550 …")


@dataclass(frozen=True)
class BounceSummary:
    sender: str  # the bounce's From:
    to: str  # its To: (the original envelope sender)
    subject: str
    recipients: tuple[FailedRecipient, ...]


def read_bounce(raw: bytes) -> BounceSummary:
    message = message_from_bytes(raw, policy=compat32)
    recipients: list[FailedRecipient] = []
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            recipients += _per_recipient(part)
    return BounceSummary(
        sender=str(message.get("From", "")),
        to=str(message.get("To", "")),
        subject=str(message.get("Subject", "")),
        recipients=tuple(recipients),
    )


def _per_recipient(part: Message) -> list[FailedRecipient]:
    """The blocks after the per-message one; the email package parses each as a message."""
    payload = part.get_payload()
    blocks = payload[1:] if isinstance(payload, list) else []
    found = []
    for block in blocks:
        if not isinstance(block, Message):
            continue
        final = str(block.get("Final-Recipient", ""))
        found.append(
            FailedRecipient(
                recipient=final.split(";", 1)[-1].strip(),
                action=str(block.get("Action", "")),
                status=str(block.get("Status", "")),
                diagnostic=str(block.get("Diagnostic-Code", "")),
            )
        )
    return found
