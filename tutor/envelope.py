"""Envelope against headers: where a message went versus what it claims (stdlib only).

The envelope (MAIL FROM / RCPT TO) decides delivery; From:/To:/Cc: are just text. The
comparison is robust to headers without any address, like the seed's `From: Bugs Bunny`.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import getaddresses


def header_addresses(*values: str) -> list[str]:
    """The email addresses named in header values (display names without one are skipped)."""
    found = []
    for _name, address in getaddresses([v for v in values if v]):
        if "@" in address:
            found.append(address)
    return found


@dataclass(frozen=True)
class Comparison:
    sender: str
    header_from: str
    recipients: tuple[str, ...]
    header_to: str
    header_cc: str

    @property
    def from_addresses(self) -> list[str]:
        return header_addresses(self.header_from)

    @property
    def named_addresses(self) -> list[str]:
        return header_addresses(self.header_to, self.header_cc)

    @property
    def sender_matches(self) -> bool:
        """True when the From: header names the envelope sender."""
        return self.sender.lower() in {a.lower() for a in self.from_addresses}

    @property
    def unnamed_recipients(self) -> tuple[str, ...]:
        """Envelope recipients that To:/Cc: never mention (Bcc, or a forgery)."""
        named = {a.lower() for a in self.named_addresses}
        return tuple(r for r in self.recipients if r.lower() not in named)

    @property
    def named_not_recipients(self) -> tuple[str, ...]:
        """Addresses To:/Cc: claim that this message was not delivered to."""
        envelope = {r.lower() for r in self.recipients}
        return tuple(a for a in self.named_addresses if a.lower() not in envelope)

    @property
    def mismatch(self) -> bool:
        return (
            not self.sender_matches
            or bool(self.unnamed_recipients)
            or bool(self.named_not_recipients)
        )
