"""Sender checks on the simulated DNS: SPF by pyspf (RFC 7208), DMARC per RFC 9989.

Real receivers query DNS; here pyspf's one lookup hook (`spf.DNSLookup`) answers from
tutor/world/dnsdata.py, so the SPF verdict is pyspf's own evaluation of simulated records and
no query ever leaves the machine (a name the table lacks is NXDOMAIN). No library
evaluates DMARC, so its two steps are done here, on the same table: policy discovery
(`_dmarc.<Author Domain>`, then the DNS Tree Walk) and relaxed alignment (the same
Organizational Domain, found by the same walk). No DKIM here.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import getaddresses
from types import ModuleType
from typing import Any

from tutor.smtp.envelope import compared_part
from tutor.world import dnsdata

_TREE_WALK_LABELS = 7  # RFC 9989 DNS Tree Walk: names longer than 8 labels jump to 7


def _simulated_lookup(
    name: str, qtype: str, strict: Any = True, timeout: Any = None
) -> Iterator[tuple[tuple[str, str], Any]]:
    """pyspf's DNSLookup hook: answers from the simulated table, in pyspf's shapes."""
    key = (name, qtype)
    if qtype in ("TXT", "SPF"):
        for text in dnsdata.txt_records(name):
            yield key, (text.encode("ascii"),)
        return
    record = dnsdata.lookup(name)
    if record is None or not record.exists:
        return  # NXDOMAIN: no answers
    if qtype == "MX":
        for preference, host in record.mx:
            yield key, (preference, host)
    elif qtype in ("A", "AAAA"):
        version = 4 if qtype == "A" else 6
        for address in record.a:
            if ipaddress.ip_address(address).version == version:
                yield key, address


@functools.cache
def pyspf() -> ModuleType:
    """pyspf, imported on first use (with dnspython it is some 30 ms of a server's start)
    and pointed at the simulated table before anything can ask it: the tutor never asks
    real DNS. Nothing in the tutor reaches pyspf but through here."""
    with warnings.catch_warnings():
        # pyspf 2.0.14 has invalid escape sequences: a SyntaxWarning from Python 3.12 on, a
        # DeprecationWarning before; either is an error under -W error when spf.py compiles.
        warnings.filterwarnings("ignore", r"invalid escape sequence", SyntaxWarning)
        warnings.filterwarnings("ignore", r"invalid escape sequence", DeprecationWarning)
        import spf
    spf.DNSLookup = _simulated_lookup  # the whole process
    module: ModuleType = spf
    return module


@dataclass(frozen=True)
class Verdicts:
    spf: str  # pass, fail, softfail, neutral, none, permerror, temperror
    smtp_mailfrom: str  # what Authentication-Results names: the MAIL FROM domain, or for
    # <> the identity SPF checked, postmaster@<HELO> (RFC 7208 §2.4); "" when none
    dmarc: str  # pass, fail, none
    dmarc_domain: str  # the Author Domain (From:)
    dmarc_policy: str  # reject, quarantine, none, or "" without a record
    # A world MTA's DKIM verdicts, each an RFC 8601 resinfo (`dkim=pass header.d=…`), and
    # its ARC verdict; none elsewhere (tutor.server.verify adds them).
    dkim: tuple[str, ...] = ()
    arc: str = ""

    def header(self, hostname: str) -> str:
        """The Authentication-Results value (RFC 8601 §2.2), marked as simulated.

        Every property has a value: for the null sender the identity SPF checked is
        postmaster@<HELO> (RFC 7208 §2.4), and without one the property is left out. The
        DMARC policy is a comment, plus `policy.dmarc` on a failure (ptype "policy", the
        property IANA's Email Authentication Methods registry has for DMARC)."""
        spf_part = f"spf={self.spf}"
        if self.smtp_mailfrom:
            spf_part += f" smtp.mailfrom={self.smtp_mailfrom}"
        dmarc_part = f"dmarc={self.dmarc}"
        if self.dmarc_policy:
            dmarc_part += f" (p={self.dmarc_policy})"
        if self.dmarc_domain:
            dmarc_part += f" header.from={self.dmarc_domain}"
        if self.dmarc_policy and self.dmarc == "fail":
            dmarc_part += f" policy.dmarc={self.dmarc_policy}"
        parts = [*self.dkim, spf_part, dmarc_part]
        if self.arc:
            parts.append(f"arc={self.arc}")
        return f"{hostname}; {'; '.join(parts)} (simulated DNS)"


_LABEL = re.compile(r"[^\W_](?:[\w-]{0,61}[^\W_])?")


def _is_domain(name: str) -> bool:
    """A dotted domain name (not an address literal such as [192.0.2.1])."""
    labels = name.rstrip(".").split(".")
    return len(labels) > 1 and all(_LABEL.fullmatch(label) for label in labels)


def is_address(text: str) -> bool:
    """An IPv4 or IPv6 address, written plainly."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def spf_identity(mail_from: str, helo: str) -> str:
    """The MAIL FROM identity SPF checks: the reverse-path, or postmaster@HELO for <>."""
    if mail_from:
        return mail_from
    return f"postmaster@{helo}" if _is_domain(helo) else ""


def spf_result(identity: str, helo: str, client_ip: str) -> str:
    """pyspf's check_host() of the identity's domain for client_ip, on the simulated DNS."""
    if not identity or not _is_domain(identity.rpartition("@")[2]) or not is_address(client_ip):
        return "none"
    query = pyspf().query(i=client_ip, s=identity, h=helo or "unknown", querytime=0)
    result, _code, _explanation = query.check()
    return str(result)


def _dmarc_tags(domain: str) -> dict[str, str] | None:
    """The one valid DMARC record at _dmarc.<domain>, as tags; None without one."""
    records = [
        r
        for r in dnsdata.txt_records(dnsdata.DMARC_PREFIX + domain)
        if r.replace(" ", "").lower().startswith("v=dmarc1;")
    ]
    if len(records) != 1:
        return None
    tags = {}
    for part in records[0].split(";"):
        key, _, value = part.strip().partition("=")
        tags[key.strip().lower()] = value.strip().lower()
    return tags


def _tree_walk(domain: str) -> list[tuple[str, dict[str, str]]]:
    """RFC 9989's DNS Tree Walk from a domain: the records found, longest name first."""
    labels = domain.lower().rstrip(".").split(".")
    found = []
    first = True
    while labels:
        tags = _dmarc_tags(".".join(labels))
        if tags is not None:
            found.append((".".join(labels), tags))
            if tags.get("psd") in ("y", "n"):
                break
        if first and len(labels) > _TREE_WALK_LABELS + 1:
            labels = labels[-_TREE_WALK_LABELS:]
        else:
            labels = labels[1:]
        first = False
    return found


def organizational_domain(domain: str) -> str:
    """RFC 9989's Organizational Domain: psd=n stops, psd=y is one label below, else the
    record with the fewest labels; without any record, the domain itself."""
    domain = domain.lower().rstrip(".")
    found = _tree_walk(domain)
    for name, tags in found:
        if tags.get("psd") == "n":
            return name
        if tags.get("psd") == "y" and name != domain:
            return ".".join(domain.split(".")[-(name.count(".") + 2) :])
    return found[-1][0] if found else domain


def _policy(author_domain: str) -> str:
    """The Domain Owner Assessment Policy: p at the Author Domain, else sp (or p) found
    by the tree walk; "" when no record applies (DMARC does not apply)."""
    own = _dmarc_tags(author_domain)
    if own is not None:
        return own.get("p", "none")
    found = _tree_walk(author_domain)
    if not found:
        return ""
    tags = found[0][1]
    exists = (record := dnsdata.lookup(author_domain)) is not None and record.exists
    return tags.get("sp" if exists else "np") or tags.get("p", "none")


def aligned(authenticated: str, author_domain: str) -> bool:
    """Relaxed alignment (RFC 9989): the same Organizational Domain."""
    if not authenticated or not author_domain:
        return False
    return organizational_domain(authenticated) == organizational_domain(author_domain)


# The simulated DNS is a static table, so a verdict depends only on its inputs: the server
# keeps the last ones it worked out instead of running pyspf and the DMARC tree walk for
# every message (a load test sends thousands from one sender). Bounded: a client chooses
# these strings. spf_result itself stays uncached (a test swaps the table under it).
_MEMO = 1024
_AUTHOR_MEMO_LENGTH = 1024  # longer From: values are read each time, not remembered


@functools.lru_cache(maxsize=_MEMO)
def _remembered_spf(identity: str, helo: str, client_ip: str) -> str:
    return spf_result(identity, helo, client_ip)


@functools.lru_cache(maxsize=_MEMO)
def _remembered_dmarc(spf_verdict: str, spf_domain: str, author_domain: str) -> tuple[str, str]:
    """(the DMARC verdict, the policy) for an author domain; ("none", "") without one."""
    policy = _policy(author_domain) if author_domain else ""
    if not policy:
        return "none", ""
    passed = spf_verdict == "pass" and aligned(spf_domain, author_domain)
    return "pass" if passed else "fail", policy


def _author_domain(header_from: str) -> str:
    """The domain of the first address in From:, lowercased; "" without one."""
    # The author is the first address; reading a 1 MB From: whole would hold the server's
    # event loop for a second before the 250.
    addresses = [a for _, a in getaddresses([compared_part(header_from)]) if "@" in a]
    return addresses[0].rpartition("@")[2].lower() if addresses else ""


_remembered_author_domain = functools.lru_cache(maxsize=_MEMO)(_author_domain)


def evaluate(mail_from: str, header_from: str, client_ip: str, helo: str = "") -> Verdicts:
    identity = spf_identity(mail_from, helo)
    spf_verdict = _remembered_spf(identity, helo, client_ip)
    if len(header_from) <= _AUTHOR_MEMO_LENGTH:
        author_domain = _remembered_author_domain(header_from)
    else:
        author_domain = _author_domain(header_from)
    spf_domain = identity.rpartition("@")[2]
    named = spf_domain if mail_from else identity
    dmarc, policy = _remembered_dmarc(spf_verdict, spf_domain, author_domain)
    return Verdicts(spf_verdict, named, dmarc, author_domain, policy)
