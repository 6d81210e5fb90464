"""The one event vocabulary: what happened in an SMTP session, as the server saw it.

A session is a list of exchanges (what the client sent -> the reply lines) plus events
such as "TLS started" or "message stored". The server records these from the raw
bytes it reads; the lesson runner, `serve` and the dashboard all consume them.
Stdlib only: no screen, no network.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from tutor.smtp.wire import Reply, line_ending, parse_reply_line

if TYPE_CHECKING:
    from tutor.smtp.envelope import Comparison

# What one exchange was; a Literal, so mypy (strict equality) rejects `kind == "comand"`.
ExchangeKind = Literal["greeting", "command", "data", "auth", "notice"]


@dataclass(frozen=True)
class Event:
    session: int
    at: float = field(default_factory=time.time, compare=False, kw_only=True)


@dataclass(frozen=True)
class SessionOpened(Event):
    peer_host: str
    peer_port: int
    local_port: int
    refused: bool = False  # answered 421 at once (connection cap)
    local_host: str = ""  # the address the client connected to ("" in older stored sessions)


@dataclass(frozen=True)
class Exchange(Event):
    """One turn: the raw bytes the client sent, and the reply lines that answered them.

    kind: "greeting" (nothing sent), "command", "data" (the message text, from the
    line after 354 up to and including the lone dot), "auth" (an answer to a 334),
    "notice" (a reply nobody asked for: 421 on idle timeout or shutdown).
    No replies means the client went away (or the server stopped) before a reply.
    """

    kind: ExchangeKind
    sent: bytes
    replies: tuple[str, ...]
    tls: bool = False

    @property
    def reply(self) -> Reply | None:
        lines = [parse_reply_line(line) for line in self.replies]
        parsed = tuple(line for line in lines if line is not None)
        return Reply(parsed) if parsed else None

    @property
    def code(self) -> int | None:
        reply = self.reply
        return reply.code if reply else None

    @property
    def answered(self) -> bool:
        return bool(self.replies)

    @property
    def line_ending(self) -> str:
        return line_ending(self.sent)

    @property
    def command(self) -> str:
        """The command line as text, without its ending (undecodable bytes escaped)."""
        text = self.sent.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
        return text

    @property
    def verb(self) -> str:
        return self.command.split(" ", 1)[0].upper() if self.kind == "command" else ""


@dataclass(frozen=True)
class BareLineFeed(Event):
    """The client ended a line with LF alone (plain `nc` without -C does this)."""

    in_data: bool


@dataclass(frozen=True)
class TlsStarted(Event):
    version: str
    cipher: str
    discarded: int  # plaintext bytes pipelined after STARTTLS, thrown away (RFC 3207 §4.2)


@dataclass(frozen=True)
class Authenticated(Event):
    mechanism: str
    user: str
    success: bool


@dataclass(frozen=True)
class StudentNamed(Event):
    """The client named its student with `NOOP student=NAME` (tutor/smtp/student.py)."""

    name: str


@dataclass(frozen=True)
class Copy:
    """One stored copy of a message: which folder and which Maildir key."""

    folder: str
    key: str
    recipient: str


@dataclass(frozen=True)
class MessageStored(Event):
    queue_id: str
    sender: str
    recipients: tuple[str, ...]
    copies: tuple[Copy, ...]
    header_from: str
    header_to: str
    header_cc: str
    subject: str
    size: int
    client_address: str = ""
    helo: str = ""
    spf: str = ""  # simulated verdicts, as in the Authentication-Results header
    dmarc: str = ""
    body_lines: tuple[str, ...] = ()  # the body as stored (first lines), for lesson checks
    header_lines: tuple[str, ...] = ()  # the header section as stored (first lines)

    @property
    def comparison(self) -> Comparison:
        """Its envelope against the headers it claims."""
        from tutor.smtp.envelope import Comparison  # with the first message, not the events

        return Comparison(
            self.sender, self.header_from, self.recipients, self.header_to, self.header_cc
        )

    @property
    def relayed(self) -> tuple[str, ...]:
        return tuple(c.recipient for c in self.copies if c.folder == RELAY_FOLDER)


@dataclass(frozen=True)
class BounceSent(Event):
    """A DSN (RFC 3464) for a failed delivery, sent with MAIL FROM:<> to the sender."""

    queue_id: str
    original_queue_id: str
    to: str
    failed: tuple[str, ...]
    status: str
    copy: Copy | None  # None: sender was <>, so the failure is dropped, never bounced


# Why a session closed with reason "tls" ended without TLS (SessionClosed.tls_failure).
TLS_PLAINTEXT = "plaintext"  # the bytes after the 220 were no TLS record: telnet, nc
TLS_HANDSHAKE = "handshake"  # a TLS handshake began and failed (a certificate, a protocol)
TLS_SILENT = "silent"  # nothing came: the client left, or the handshake timed out


@dataclass(frozen=True)
class SessionClosed(Event):
    """The session is over. For reason "tls": what came instead of a finished handshake,
    and what was seen (the client's first bytes as text, or the TLS library's reason);
    both empty in sessions stored before they existed."""

    reason: str  # "quit" | "client" | "idle" | "unknown-commands" | "cap" | "server" | "tls"
    tls_failure: str = ""  # TLS_PLAINTEXT | TLS_HANDSHAKE | TLS_SILENT
    tls_detail: str = ""


RELAY_FOLDER = "captured-relay"


# --- the sending side: what a world lesson's learner did as a sending MTA ---------------
# (docs/lessons.md, "Lessons in the world"). These come from the world's DNS server's log
# and from the tutor's own connection attempts, not from an SMTP server's capture.


@dataclass(frozen=True)
class DnsLookup(Event):
    """A question the world's DNS server answered, whoever asked (the tutor for the
    learner, or the learner's own dig): name lower case without the final dot."""

    name: str
    rdtype: str  # "MX", "A", …
    rcode: str  # "NOERROR", "NXDOMAIN", "REFUSED", …
    answers: int  # records in the answer section (0 with NOERROR: no such record)
    client: str = ""


@dataclass(frozen=True)
class HostReached(Event):
    """A connection the learner asked for, to a host of the world: the greeting's code,
    or 0 when the connection itself failed (`error` says how)."""

    host: str  # the world's name for the address ("" if the zone names none)
    address: str
    port: int
    code: int
    error: str = ""
    outside: bool = False  # a client in another terminal, not the tutor's own session


@dataclass(frozen=True)
class DsnDelivered(Event):
    """A delivery status notification the learner's simulated queue wrote and delivered
    to the envelope sender, as the receiving server stored it (read back from its file)."""

    action: str  # "failed" or "delayed" (RFC 3464 §2.3.3)
    status: str  # RFC 3463, e.g. 5.1.1 or 4.4.1
    recipient: str  # Final-Recipient, without "rfc822;"
    diagnostic: str  # Diagnostic-Code, with its type
    to: str  # the envelope sender it went to
    mailbox: str  # where the receiving server stored it
    queue_id: str  # the receiving server's queue id for it


@dataclass(frozen=True)
class MailboxRead(Event):
    """A message read from a mailbox of the world as its server stored it, with the
    verdicts of the top Authentication-Results field (`dkim=pass`, `spf=fail`, …)."""

    address: str  # whose mailbox: bob@example.org
    ref: str  # folder/N, as `smtp-tutor mailbox show` takes it
    results: tuple[str, ...]  # ("dkim=pass", "spf=fail", "dmarc=pass", …)
    subject: str = ""
