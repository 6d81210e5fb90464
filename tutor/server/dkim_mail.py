"""DKIM and ARC with dkimpy, against the world's DNS server only (docs/world.md).

dkimpy asks for a key record through its `dnsfunc` hook; here that hook is a real
query to the world's DNS server on loopback (tutor.world.routing.Resolver), never the
system resolver. dkimpy is imported on first use: servers outside a world never load it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import dns.rdatatype

from tutor.world.dkim_keys import SigningKey
from tutor.world.routing import LookupFailed, Resolver

CANONICALIZATION = (b"relaxed", b"relaxed")
MIN_KEY_BITS = 1024


@functools.cache
def dkimpy() -> ModuleType:
    import dkim  # type: ignore[import-untyped]

    module: ModuleType = dkim
    return module


def txt_lookup(dns_server: tuple[str, int], source: str = "") -> Callable[..., bytes | None]:
    """dkimpy's dnsfunc: the TXT record at a name, its strings joined, from the world's
    DNS server; None where there is none. No answer at all is dkimpy's temperror."""
    resolver = Resolver(*dns_server, source=source)

    def lookup(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode("ascii") if isinstance(name, bytes) else name
        try:
            response = resolver.query(text.rstrip(".") + ".", "TXT")
        except LookupFailed as error:
            raise dkimpy().DnsTimeoutError(str(error)) from None
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                for rdata in rrset:
                    return b"".join(rdata.strings)
        return None

    return lookup


def sign(message: bytes, key: SigningKey, private_pem: bytes) -> bytes:
    """The message with a DKIM-Signature on top: rsa-sha256, relaxed/relaxed, over the
    header fields RFC 6376 §5.4.1 recommends that the message has (From always). A message
    that cannot be signed (no From: field, which a signature MUST cover: RFC 6376 §5.4)
    goes on unsigned, as it would from a real signer that skips what it cannot sign."""
    module = dkimpy()
    try:
        signature: bytes = module.sign(
            message,
            key.selector.encode(),
            key.domain.encode(),
            private_pem,
            canonicalize=CANONICALIZATION,
        )
    except module.DKIMException:
        return message
    return signature + message


def arc_seal(message: bytes, key: SigningKey, private_pem: bytes, srv_id: str) -> bytes:
    """The message with an ARC set on top (RFC 8617): ARC-Seal, ARC-Message-Signature and
    ARC-Authentication-Results, the latter copied from our Authentication-Results."""
    module = dkimpy()
    try:
        headers: list[bytes] = module.arc_sign(
            message, key.selector.encode(), key.domain.encode(), private_pem, srv_id.encode()
        )
    except module.DKIMException:  # e.g. no From: to seal over: forwarded unsealed
        return message
    return b"".join(headers) + message


@dataclass(frozen=True)
class DkimCheck:
    """One DKIM-Signature's verdict (RFC 8601 §2.7.1)."""

    result: str  # pass, fail, neutral, temperror, permerror
    domain: str
    selector: str
    b: str  # the first characters of b=, which tell signatures apart (RFC 6008)
    reason: str = ""

    def part(self) -> str:
        text = f"dkim={self.result}"
        if self.reason:
            text += f" ({self.reason})"
        if self.domain:
            text += f" header.d={self.domain}"
        if self.selector:
            text += f" header.s={self.selector}"
        if self.b:
            text += f" header.b={self.b}"
        return text


_BODY_CHANGED = "the body hash does not match: the body changed"


class _Collected(logging.Handler):
    """dkimpy says why a signature failed only in its log: keep those lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _failure_reason(lines: list[str]) -> str:
    text = " ".join(lines).lower()
    if "body hash mismatch" in text:
        return _BODY_CHANGED
    return "the signature does not verify: a signed header field changed"


def verify_all(message: bytes, dns_server: tuple[str, int], source: str = "") -> list[DkimCheck]:
    """Every DKIM-Signature of the message, each verified; [] when it has none."""
    dkim = dkimpy()
    lookup = txt_lookup(dns_server, source)
    count = sum(1 for line in _head(message).split(b"\n") if line[:15] == b"dkim-signature:")
    checks = []
    for index in range(count):
        collected = _Collected()
        logger = logging.getLogger(f"tutor.server.dkim.{id(collected)}")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.addHandler(collected)
        verifier = dkim.DKIM(message, logger=logger, minkey=MIN_KEY_BITS)
        try:
            passed = verifier.verify(idx=index, dnsfunc=lookup)
            result, reason = ("pass", "") if passed else ("fail", "")
        except dkim.DnsTimeoutError:
            result, reason = "temperror", "no answer from the world's DNS"
        except dkim.DKIMException as error:
            # dkimpy raises for a body hash that does not match: a fail (RFC 6376 §6.1.3).
            body = "body hash mismatch" in str(error)
            result, reason = ("fail", _BODY_CHANGED) if body else ("permerror", str(error))
        finally:
            logger.removeHandler(collected)
        if result == "fail" and not reason:
            reason = _failure_reason(collected.lines)
        checks.append(_check(verifier, result, reason))
    return checks


def _check(verifier: Any, result: str, reason: str) -> DkimCheck:
    fields: dict[bytes, bytes] = getattr(verifier, "signature_fields", None) or {}

    def text(tag: bytes) -> str:
        return fields.get(tag, b"").decode("ascii", "replace")

    b = "".join(text(b"b").split())[:8]
    return DkimCheck(result, text(b"d"), text(b"s"), b, reason)


def arc_result(message: bytes, dns_server: tuple[str, int], source: str = "") -> str:
    """The ARC chain's validation: pass, fail, or none without ARC sets (RFC 8617 §5.2)."""
    dkim = dkimpy()
    if b"\narc-seal:" not in b"\n" + _head(message):
        return "none"
    cv, _results, _reason = dkim.arc_verify(message, dnsfunc=txt_lookup(dns_server, source))
    return bytes(cv).decode("ascii")


def _head(message: bytes) -> bytes:
    """The header section, lowercased, with LF endings."""
    return message.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].lower()
