"""Step checks: facts about what happened, judged on the server's capture (never on typing).

Each check looks at the events of the learner's session since the step began: replies,
stored messages (with their copies and headers), bounces, TLS, AUTH.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tutor.engine.model import CheckKind
from tutor.smtp.events import (
    Authenticated,
    BounceSent,
    DnsLookup,
    DsnDelivered,
    Event,
    Exchange,
    HostReached,
    MailboxRead,
    MessageStored,
    TlsStarted,
)

if TYPE_CHECKING:
    from tutor.smtp.mime import MimePart


def mailbox_words(folder: str, *, address: bool = True, domain: str = "tutor.test") -> str:
    """A mailbox folder in words: the learner's own is "your mailbox", never "you's"."""
    if folder == "you":  # the learner's mailbox in every lesson (persona.DEFAULT_MAILBOXES)
        return f"your mailbox (you@{domain})" if address else "your mailbox"
    return f"{folder}'s mailbox"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    why: str  # what is missing, in words a learner understands


def _messages(events: Sequence[Event]) -> list[MessageStored]:
    return [e for e in events if isinstance(e, MessageStored)]


def _exchanges(events: Sequence[Event]) -> list[Exchange]:
    return [e for e in events if isinstance(e, Exchange)]


def _last_message(events: Sequence[Event]) -> MessageStored | None:
    messages = _messages(events)
    return messages[-1] if messages else None


def _named(*values: str) -> list[str]:
    """The addresses header values name; the header parser is imported with the first
    check that needs one, not with the lesson (a first screen sooner)."""
    from tutor.smtp.envelope import header_addresses

    return header_addresses(*values)


def _reply(events: Sequence[Event], code: Any) -> Verdict:
    codes = [e.code for e in _exchanges(events)]
    return Verdict(int(code) in codes, f"no {code} reply yet")


def _enhanced(events: Sequence[Event], code: Any) -> Verdict:
    found = [e.reply.enhanced for e in _exchanges(events) if e.reply is not None]
    return Verdict(str(code) in found, f"no reply with enhanced code {code} yet")


def _stored_in(events: Sequence[Event], folder: Any) -> Verdict:
    ok = any(c.folder == folder for m in _messages(events) for c in m.copies)
    return Verdict(ok, f"no message has reached {mailbox_words(folder)} yet")


def _not_stored_in(events: Sequence[Event], folder: Any) -> Verdict:
    message = _last_message(events)
    ok = message is not None and all(c.folder != folder for c in message.copies)
    return Verdict(ok, f"the message must not reach {mailbox_words(folder)}")


def _copies(events: Sequence[Event], count: Any) -> Verdict:
    message = _last_message(events)
    ok = message is not None and len(message.copies) == int(count)
    return Verdict(ok, f"the message should be stored {count} times (once per accepted mailbox)")


def _to_names(events: Sequence[Event], address: Any) -> Verdict:
    message = _last_message(events)
    named = _named(message.header_to) if message else []
    ok = str(address).lower() in {a.lower() for a in named}
    return Verdict(ok, f"the To: header should name {address}")


def _to_excludes(events: Sequence[Event], address: Any) -> Verdict:
    message = _last_message(events)
    named = _named(message.header_to, message.header_cc) if message else []
    ok = message is not None and str(address).lower() not in {a.lower() for a in named}
    return Verdict(ok, f"To: and Cc: must not name {address}")


def _sender_differs(events: Sequence[Event], wanted: Any) -> Verdict:
    message = _last_message(events)
    if message is None:
        return Verdict(False, "no message stored yet")
    comparison = message.comparison
    return Verdict(
        comparison.sender_matches != bool(wanted),
        "From: should claim someone other than the envelope sender",
    )


def _mismatch(events: Sequence[Event], wanted: Any) -> Verdict:
    message = _last_message(events)
    if message is None:
        return Verdict(False, "no message stored yet")
    comparison = message.comparison
    return Verdict(comparison.mismatch == bool(wanted), "envelope and headers should disagree")


def _refused(events: Sequence[Event], count: Any) -> Verdict:
    refused = [e for e in _exchanges(events) if e.verb == "RCPT" and (e.code or 0) >= 400]
    return Verdict(len(refused) >= int(count), f"at least {count} recipient(s) should be refused")


def _bounce_to(events: Sequence[Event], address: Any) -> Verdict:
    ok = any(isinstance(e, BounceSent) and e.to.lower() == str(address).lower() for e in events)
    return Verdict(ok, f"no bounce has been sent to {address} yet")


def _any_bounce(events: Sequence[Event], wanted: Any) -> Verdict:
    ok = any(isinstance(e, BounceSent) and e.copy is not None for e in events)
    return Verdict(ok == bool(wanted), "no bounce has been sent yet")


def _tls(events: Sequence[Event], wanted: Any) -> Verdict:
    ok = any(isinstance(e, TlsStarted) for e in events)
    return Verdict(ok == bool(wanted), "TLS has not started yet")


def _authenticated(events: Sequence[Event], wanted: Any) -> Verdict:
    ok = any(isinstance(e, Authenticated) and e.success for e in events)
    return Verdict(ok == bool(wanted), "not authenticated yet")


def _envelope_sender(events: Sequence[Event], address: Any) -> Verdict:
    message = _last_message(events)
    ok = message is not None and message.sender.lower() == str(address).lower()
    return Verdict(ok, f"the envelope sender should be <{address}>")


def _verdict(name: str, label: str) -> Callable[[Sequence[Event], Any], Verdict]:
    """A check on one of the last message's simulated verdicts (spf, dmarc)."""

    def check(events: Sequence[Event], wanted: Any) -> Verdict:
        message = _last_message(events)
        got = str(getattr(message, name, "")) if message else ""
        return Verdict(
            got == str(wanted),
            f"the last message's {label} verdict should be {wanted} (it is {got or 'unknown'})",
        )

    return check


_spf = _verdict("spf", "SPF")
_dmarc = _verdict("dmarc", "DMARC")


def _client_address(events: Sequence[Event], wanted: Any) -> Verdict:
    message = _last_message(events)
    got = message.client_address if message else ""
    return Verdict(got == str(wanted), f"the message should come from client address {wanted}")


def _last_stored_in(events: Sequence[Event], folder: Any) -> Verdict:
    message = _last_message(events)
    if message is None:
        return Verdict(False, f"no message has reached {mailbox_words(folder)} yet")
    folders = sorted({c.folder for c in message.copies})
    return Verdict(
        folder in folders,
        f"the last message should reach {mailbox_words(folder)} (it went to {', '.join(folders)})",
    )


def _to_only(events: Sequence[Event], address: Any) -> Verdict:
    message = _last_message(events)
    if message is None:
        return Verdict(False, "no message stored yet")
    named = _named(message.header_to)
    ok = {a.lower() for a in named} == {str(address).lower()}
    return Verdict(
        ok, f"To: should name only {address} (it names {', '.join(named) or 'no address'})"
    )


def _refused_alongside(events: Sequence[Event], count: Any) -> Verdict:
    """RCPT refusals in the transaction of the last stored message (after its MAIL FROM)."""
    last = max((i for i, e in enumerate(events) if isinstance(e, MessageStored)), default=-1)
    if last < 0:
        return Verdict(False, "no message stored yet")
    refused = 0
    for event in reversed(events[:last]):
        if not isinstance(event, Exchange) or event.kind != "command":
            continue
        if event.verb == "MAIL" and event.code == 250:
            break
        if event.verb == "RCPT" and (event.code or 0) >= 400:
            refused += 1
    return Verdict(
        refused >= int(count),
        f"at least {count} recipient(s) of the delivered message should be refused "
        f"(in its own transaction; {refused} were)",
    )


def _bounce_not_to(events: Sequence[Event], address: Any) -> Verdict:
    bounces = [e for e in events if isinstance(e, BounceSent)]
    sent = [b.to for b in bounces if b.copy is not None]
    ok = any(to.lower() != str(address).lower() for to in sent)
    if sent:
        why = f"a bounce should go to someone other than {address} (it went to {sent[-1]})"
    elif bounces:
        why = "a delivery failed, but the sender was <>, so no bounce was sent"
    else:
        why = "no bounce has been sent yet (a bounce follows a delivery that fails after the 250)"
    return Verdict(ok, why)


def helo_claim_problem(helo: str, client_address: str, domain: str = "") -> str:
    """Why a HELO name is *not* a claim to be some other host; "" when it is one.

    A claim: a fully qualified domain name (it has a dot) that is not this machine
    (localhost, its host name), not an address literal, and that the simulated DNS does
    not point at the address the server saw. `domain` narrows it to hosts in that domain.
    """
    name = helo.strip().rstrip(".").lower()
    if not name:
        return "the message has no HELO name"
    if name.startswith("["):
        return f"{helo} is an address literal: it names an address, not a host"
    if name == "localhost" or name.endswith(".localhost"):
        return f"{helo} is this machine's own name"
    if "." not in name:
        return f"{helo} is not a full domain name (it needs a dot, like mail.example.net)"
    if name == socket.gethostname().lower():
        return f"{helo} is this machine's own host name"
    wanted = domain.strip(".").lower()
    if wanted and name != wanted and not name.endswith("." + wanted):
        return f"the HELO name should be a host in {domain} (it is {helo})"
    from tutor.world import dnsdata

    record = dnsdata.lookup(name)
    if record is not None and client_address in record.a:
        return (
            f"{helo} points at {client_address} in the simulated DNS, the address the "
            "message came from: that claim is true"
        )
    return ""


def _helo_claims(events: Sequence[Event], wanted: Any) -> Verdict:
    message = _last_message(events)
    if message is None:
        return Verdict(False, "no message stored yet")
    domain = wanted if isinstance(wanted, str) else ""
    problem = helo_claim_problem(message.helo, message.client_address, domain)
    if wanted is False:
        return Verdict(bool(problem), f"the HELO name {message.helo} should not claim another host")
    return Verdict(not problem, f"the Received: line should name a host not yours: {problem}")


def _body_lines(events: Sequence[Event]) -> tuple[str, ...] | None:
    message = _last_message(events)
    if message is None:
        return None
    return message.body_lines


def _body_has_line(events: Sequence[Event], wanted: Any) -> Verdict:
    lines = _body_lines(events)
    ok = lines is not None and str(wanted) in lines
    return Verdict(ok, f"the stored message should hold a line {wanted!r}")


def _body_lacks_line(events: Sequence[Event], wanted: Any) -> Verdict:
    lines = _body_lines(events)
    ok = lines is not None and str(wanted) not in lines
    return Verdict(ok, f"the stored message should not hold a line {wanted!r}")


def _looked_up(events: Sequence[Event], question: Any) -> Verdict:
    """`MX example.org`: the world's DNS server answered that question in the step."""
    rdtype, _, name = str(question).partition(" ")
    wanted = (rdtype.upper(), name.lower().rstrip("."))
    asked = {(e.rdtype, e.name) for e in events if isinstance(e, DnsLookup)}
    return Verdict(wanted in asked, f"ask DNS for the {wanted[0]} records of {wanted[1]}")


def _reached(events: Sequence[Event], host: Any) -> Verdict:
    """A session was opened with this host of the world (any greeting)."""
    ok = any(isinstance(e, HostReached) and e.host == host and e.code for e in events)
    return Verdict(ok, f"connect to {host}")


def _tried(events: Sequence[Event], host: Any) -> Verdict:
    """A connection to this host was attempted, whatever came of it (refused included)."""
    ok = any(isinstance(e, HostReached) and e.host == host for e in events)
    return Verdict(ok, f"try to connect to {host}")


def _delivered_to(events: Sequence[Event], address: Any) -> Verdict:
    """A message stored in the step was accepted for this envelope recipient."""
    wanted = str(address).lower()
    ok = any(wanted in (r.lower() for r in m.recipients) for m in _messages(events))
    return Verdict(ok, f"a message stored for <{address}>")


def _dsn(events: Sequence[Event], action: Any) -> Verdict:
    """A DSN with this Action (failed, delayed) was delivered to the sender in the step."""
    ok = any(isinstance(e, DsnDelivered) and e.action == action for e in events)
    return Verdict(ok, f"a DSN saying Action: {action}, delivered to the sender")


def _auth_result(events: Sequence[Event], verdict: Any) -> Verdict:
    """`dkim=pass`: the last mailbox read in the step says so in Authentication-Results."""
    reads = [e for e in events if isinstance(e, MailboxRead)]
    ok = bool(reads) and str(verdict).lower() in reads[-1].results
    return Verdict(ok, f"a stored copy whose Authentication-Results say {verdict}")


def _mime_parts(events: Sequence[Event]) -> list[MimePart]:
    """The parts of the last stored message's multipart body (smtp/mime.py), read from
    the body lines the server recorded; the parser is imported with the first MIME check."""
    from tutor.smtp.mime import parse_body_lines

    lines = _body_lines(events)
    tree = parse_body_lines(lines) if lines is not None else None
    return list(tree.walk())[1:] if tree is not None else []


def _mime_part(events: Sequence[Event], wanted: Any) -> Verdict:
    """`text/plain` or `text/plain quoted-printable`: a part of that type (and encoding)."""
    content_type, _, encoding = str(wanted).lower().partition(" ")
    ok = any(
        part.content_type == content_type and encoding.strip() in ("", part.encoding)
        for part in _mime_parts(events)
    )
    return Verdict(ok, f"the stored message should have a {wanted} part")


def _decoded_has(events: Sequence[Event], wanted: Any) -> Verdict:
    """A base64 or quoted-printable part, encoded without fault, whose decoded text
    contains this text: text sent as is proves no encoding."""
    ok = any(
        part.encoding in ("base64", "quoted-printable")
        and not part.problems
        and str(wanted) in (part.text or "")
        for part in _mime_parts(events)
    )
    return Verdict(ok, f"a base64 or quoted-printable part should decode to text with {wanted!r}")


def _attachment(events: Sequence[Event], wanted: Any) -> Verdict:
    """A part that names this file (Content-Disposition filename=, or Content-Type name=)."""
    ok = any(part.filename == str(wanted) for part in _mime_parts(events))
    return Verdict(ok, f"the stored message should have a part named {wanted}")


def _header_fields(events: Sequence[Event]) -> list[tuple[str, str]] | None:
    """The last stored message's header fields as stored (after any submission fix-ups,
    server/fixups.py), unfolded: (lower-case name, value); None when none was stored."""
    message = _last_message(events)
    if message is None:
        return None
    fields: list[tuple[str, str]] = []
    for line in message.header_lines:
        if line[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip()}")
        elif ":" in line:
            name, _, value = line.partition(":")
            fields.append((name.strip().lower(), value.strip()))
    return fields


def _has_field(fields: list[tuple[str, str]], wanted: str) -> bool:
    """`Name` (a field of that name) or `Name: text` (one whose value contains the text)."""
    name, colon, text = wanted.partition(":")
    name, text = name.strip().lower(), text.strip().lower()
    return any(n == name and (not colon or text in v.lower()) for n, v in fields)


def _header_has(events: Sequence[Event], wanted: Any) -> Verdict:
    fields = _header_fields(events)
    ok = fields is not None and _has_field(fields, str(wanted))
    return Verdict(ok, f"the stored message's header should have {wanted}")


def _header_lacks(events: Sequence[Event], wanted: Any) -> Verdict:
    fields = _header_fields(events)
    ok = fields is not None and not _has_field(fields, str(wanted))
    return Verdict(ok, f"the stored message's header should have no {wanted}")


def _fields_differ(events: Sequence[Event], wanted: Any) -> Verdict:
    """`Reply-To From`: both fields are there, and they name different addresses."""
    first, _, second = str(wanted).partition(" ")
    fields = _header_fields(events) or []
    values = {name: value for name, value in fields}
    one, other = values.get(first.lower()), values.get(second.strip().lower())
    ok = (
        one is not None
        and other is not None
        and {a.lower() for a in _named(one)} != {a.lower() for a in _named(other)}
    )
    return Verdict(ok, f"{first}: and {second.strip()}: should name different addresses")


CHECK_KINDS: dict[CheckKind, Callable[[Sequence[Event], Any], Verdict]] = {
    "reply": _reply,
    "enhanced": _enhanced,
    "stored_in": _stored_in,
    "not_stored_in": _not_stored_in,
    "copies": _copies,
    "to_names": _to_names,
    "to_excludes": _to_excludes,
    "from_differs": _sender_differs,
    "mismatch": _mismatch,
    "recipients_refused": _refused,
    "bounce_to": _bounce_to,
    "bounced": _any_bounce,
    "tls": _tls,
    "authenticated": _authenticated,
    "envelope_sender": _envelope_sender,
    "spf": _spf,
    "dmarc": _dmarc,
    "client_address": _client_address,
    "last_stored_in": _last_stored_in,
    "to_only": _to_only,
    "refused_alongside": _refused_alongside,
    "bounce_not_to": _bounce_not_to,
    "helo_claims": _helo_claims,
    "body_has_line": _body_has_line,
    "body_lacks_line": _body_lacks_line,
    "looked_up": _looked_up,
    "reached": _reached,
    "tried": _tried,
    "delivered_to": _delivered_to,
    "dsn": _dsn,
    "auth_result": _auth_result,
    "mime_part": _mime_part,
    "decoded_has": _decoded_has,
    "attachment": _attachment,
    "header_has": _header_has,
    "header_lacks": _header_lacks,
    "fields_differ": _fields_differ,
}


def evaluate(kind: CheckKind, value: Any, events: Sequence[Event]) -> Verdict:
    return CHECK_KINDS[kind](events, value)
