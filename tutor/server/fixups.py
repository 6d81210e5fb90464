"""Submission fix-ups: what a submission server changes in a message before storing it
(RFC 6409 §8), as Postfix's cleanup(8) does (docs/server.md, "Submission fix-ups").

For a message from a client that logged in with AUTH, the server
- removes every Bcc: and Resent-Bcc: field (RFC 5322 §3.6.3 lets the sending side drop
  them; Postfix's `message_drop_headers` default drops them from all mail);
- adds Date: when there is none (RFC 5322 §3.6.1 requires it; RFC 6409 §8.2);
- adds Message-ID: when there is none (RFC 5322 §3.6.4: SHOULD; RFC 6409 §8.3).

Mail from a client that did not log in is stored as it came: on port 25 this server is
an MX, and lesson 3 shows a typed Bcc: line arriving in every copy.

The fix-ups rewrite the spool before anything reads it, so the header summary, the
lesson checks, the stored copies and any bounce all see the same message. Only the header
section is rewritten; the body is copied unchanged, in pieces.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from tutor.maildir.store import received_date
from tutor.server.spool import SPOOL_THRESHOLD, STEP, MessageSpool

log = logging.getLogger("tutor.server")

DROPPED = frozenset({b"bcc", b"resent-bcc"})
# A field name is printable ASCII but the colon (RFC 5322 §3.6.8); RFC 5322's obsolete
# syntax allows white space before the colon (§4.5), so "Bcc :" is a Bcc field too.
FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
HEADER_LINES = 100  # of a stored message's header section, in its MessageStored event


@dataclass(frozen=True)
class HeaderSection:
    """The fields at the start of a message, each with its continuation lines and CRLFs."""

    fields: list[tuple[bytes, bytes]]  # (lower-case name, the field's whole text)
    end: int  # where the body starts: after the empty line, or at the first non-field line
    separated: bool  # an empty line ended the section


def read_header_section(head: bytes, *, whole: bool) -> HeaderSection | None:
    """The header section of `head`, the start of a message; None when `head` ends before
    the section does and more of the message follows (`whole` is False)."""
    names: list[bytes] = []
    starts: list[int] = []  # where each field begins in `head`
    position = 0
    while position < len(head):
        newline = head.find(b"\r\n", position)
        if newline < 0:  # a piece of a line: the message goes on past what was read
            if not whole:
                return None
            newline = len(head) - 2
        line = head[position : newline + 2]
        if line == b"\r\n":
            return _section(head, names, starts, position, newline + 2, separated=True)
        if line[:1] in (b" ", b"\t") and names:
            pass  # a continuation line: part of the field above
        elif match := FIELD.match(line):
            names.append(match.group(1).lower())
            starts.append(position)
        else:  # a body with no empty line before it: the section ends here
            return _section(head, names, starts, position, position, separated=False)
        position = newline + 2
    if not whole:
        return None
    return _section(head, names, starts, len(head), len(head), separated=False)


def _section(
    head: bytes, names: list[bytes], starts: list[int], stop: int, end: int, *, separated: bool
) -> HeaderSection:
    """Each field's text is cut from `head` once: a field folded over many lines is never
    built up line by line (a hostile header of a million short lines stays linear)."""
    ends = [*starts[1:], stop] if starts else []
    bounds = zip(names, starts, ends, strict=True)
    fields = [(name, head[start:bound]) for name, start, bound in bounds]
    return HeaderSection(fields, end, separated)


def needs_fixups(section: HeaderSection) -> bool:
    """A field to drop, or one to add."""
    names = {name for name, _text in section.fields}
    return bool(names & DROPPED) or not {b"date", b"message-id"} <= names


def fixed_fields(section: HeaderSection, *, queue_id: str, hostname: str, now: float) -> bytes:
    """The fields of the section with the fix-ups made: Bcc: gone, Date: and Message-ID:
    added at the end when missing (where Postfix's cleanup adds them too)."""
    kept = [text for name, text in section.fields if name not in DROPPED]
    kept = [text if text.endswith(b"\r\n") else text + b"\r\n" for text in kept]
    names = {name for name, _text in section.fields}
    if b"date" not in names:
        kept.append(f"Date: {received_date(now)}\r\n".encode())
    if b"message-id" not in names:
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
        kept.append(f"Message-ID: <{stamp}.{queue_id}@{hostname}>\r\n".encode())
    return b"".join(kept)


def submission_fixups(
    spool: MessageSpool, authenticated: bool | None, queue_id: str, hostname: str
) -> MessageSpool:
    """The spool to store: `spool` itself when nothing changes (mail from a client that
    did not log in, or a message that needs nothing), else a new spool with the fixed
    header section and the same body. The caller closes whichever it gets; `spool`
    stays open for its own owner."""
    if not authenticated:
        return spool
    try:
        return _fixed(spool, queue_id, hostname)
    except Exception:  # a courtesy, never a reason to refuse mail: store it as it came
        log.exception("queue id %s: submission fix-ups failed", queue_id)
        return spool


def _fixed(spool: MessageSpool, queue_id: str, hostname: str) -> MessageSpool:
    head = spool.read(0, SPOOL_THRESHOLD)
    section = read_header_section(head, whole=spool.size <= len(head))
    if section is None:  # a header section longer than the threshold: left as it came
        log.info("queue id %s: header section too long for the submission fix-ups", queue_id)
        return spool
    if not needs_fixups(section):
        return spool
    header = fixed_fields(section, queue_id=queue_id, hostname=hostname, now=time.time())
    if section.separated or section.end < spool.size:  # a body follows: the empty line
        header += b"\r\n"
    return _rewritten(spool, header, section.end) or spool


def _rewritten(spool: MessageSpool, header: bytes, body_start: int) -> MessageSpool | None:
    """A new spool: `header`, then `spool` from `body_start` on; None if it cannot be
    written (the message is then stored unchanged rather than refused)."""
    fixed = MessageSpool(spool.directory, spool.threshold, spool.pool)
    fixed.write(header)
    offset = body_start
    while offset < spool.size and fixed.failed is None:
        piece = spool.read(offset, STEP)
        if not piece:
            break
        fixed.write(piece)
        offset += len(piece)
    if fixed.failed is not None:
        log.warning("submission fix-ups not made: %s", fixed.failed)
        fixed.close()
        return None
    return fixed


def header_lines(head: bytes) -> tuple[str, ...]:
    """The first lines of a message's header section as stored, for lesson checks: the
    lines before the first empty one, at most HEADER_LINES of them."""
    lines: list[str] = []
    for line in head.split(b"\r\n", HEADER_LINES)[:HEADER_LINES]:
        if not line:
            break
        lines.append(line.decode("utf-8", "replace"))
    return tuple(lines)
