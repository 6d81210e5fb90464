"""The learner's own MTA, after the sessions they typed: the bounce it owes for a
recipient refused with 5xx, and its queue, run on a simulated clock, for a recipient no
host would take. Every attempt is real (a DNS query to the world's server, a connection
to the world's address); only the clock between attempts is simulated.

The schedule is Postfix's defaults (postconf(5)): the first retry after
minimal_backoff_time (300 s), each wait twice the last, at most maximal_backoff_time
(4000 s); a message is returned after maximal_queue_lifetime (5 days). RFC 5321 §4.5.4.1
asks for retries at least 30 minutes apart in general and a give-up time of at least 4-5
days. The warning that mail is delayed comes after 4 hours here, as sendmail's
Timeout.queuewarn does by default (Postfix sends one only when delay_warning_time is set).
"""

from __future__ import annotations

import email.utils
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from tutor.server.dsn import report_parts
from tutor.smtp.events import Event, Exchange, HostReached
from tutor.smtp.session_state import path_argument
from tutor.smtp.wire import split_command

MINIMAL_BACKOFF = 300  # seconds: Postfix minimal_backoff_time
MAXIMAL_BACKOFF = 4000  # Postfix maximal_backoff_time
DELAY_WARNING = 4 * 3600  # sendmail's Timeout.queuewarn
QUEUE_LIFETIME = 5 * 86400  # Postfix maximal_queue_lifetime
CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Refusal:
    """A recipient a host of the world refused with 5xx in the learner's session."""

    recipient: str
    sender: str  # the MAIL FROM of that transaction: where the bounce goes
    host: str  # the host that refused (Remote-MTA)
    status: str  # the reply's enhanced code, e.g. 5.1.1
    reply: str  # the reply, its lines joined


@dataclass(frozen=True)
class Failure:
    """One recipient's block of a DSN (RFC 3464 §2.3)."""

    recipient: str
    action: str  # failed | delayed
    status: str
    diagnostic: str  # with its type: "smtp; 550 …" or "X-smtp-tutor; connect to …"
    remote_mta: str = ""


def refusals(history: Sequence[Event]) -> list[Refusal]:
    """Every RCPT the learner's sessions saw refused with 5xx, with the MAIL FROM it
    belonged to and the host that said it."""
    found: list[Refusal] = []
    host, sender = "", ""
    for event in history:
        if isinstance(event, HostReached):
            host, sender = event.host, ""
        elif isinstance(event, Exchange) and event.code is not None:
            if event.verb == "MAIL" and 200 <= event.code < 300:
                sender = command_address(event.command)
            elif event.verb == "RCPT" and 500 <= event.code < 600:
                enhanced = event.reply.enhanced if event.reply else None
                text = " ".join(event.replies)
                found.append(
                    Refusal(command_address(event.command), sender, host, enhanced or "5.0.0", text)
                )
    return found


def command_address(command: str) -> str:
    """The address of a MAIL FROM or RCPT TO line ("" for <>), read as SessionState does."""
    return path_argument(split_command(command)[1])


def retry_times(until: int) -> list[int]:
    """The seconds after the first try at which the queue tries again, up to `until`."""
    times, wait, now = [], MINIMAL_BACKOFF, 0
    while now + wait <= until:
        now += wait
        times.append(now)
        wait = min(wait * 2, MAXIMAL_BACKOFF)
    return times


def clock(seconds: int) -> str:
    """+1h 15m as a queue log would say it."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours else []
    parts += [f"{minutes}m"] if minutes or not parts else []
    return "+" + " ".join(parts)


def try_connect(address: str, port: int, mine: set[tuple[str, int]] | None = None) -> str:
    """One real attempt: "" if something answered, else why not (as Postfix logs it).
    The local address of a connection made is added to `mine` (the tutor's own)."""
    try:
        with socket.create_connection((address, port), timeout=CONNECT_TIMEOUT) as sock:
            if mine is not None:
                local = sock.getsockname()
                mine.add((local[0], local[1]))
            return ""
    except ConnectionRefusedError:
        return "Connection refused"
    except TimeoutError:
        return "Connection timed out"
    except OSError as error:
        return error.strerror or str(error)


def build_dsn(
    *,
    reporting_mta: str,
    sender: str,
    queue_id: str,
    arrival: float,
    failures: Sequence[Failure],
    will_retry_until: float | None = None,
) -> bytes:
    """A multipart/report DSN (RFC 3464) to the envelope sender, CRLF line endings."""
    delayed = all(f.action == "delayed" for f in failures)
    boundary = f"=_dsn_{queue_id}"
    listed = "\n".join(f"  <{f.recipient}>: {f.diagnostic.partition('; ')[2]}" for f in failures)
    human = (
        f"This is the mail system at {reporting_mta} (your own MTA in smtp-tutor's world).\n\n"
        + (
            "Your message has not been delivered yet. It stays in the queue and is tried\n"
            "again; nothing needs to be done. It will be returned if it still cannot be\n"
            "delivered after 5 days.\n\n"
            if delayed
            else "Your message could not be delivered to one or more recipients.\n\n"
        )
        + f"{listed}\n"
    )
    per_message = [
        f"Reporting-MTA: dns; {reporting_mta}",
        f"X-Queue-ID: {queue_id}",
        f"Arrival-Date: {email.utils.formatdate(arrival, localtime=True)}",
    ]
    blocks = []
    for failure in failures:
        block = [
            f"Final-Recipient: rfc822; {failure.recipient}",
            f"Action: {failure.action}",
            f"Status: {failure.status}",
        ]
        if failure.remote_mta:
            block.append(f"Remote-MTA: dns; {failure.remote_mta}")
        block.append(f"Diagnostic-Code: {failure.diagnostic}")
        if will_retry_until is not None:
            block.append(
                f"Will-Retry-Until: {email.utils.formatdate(will_retry_until, localtime=True)}"
            )
        blocks.append("\n".join(block))
    subject = (
        "Delayed Mail (still being retried)" if delayed else "Undelivered Mail Returned to Sender"
    )
    text = "\n".join(
        [
            f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
            f"To: <{sender}>",
            f"Subject: {subject}",
            f"Date: {email.utils.formatdate(localtime=True)}",
            f"Message-ID: <{queue_id}.dsn@{reporting_mta}>",
            "MIME-Version: 1.0",
            "Auto-Submitted: auto-replied",
            "Content-Type: multipart/report; report-type=delivery-status;",
            f'\tboundary="{boundary}"',
            "",
            *report_parts(boundary, human, per_message, blocks),
            f"--{boundary}--",
            "",
        ]
    )
    return text.replace("\n", "\r\n").encode("utf-8", "surrogateescape")
