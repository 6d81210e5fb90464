"""Storage: one Maildir per local mailbox, plus a folder for captured relay mail.

Each accepted recipient gets its own copy, with trace headers prepended: Return-Path
(the envelope sender), Received (one recipient in `for`, so Bcc never leaks) and
Delivered-To. Return-Path is written at final delivery only (RFC 5321 §4.4): a captured
relay copy was relayed, not delivered, so its envelope sender is in Received's
`(envelope-from <…>)` alone. Written with stdlib `mailbox` (tmp -> new), complete
before the 250, so any MUA can open the folders. Lines are stored with LF endings, the
Maildir custom.
"""

from __future__ import annotations

import contextlib
import email.utils
import mailbox
import os
import time
from dataclasses import dataclass
from datetime import datetime
from email.parser import HeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

from tutor.smtp.events import RELAY_FOLDER, Copy
from tutor.smtp.wire import address_literal


class StorageError(OSError):
    """A copy could not be written; nothing of the message was kept."""


@dataclass(frozen=True)
class Delivery:
    """Everything the trace headers need to know about one accepted message."""

    queue_id: str
    sender: str
    helo: str
    client_address: str
    protocol: str  # ESMTP, ESMTPS, ESMTPA, ESMTPSA or SMTP (RFC 3848)
    content: bytes  # as received (CRLF line endings, dot-stuffing undone)
    received_at: float
    auth_results: str = ""  # Authentication-Results value (simulated SPF/DMARC), if any
    smtputf8: bool = False  # MAIL FROM carried SMTPUTF8: Received says UTF8SMTP…

    @property
    def with_protocol(self) -> str:
        """Received's `with`: RFC 6531 §3.7.3's UTF8SMTP, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA
        for an SMTPUTF8 transaction, else RFC 3848's ESMTP… as given."""
        if self.smtputf8 and self.protocol.startswith("ESMTP"):
            return "UTF8SMTP" + self.protocol.removeprefix("ESMTP")
        return self.protocol


def trace_headers(
    hostname: str, delivery: Delivery, recipient: str, *, final: bool = True
) -> bytes:
    """The fields `hostname`'s server prepends to one copy; `final` is False for a captured
    relay copy."""
    date = email.utils.format_datetime(datetime.fromtimestamp(delivery.received_at).astimezone())
    if delivery.client_address:
        received = [
            f"Received: from {delivery.helo} ([{address_literal(delivery.client_address)}])",
            f"\t(envelope-from <{delivery.sender}>)",
            f"\tby {hostname} with {delivery.with_protocol} id {delivery.queue_id}",
        ]
    else:  # made by the server itself (a bounce): no client, no "from" clause
        received = [f"Received: by {hostname} (smtp-tutor) id {delivery.queue_id}"]
    lines = [f"Return-Path: <{delivery.sender}>"] if final else []
    lines += [*received, f"\tfor <{recipient}>; {date}"]
    if delivery.auth_results:
        lines.append(f"Authentication-Results: {delivery.auth_results}")
    lines.append(f"Delivered-To: {recipient}")
    return "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")


class _Maildir(mailbox.Maildir):
    """The standard library's Maildir, cleaning up after an add() that failed late.

    Maildir.add() writes a small message into its file's buffer and flushes it only
    after the point where it cleans up on error: on a full disk the flush fails, the
    file stays open (a leaked descriptor) and stays in tmp/. tests/test_faults.py fills
    a tiny tmpfs to show it. Keeping hold of the temporary file lets us close and remove
    it, so a failed delivery leaves nothing behind.
    """

    _pending: Any = None  # the temporary file of the add() in progress

    def _create_tmp(self) -> Any:
        self._pending = super()._create_tmp()  # type: ignore[misc]
        return self._pending

    def add(self, message: Any) -> str:
        try:
            return super().add(message)
        except BaseException:
            pending = self._pending
            if pending is not None:
                with contextlib.suppress(OSError):
                    pending.close()  # closes the descriptor even when the flush fails
                with contextlib.suppress(OSError):
                    os.remove(pending.name)
            raise
        finally:
            self._pending = None


class MaildirStore:
    """The Maildir root: ROOT/you/, ROOT/alice/, …, ROOT/captured-relay/."""

    def __init__(self, root: Path, hostname: str) -> None:
        self.root = root
        self.hostname = hostname  # the server's name in the Received lines it writes
        self._folders: dict[str, mailbox.Maildir] = {}

    def folder(self, name: str) -> mailbox.Maildir:
        box = self._folders.get(name)
        if box is None:
            box = _Maildir(self.root / name, factory=None, create=True)
            self._folders[name] = box
        return box

    def deliver(self, delivery: Delivery, recipients: list[tuple[str, str]]) -> list[Copy]:
        """Write one copy per (recipient, folder); all or nothing."""
        body = delivery.content.replace(b"\r\n", b"\n")
        written: list[Copy] = []
        try:
            for recipient, folder in recipients:
                box = self.folder(folder)
                final = folder != RELAY_FOLDER
                trace = trace_headers(self.hostname, delivery, recipient, final=final)
                key = box.add(trace + body)
                written.append(Copy(folder, key, recipient))
        except (OSError, mailbox.Error) as error:
            self._discard(written)
            raise StorageError(str(error)) from error
        return written

    def _discard(self, copies: list[Copy]) -> None:
        for copy in copies:
            with contextlib.suppress(OSError):
                self.folder(copy.folder).discard(copy.key)


@dataclass(frozen=True)
class HeaderSummary:
    header_from: str
    header_to: str
    header_cc: str
    subject: str
    date: str


def summarize_headers(content: bytes) -> HeaderSummary:
    """The From/To/Cc/Subject a message claims, robust to headers without addresses.

    Header text is UTF-8 where valid (RFC 6532, SMTPUTF8), every other byte `\\xNN`: a
    byte parse would turn `Jörg <jörg@schüle.example>` into U+FFFD and a false mismatch."""
    text = header_block(content).decode("utf-8", "backslashreplace")
    headers = HeaderParser(policy=compat32).parsestr(text)

    def get(name: str) -> str:
        values = headers.get_all(name) or []
        return ", ".join(" ".join(str(v).split()) for v in values)

    return HeaderSummary(get("From"), get("To"), get("Cc"), get("Subject"), get("Date"))


def header_block(content: bytes) -> bytes:
    """The start of a message up to (at least) its first empty line: all a header parse reads.

    The email parser ends lines at CRLF, CR or LF; any two line endings in a row contain
    one of the three pairs below, and the bytes after that empty line are body. Cutting
    there keeps the parse of a 10 MB message from reading the body (it runs on the
    server's event loop, before the 250).
    """
    found = [
        i for i in (content.find(b"\n\n"), content.find(b"\n\r"), content.find(b"\r\r")) if i >= 0
    ]
    return content[: min(found) + 3] if found else content


def new_queue_id() -> str:
    """A short, sortable, unique id in the spirit of real MTAs' queue ids."""
    now = time.time_ns() // 1000
    return f"{now:X}"[-9:] + os.urandom(2).hex().upper()


RELAY = RELAY_FOLDER
