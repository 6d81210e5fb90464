"""Storage: one Maildir per local mailbox, plus a folder for captured relay mail.

Each accepted recipient gets its own copy, with trace headers prepended: Return-Path
(the envelope sender), Received (one recipient in `for`, so Bcc never leaks) and
Delivered-To. Return-Path is written at final delivery only (RFC 5321 §4.4): a captured
relay copy was relayed, not delivered, so its envelope sender is in Received's
`(envelope-from <…>)` alone. The copies of a message are written all or nothing, and
durably, before the 250 (maildir/durable.py: each copy in tmp/ and one record in a
delivery log, the log flushed, then every copy renamed into new/; the log replayed at
the next start if the process died), in the layout the standard library's `mailbox`
reads and writes, so any MUA can open the folders. Lines are stored with LF endings, the
Maildir custom.
"""

from __future__ import annotations

import email.utils
import itertools
import mailbox
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Generic, Protocol

from tutor.maildir.durable import (
    Body,
    DeliveryLog,
    Recovery,
    Rounds,
    Tag,
    make_durable_dirs,
)
from tutor.smtp.events import RELAY_FOLDER, Copy
from tutor.smtp.wire import address_literal

CHUNK = 1 << 20  # how much of a message is held at once while a copy is written


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
    content: bytes | Readable  # as received (CRLF, dot-stuffing undone), or the spool file
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
    date = received_date(delivery.received_at)
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


_last_date: tuple[tuple[datetime, int], str] | None = None  # (local second, fold), its text


def received_date(timestamp: float) -> str:
    """The RFC 5322 date of a local time, as Received ends with: seconds only, so the
    text of the last second is kept (finding the local offset is most of the work, and a
    busy server writes many copies a second)."""
    global _last_date
    local = datetime.fromtimestamp(timestamp)
    second = (local.replace(microsecond=0), local.fold)  # fold: the repeated hour of DST
    if _last_date is None or _last_date[0] != second:
        _last_date = (second, email.utils.format_datetime(local.astimezone()))
    return _last_date[1]


class Readable(Protocol):
    """Message content held in a file rather than in memory: read from its start for each
    copy."""

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def read(self, size: int = -1, /) -> bytes: ...


def content_chunks(content: bytes | Readable) -> Iterator[bytes]:
    """The content in pieces of at most CHUNK bytes, from its start."""
    if isinstance(content, bytes):
        view = memoryview(content)
        for start in range(0, len(view), CHUNK):
            yield bytes(view[start : start + CHUNK])
        return
    content.seek(0)
    while chunk := content.read(CHUNK):
        yield chunk


def lf_endings(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Each CRLF made LF, as `bytes.replace` would, across chunk boundaries: a CR that
    ends a chunk waits for the next one."""
    held = b""
    for chunk in chunks:
        data = held + chunk
        held = b"\r" if data.endswith(b"\r") else b""
        if held:
            data = data[:-1]
        if data:
            yield data.replace(b"\r\n", b"\n")
    if held:
        yield held


def message_body(content: bytes | Readable) -> Body:
    """What every stored copy holds after its trace headers: the message with LF endings,
    made once for all the copies (or, for a message in a file, read afresh in pieces)."""
    if isinstance(content, bytes):
        return content.replace(b"\r\n", b"\n")
    return partial(_lf_chunks, content)


def _lf_chunks(content: Readable) -> Iterator[bytes]:
    return lf_endings(content_chunks(content))


class MaildirStore:
    """The Maildir root: ROOT/you/, ROOT/alice/, …, ROOT/captured-relay/, and the delivery
    logs of the servers writing to it under ROOT/.smtp-tutor/deliveries/."""

    def __init__(self, root: Path, hostname: str) -> None:
        self.root = root
        self.hostname = hostname  # the server's name in the Received lines it writes
        self._folders: dict[str, mailbox.Maildir] = {}
        self._boxes: dict[str, str] = {}
        self._log = DeliveryLog(root)

    def folder(self, name: str) -> mailbox.Maildir:
        """The mailbox folder, made (durably, with tmp/ new/ cur/) the first time."""
        box = self._folders.get(name)
        if box is None:
            path = self.root / name
            for directory in (path / "tmp", path / "new", path / "cur"):
                make_durable_dirs(directory)  # also the ones a hand-made Maildir lacks
            box = mailbox.Maildir(path, factory=None, create=False)
            self._folders[name] = box
        return box

    def _box(self, name: str) -> str:
        """The folder's path as a string, made the first time (a delivery joins names to it
        on the server's loop: strings, not pathlib objects, for every copy)."""
        box = self._boxes.get(name)
        if box is None:
            self.folder(name)
            box = self._boxes[name] = os.fspath(self.root / name)
        return box

    def recover(self) -> Recovery:
        """Replay what a server that died left in its log (call at start, before accepting
        mail), then claim a log folder of our own."""
        recovery = self._log.recover()
        self._log.claim()
        return recovery

    def close(self) -> None:
        """Checkpoint our log and let go of its folder (at stop, with no delivery in
        progress): a clean stop leaves no log behind."""
        self._log.release()

    def deliver(self, delivery: Delivery, recipients: list[tuple[str, str]]) -> list[Copy]:
        """Write one copy per (recipient, folder): all or nothing, durably, before the caller
        replies 250."""
        [outcome] = self.deliver_many([(delivery, recipients)])
        if isinstance(outcome, StorageError):
            raise outcome
        return outcome

    def deliver_many(
        self, deliveries: Sequence[tuple[Delivery, list[tuple[str, str]]]]
    ) -> list[list[Copy] | StorageError]:
        """Several deliveries committed together, sharing the waits for the disk: each is
        all or nothing on its own, and gives its copies or the error that stopped it."""
        rounds: DeliveryRounds[int] = DeliveryRounds(self)
        for index, (delivery, recipients) in enumerate(deliveries):
            rounds.add(index, delivery, recipients)
        outcomes: dict[int, list[Copy] | StorageError] = {}
        while rounds.busy:
            outcomes.update(rounds.step())
        return [outcomes[index] for index in range(len(deliveries))]

    def _copies(
        self, delivery: Delivery, recipients: list[tuple[str, str]]
    ) -> list[tuple[str, bytes]]:
        """Each copy's folder and trace headers (what it holds before the shared body)."""
        copies: list[tuple[str, bytes]] = []
        for recipient, folder in recipients:
            box = self._box(folder)
            final = folder != RELAY_FOLDER
            copies.append((box, trace_headers(self.hostname, delivery, recipient, final=final)))
        return copies


class DeliveryRounds(Generic[Tag]):
    """Messages stored in rounds that share each wait for the disk (durable.Rounds): one
    round per message, which may join at any round, and comes out as its copies or a
    StorageError."""

    def __init__(self, store: MaildirStore) -> None:
        self._store = store
        self._rounds: Rounds[Tag] = Rounds(store._log)
        self._recipients: dict[Tag, list[tuple[str, str]]] = {}
        self._refused: dict[Tag, StorageError] = {}  # failed before their first round

    @property
    def busy(self) -> bool:
        return bool(self._refused) or self._rounds.busy

    @property
    def waited(self) -> float:
        """Seconds the last round waited for the disk."""
        return self._rounds.waited

    def add(
        self,
        tag: Tag,
        delivery: Delivery,
        recipients: list[tuple[str, str]],
        *,
        now: bool = False,
    ) -> None:
        """A message for the next round; `now`: written at once, while the disk works on
        the round under way."""
        try:
            copies = self._store._copies(delivery, recipients)
        except (OSError, mailbox.Error) as error:
            self._refused[tag] = _storage_error(error)
            return
        self._recipients[tag] = recipients
        body = message_body(delivery.content)
        self._rounds.add(tag, delivery.queue_id, copies, body, now=now)

    def step(self) -> dict[Tag, list[Copy] | StorageError]:
        """One whole round: the messages that ended in it."""
        self.begin()
        return self.end()

    def begin(self, on_synced: Callable[[], None] | None = None) -> None:
        """Every message waiting written, the log's flush issued (durable.Rounds.begin)."""
        self._rounds.begin(on_synced)

    def end(self) -> dict[Tag, list[Copy] | StorageError]:
        """The wait for the disk, then the copies into new/; the messages that ended."""
        ended: dict[Tag, list[Copy] | StorageError] = dict(self._refused)
        self._refused.clear()
        for tag, keys in self._rounds.end().items():
            recipients = self._recipients.pop(tag)
            if isinstance(keys, Exception):
                ended[tag] = _storage_error(keys)
            else:
                ended[tag] = [
                    Copy(folder, key, recipient)
                    for (recipient, folder), key in zip(recipients, keys, strict=True)
                ]
        return ended


def _storage_error(error: Exception) -> StorageError:
    """A failed write as the server reports it; anything else is a fault, raised as is."""
    if not isinstance(error, OSError | mailbox.Error):
        raise error
    stored = StorageError(str(error))
    stored.__cause__ = error
    return stored


@dataclass(frozen=True)
class HeaderSummary:
    header_from: str
    header_to: str
    header_cc: str
    subject: str
    date: str


_SUMMARIZED = ("from", "to", "cc", "subject", "date")  # in HeaderSummary's order
_LINE_END = re.compile(r"\r\n|\r|\n")
# The email parser's test for a header line (email.feedparser.headerRE): a Unix From_
# line, a field name (printable ASCII but the colon) then a colon, or a continuation.
_HEADER_LINE = re.compile(r"From |[\041-\071\073-\176]*:|[\t ]")


def summarize_headers(content: bytes) -> HeaderSummary:
    """The From/To/Cc/Subject/Date a message claims, robust to headers without addresses.

    Header text is UTF-8 where valid (RFC 6532, SMTPUTF8), every other byte `\\xNN`: a
    byte parse would turn `Jörg <jörg@schüle.example>` into U+FFFD and a false mismatch.

    This is what the standard library's HeaderParser (compat32) gives for these five
    fields, each value's whitespace runs made one space and repeated fields joined with
    ", ", read in one pass: the server summarizes every message before its 250, and the
    full parse of every field was a tenth of its time per message. The email parser's
    rules are kept line for line (email/feedparser.py, `_parsegen` and
    `_parse_headers`); tests/test_header_summary.py checks the two agree."""
    text = header_block(content).decode("utf-8", "backslashreplace")
    lines = _LINE_END.split(text)
    if not lines[-1]:
        lines.pop()  # the text ended with a line end (or was empty): no partial line
    found: dict[str, list[list[str]]] = {}  # field name -> each occurrence's pieces
    current: list[str] | None = None  # the pieces of the field being read, if summarized
    match = _HEADER_LINE.match
    for line in lines:
        if not match(line):
            break  # the empty line, or the body's first line: the header section ends
        if line[0] in " \t":
            if current is not None:
                current.append(line)  # a continuation: ignored after no field at all
            continue
        current = None
        if line.startswith("From "):
            continue  # a Unix From_ line, wherever it is, is no field
        name, _, value = line.partition(":")
        key = name.lower()
        if key in _SUMMARIZED:
            current = [value]
            found.setdefault(key, []).append(current)
    texts = [
        ", ".join([" ".join("".join(pieces).split()) for pieces in found.get(name, ())])
        for name in _SUMMARIZED
    ]
    return HeaderSummary(*texts)


def header_block(content: bytes) -> bytes:
    """The start of a message up to (at least) its first empty line: all a header parse reads.

    The email parser ends lines at CRLF, CR or LF; any two line endings in a row contain
    one of the three pairs below, and the bytes after that empty line are body. Cutting
    there keeps the parse of a 10 MB message from reading the body (it runs on the
    server's event loop, before the 250).
    """
    end = len(content)  # each search only looks before the earliest pair found so far
    first = -1
    for pair in (b"\n\r", b"\n\n", b"\r\r"):
        found = content.find(pair, 0, end)
        if found >= 0:
            first, end = found, found + 1
    return content[: first + 3] if first >= 0 else content


# The last four digits of a queue id: a count from a random start, so ids made in the same
# microsecond in one process differ (random ones could meet), and other processes' ids
# still differ by chance; no random number (a system call) per message.
_queue_sequence = itertools.count(int.from_bytes(os.urandom(2), "big"))
if hasattr(os, "register_at_fork"):  # a forked child counts from a start of its own
    os.register_at_fork(
        after_in_child=lambda: globals().update(
            _queue_sequence=itertools.count(int.from_bytes(os.urandom(2), "big"))
        )
    )


def new_queue_id() -> str:
    """A short, sortable, unique id in the spirit of real MTAs' queue ids."""
    now = time.time_ns() // 1000
    return f"{now:X}"[-9:] + f"{next(_queue_sequence) & 0xFFFF:04X}"


RELAY = RELAY_FOLDER
