"""A small, static, clearly simulated DNS: the tutor never sends a DNS query.

Lessons that need DNS facts (MX, null MX, fallback to A, SPF, DMARC) read them here,
and every screen that shows them says they are simulated. Names use reserved
domains (RFC 2606 / RFC 6761); `.invalid` never exists.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DomainRecord:
    name: str
    exists: bool = True
    mx: tuple[tuple[int, str], ...] = ()  # (preference, host); (0, ".") is a null MX
    a: tuple[str, ...] = ()
    spf: str | None = None
    dmarc: str | None = None

    @property
    def null_mx(self) -> bool:
        return self.mx == ((0, "."),)


SIMULATED_NOTE = (
    "simulated DNS (a static table shipped with smtp-tutor; no query left this machine)"
)

_TABLE = {
    r.name: r
    for r in (
        DomainRecord(
            "tutor.test",
            mx=((10, "mx.tutor.test"),),
            spf="v=spf1 ip4:127.0.0.0/8 ip6:::1 -all",
            dmarc="v=DMARC1; p=reject",
        ),
        DomainRecord("mx.tutor.test", a=("127.0.0.1",)),
        DomainRecord(
            "example.test",
            mx=((10, "mx1.example.test"), (20, "mx2.example.test")),
            spf="v=spf1 ip4:192.0.2.0/24 -all",
            dmarc="v=DMARC1; p=quarantine",
        ),
        DomainRecord(
            "innocent.example",
            mx=((10, "mail.innocent.example"),),
            spf="v=spf1 ip4:198.51.100.25 -all",
            dmarc="v=DMARC1; p=reject",
        ),
        DomainRecord("no-mx.example", a=("203.0.113.7",)),
        DomainRecord("nomail.example", mx=((0, "."),), a=("203.0.113.8",), spf="v=spf1 -all"),
    )
}


DMARC_PREFIX = "_dmarc."


def records() -> tuple[DomainRecord, ...]:
    """Every record of the table (tutor.world.zone serves them as DNS records)."""
    return tuple(_TABLE.values())


def txt_records(name: str) -> tuple[str, ...]:
    """The TXT records at a name: a domain's SPF record, or at `_dmarc.<domain>` its
    DMARC record (RFC 7208 §3, RFC 9989 DNS Tree Walk)."""
    lowered = name.lower().rstrip(".")
    if lowered.startswith(DMARC_PREFIX):
        record = lookup(lowered.removeprefix(DMARC_PREFIX))
        return (record.dmarc,) if record is not None and record.dmarc else ()
    record = lookup(lowered)
    return (record.spf,) if record is not None and record.spf else ()


def lookup(domain: str) -> DomainRecord | None:
    """The simulated record for a domain; None when the table does not know it.

    Any name under `.invalid` does not exist (NXDOMAIN), as RFC 2606 guarantees.
    """
    name = domain.lower().rstrip(".")
    if name == "invalid" or name.endswith(".invalid"):
        return DomainRecord(name, exists=False)
    return _TABLE.get(name)
