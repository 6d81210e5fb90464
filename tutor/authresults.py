"""Sender checks from the simulated DNS: SPF (RFC 7208) and DMARC (RFC 7489), simplified.

Real receivers query DNS; the tutor reads tutor/dnsdata.py instead, so the verdicts are
real evaluations of simulated records, labelled as such. Only what the lessons need:
ip4/ip6/a/mx mechanisms with qualifiers, and DMARC alignment on SPF (no DKIM here).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from email.utils import getaddresses

from tutor import dnsdata

_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


@dataclass(frozen=True)
class Verdicts:
    spf: str  # pass, fail, softfail, neutral, none
    spf_domain: str
    dmarc: str  # pass, fail, none
    dmarc_domain: str
    dmarc_policy: str  # reject, quarantine, none, or "" without a record

    def header(self, hostname: str) -> str:
        """The Authentication-Results field value (RFC 8601), marked as simulated."""
        spf = f"spf={self.spf} smtp.mailfrom={self.spf_domain or '(null sender)'}"
        dmarc = f"dmarc={self.dmarc}"
        if self.dmarc_domain:
            dmarc += f" header.from={self.dmarc_domain}"
        if self.dmarc_policy:
            dmarc += f" policy={self.dmarc_policy}"
        return f"{hostname}; {spf}; {dmarc} (simulated DNS)"


def spf_result(domain: str, client_ip: str) -> str:
    """Evaluate the domain's SPF record, as the simulated DNS has it, for client_ip."""
    record = dnsdata.lookup(domain) if domain else None
    if record is None or not record.exists or not record.spf:
        return "none"
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return "neutral"
    for term in record.spf.split()[1:]:
        qualifier = _QUALIFIERS.get(term[0], "pass")
        mechanism = term[1:] if term[0] in _QUALIFIERS else term
        if _matches(mechanism, address, record):
            return qualifier
    return "neutral"


def _matches(mechanism: str, address: ipaddress._BaseAddress, record: dnsdata.DomainRecord) -> bool:
    name, _, value = mechanism.partition(":")
    if name == "all":
        return True
    if name in ("ip4", "ip6"):
        try:
            return address in ipaddress.ip_network(value, strict=False)
        except ValueError:
            return False
    if name == "a":
        return str(address) in record.a
    if name == "mx":
        hosts = [dnsdata.lookup(host) for _, host in record.mx]
        return any(h is not None and str(address) in h.a for h in hosts)
    return False


def _aligned(a: str, b: str) -> bool:
    """Relaxed alignment, simplified: the same domain or one a subdomain of the other."""
    a, b = a.lower(), b.lower()
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def evaluate(mail_from: str, header_from: str, client_ip: str) -> Verdicts:
    spf_domain = mail_from.rpartition("@")[2] if mail_from else ""
    spf = spf_result(spf_domain, client_ip) if spf_domain else "none"
    addresses = [a for _, a in getaddresses([header_from]) if "@" in a]
    from_domain = addresses[0].rpartition("@")[2].lower() if addresses else ""
    record = dnsdata.lookup(from_domain) if from_domain else None
    if record is None or not record.dmarc:
        return Verdicts(spf, spf_domain, "none", from_domain, "")
    policy = ""
    for part in record.dmarc.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "p":
            policy = value
    passed = spf == "pass" and _aligned(spf_domain, from_domain)
    return Verdicts(spf, spf_domain, "pass" if passed else "fail", from_domain, policy)
