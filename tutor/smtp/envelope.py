"""Envelope against headers: where a message went versus what it claims (stdlib only).

The envelope (MAIL FROM / RCPT TO) decides delivery; From:/To:/Cc: are just text. The
comparison is robust to headers without any address, like the seed's `From: Bugs Bunny`.
Addresses are compared decoded: UTF-8 as SMTPUTF8 and RFC 6532 allow it, IDNA domains
(xn--) as Unicode, and case-insensitively, so honest international mail is no mismatch.
"""

from __future__ import annotations

import contextlib
import unicodedata
from dataclasses import dataclass
from email.utils import getaddresses
from functools import cached_property

from tutor.smtp.headers import decode_words


def header_addresses(*values: str) -> list[str]:
    """The email addresses named in header values (display names without one are skipped)."""
    return [address for _name, address in _mailboxes(*values)]


# Addresses are read from the first 32 KiB of a field: 100 recipients (the server's limit)
# take a few KiB, while a To: of 9 MB would take minutes to parse and fill the table with
# thousands of rows (docs/server.md, "Text from the wire on screen").
COMPARED_LIMIT = 32 * 1024


def compared_part(value: str) -> str:
    """The part of a field whose addresses are compared: all of it up to COMPARED_LIMIT,
    else its start, cut after a comma so that no address is cut in two."""
    if len(value) <= COMPARED_LIMIT:
        return value
    comma = value.rfind(",", 0, COMPARED_LIMIT)
    return value[:comma] if comma > 0 else value[:COMPARED_LIMIT]


def _mailboxes(*values: str) -> list[tuple[str, str]]:
    """(display name, address) for every mailbox with an address; names decoded (RFC 2047)."""
    return [
        (decode_words(name), address)
        for name, address in getaddresses([compared_part(v) for v in values if v])
        if "@" in address
    ]


def address_key(address: str) -> str:
    """An address as compared: NFC, case folded, IDNA labels (xn--) as Unicode."""
    local, at, domain = address.rpartition("@")
    if not at:
        return _fold(address)
    return f"{_fold(local)}@{'.'.join(_label(label) for label in domain.split('.'))}"


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def _label(label: str) -> str:
    if label[:4].lower() == "xn--":
        with contextlib.suppress(UnicodeError):  # not valid punycode: compared as written
            label = label.encode("ascii").decode("idna")
    return _fold(label)


@dataclass(frozen=True)
class Pair:
    """One row of the envelope-against-headers table: like beside like, or None on the side
    that has nothing to match (never a neighbour's unrelated address)."""

    role: str  # "sender" or "recipient"
    envelope: str | None  # "MAIL FROM:<a>" / "RCPT TO:<b>"
    header: str | None  # "From: Name <a>", "To: b", "To: Daffy Duck"
    verdict: str  # "same", "differs", "envelope only", "headers only"


SAME = "same"
DIFFERS = "differs"
ENVELOPE_ONLY = "envelope only"
HEADERS_ONLY = "headers only"
NO_ADDRESS = "  (no address at all)"


@dataclass(frozen=True)
class Comparison:
    sender: str
    header_from: str
    recipients: tuple[str, ...]
    header_to: str
    header_cc: str

    # Each field is parsed once (cached_property writes past the frozen dataclass's guard).
    @cached_property
    def from_addresses(self) -> list[str]:
        return header_addresses(self.header_from)

    @cached_property
    def named_addresses(self) -> list[str]:
        return header_addresses(self.header_to, self.header_cc)

    @cached_property
    def _named(self) -> dict[str, list[tuple[str, str]]]:
        """(how it is shown, address) for each mailbox of To: and of Cc:."""
        return {"To": _named("To", self.header_to), "Cc": _named("Cc", self.header_cc)}

    @property
    def sender_matches(self) -> bool:
        """True when the From: header names the envelope sender."""
        return address_key(self.sender) in {address_key(a) for a in self.from_addresses}

    @property
    def unnamed_recipients(self) -> tuple[str, ...]:
        """Envelope recipients that To:/Cc: never mention (Bcc, or a forgery)."""
        named = {address_key(a) for a in self.named_addresses}
        return tuple(r for r in self.recipients if address_key(r) not in named)

    @property
    def named_not_recipients(self) -> tuple[str, ...]:
        """Addresses To:/Cc: claim that this message was not delivered to."""
        envelope = {address_key(r) for r in self.recipients}
        return tuple(a for a in self.named_addresses if address_key(a) not in envelope)

    @property
    def mismatch(self) -> bool:
        return (
            not self.sender_matches
            or bool(self.unnamed_recipients)
            or bool(self.named_not_recipients)
        )

    def pairs(self) -> list[Pair]:
        """The table's rows: the sender beside From:, then each address beside the same
        address on the other side, or beside None when the other side never names it."""
        return self._sender_pairs() + self._recipient_pairs()

    def _sender_pairs(self) -> list[Pair]:
        envelope = f"MAIL FROM:<{self.sender}>"
        mailboxes = _mailboxes(self.header_from)
        if not mailboxes:  # no From:, or one without an address: still the sender's claim
            claim = _no_address("From", self.header_from) if self.header_from else None
            return [Pair("sender", envelope, claim, DIFFERS)]
        key = address_key(self.sender)
        same = [m for m in mailboxes if address_key(m[1]) == key]
        others = [m for m in mailboxes if address_key(m[1]) != key]
        if len(mailboxes) == 1:  # the field as written: a name the parser drops stays
            verdict = SAME if same else DIFFERS
            shown = f"From: {decode_words(compared_part(self.header_from))}"
            return [Pair("sender", envelope, shown, verdict)]
        if same:
            first = Pair("sender", envelope, _shown("From", *same[0]), SAME)
            others += same[1:]
        else:  # From: names someone else: that is the claim to put beside MAIL FROM
            first = Pair("sender", envelope, _shown("From", *others.pop(0)), DIFFERS)
        return [first] + [Pair("sender", None, _shown("From", *m), HEADERS_ONLY) for m in others]

    def _recipient_pairs(self) -> list[Pair]:
        named = self._named["To"] + self._named["Cc"]
        first_named: dict[str, tuple[str, str]] = {}  # one pass: linear in the addresses
        for shown_address in named:
            first_named.setdefault(address_key(shown_address[1]), shown_address)
        pairs = []
        for recipient in self.recipients:
            match = first_named.get(address_key(recipient))
            envelope = f"RCPT TO:<{recipient}>"
            if match is None:
                pairs.append(Pair("recipient", envelope, None, ENVELOPE_ONLY))
            else:
                pairs.append(Pair("recipient", envelope, match[0], SAME))
        envelope_keys = {address_key(r) for r in self.recipients}
        for shown, address in named:
            if address_key(address) not in envelope_keys:
                pairs.append(Pair("recipient", None, shown, HEADERS_ONLY))
        for field, value in (("To", self.header_to), ("Cc", self.header_cc)):
            if value and not self._named[field]:
                pairs.append(Pair("recipient", None, _no_address(field, value), HEADERS_ONLY))
        return pairs


def _no_address(field: str, value: str) -> str:
    return f"{field}: {decode_words(compared_part(value))}{NO_ADDRESS}"


def _shown(field: str, name: str, address: str) -> str:
    return f"{field}: {name} <{address}>" if name else f"{field}: {address}"


def _named(field: str, value: str) -> list[tuple[str, str]]:
    """(how it is shown, address) for each mailbox of a To: or Cc: field; a field of one
    mailbox is shown as written, so a display name the parser drops is not lost."""
    mailboxes = _mailboxes(value)
    if len(mailboxes) == 1:
        return [(f"{field}: {decode_words(compared_part(value))}", mailboxes[0][1])]
    return [(_shown(field, name, address), address) for name, address in mailboxes]
