"""A small, static, clearly simulated DNS: the tutor never sends a DNS query.

Lessons that need DNS facts (MX, null MX, fallback to A, SPF, DMARC) read them here,
and every screen that shows them says they are simulated. Names use reserved
domains (RFC 2606 / RFC 6761); `.invalid` never exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class DomainRecord:
    name: str
    exists: bool = True
    mx: tuple[tuple[int, str], ...] = ()  # (preference, host); (0, ".") is a null MX
    a: tuple[str, ...] = ()
    aaaa: tuple[str, ...] = ()  # only where true: ::1 is served only where the MTA listens
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
            # Only the addresses that send for tutor.test: the teaching server's clients
            # (127.0.0.1, ::1, and lesson 9's "other computer" 127.0.0.2) and the world's
            # submission MTA; the forwarder (127.0.0.18) is not in it.
            spf="v=spf1 ip4:127.0.0.1 ip4:127.0.0.2 ip4:127.0.0.25 ip6:::1 -all",
            dmarc="v=DMARC1; p=reject",
        ),
        # The world binds the tutor.test MTA on ::1 too; a system without IPv6 loopback
        # is served a zone without this AAAA (tutor.server.world, docs/dns.md).
        DomainRecord("mx.tutor.test", a=("127.0.0.1",), aaaa=("::1",)),
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
        # 2001:db8::/32 is for documentation (RFC 3849): never a world MTA, never connected to.
        DomainRecord("no-mx.example", a=("203.0.113.7",), aaaa=("2001:db8::7",)),
        DomainRecord("nomail.example", mx=((0, "."),), a=("203.0.113.8",), spf="v=spf1 -all"),
        # The world (`smtp-tutor world`, docs/world.md): domains whose MTAs listen on
        # loopback, each host on its own 127.0.0.x address (WORLD_HOSTS below).
        DomainRecord(
            "example.org",
            mx=((10, "mx1.example.org"), (20, "mx2.example.org")),
            spf="v=spf1 ip4:127.0.0.0/8 -all",
            dmarc="v=DMARC1; p=none",
        ),
        DomainRecord("mx1.example.org", a=("127.0.0.11",)),
        DomainRecord("mx2.example.org", a=("127.0.0.12",)),
        DomainRecord("greylist.example", mx=((10, "mx.greylist.example"),)),
        DomainRecord("mx.greylist.example", a=("127.0.0.13",)),
        DomainRecord("down.example", mx=((10, "mx1.down.example"), (20, "mx2.down.example"))),
        DomainRecord("mx1.down.example", a=("127.0.0.14",)),  # nothing listens there
        DomainRecord("mx2.down.example", a=("127.0.0.15",)),
        DomainRecord("a-only.example", a=("127.0.0.16",)),  # no MX: mail goes to its A
        DomainRecord("offline.example", mx=((10, "mx.offline.example"),)),
        DomainRecord("mx.offline.example", a=("127.0.0.17",)),  # nothing listens there
        # The submission MTA of tutor.test (DKIM-signs, relays) and a forwarder (ARC-signs).
        DomainRecord("smtp.tutor.test", a=("127.0.0.25",)),
        DomainRecord(
            "forward.example",
            mx=((10, "mx.forward.example"),),
            spf="v=spf1 ip4:127.0.0.18 -all",
            dmarc="v=DMARC1; p=none",
        ),
        DomainRecord("mx.forward.example", a=("127.0.0.18",)),
    )
}


class Role(Enum):
    """What a host of the world is for (docs/world.md)."""

    MX = "mx"  # its domain's most preferred MX
    BUSY = "busy"  # an MX that greets every client with 421 4.3.2: try the next one
    BACKUP_MX = "backup-mx"  # a less preferred MX
    GREYLISTING = "greylisting"  # an MX that refuses each first try with 451
    DOWN = "down"  # in DNS, but nothing listens at its address
    A_FALLBACK = "a-fallback"  # a domain without MX, reached at its own A (RFC 5321 §5.1)
    SUBMISSION = "submission"  # takes mail from authenticated clients, DKIM-signs, relays it
    FORWARDER = "forwarder"  # forwards some mailboxes' mail onward, ARC-signed


@dataclass(frozen=True)
class WorldHost:
    """One mail host of the world; its address is the A record of `host` in the table."""

    domain: str
    host: str
    role: Role

    @property
    def listens(self) -> bool:
        return self.role is not Role.DOWN

    @property
    def address(self) -> str:
        record = _TABLE[self.host]
        return record.a[0]


WORLD_HOSTS: tuple[WorldHost, ...] = (
    WorldHost("tutor.test", "mx.tutor.test", Role.MX),
    WorldHost("example.org", "mx1.example.org", Role.BUSY),
    WorldHost("example.org", "mx2.example.org", Role.BACKUP_MX),
    WorldHost("greylist.example", "mx.greylist.example", Role.GREYLISTING),
    WorldHost("down.example", "mx1.down.example", Role.DOWN),
    WorldHost("down.example", "mx2.down.example", Role.BACKUP_MX),
    WorldHost("a-only.example", "a-only.example", Role.A_FALLBACK),
    WorldHost("offline.example", "mx.offline.example", Role.DOWN),
    WorldHost("tutor.test", "smtp.tutor.test", Role.SUBMISSION),
    WorldHost("forward.example", "mx.forward.example", Role.FORWARDER),
)


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


def maildir_domain(folder_name: str) -> str:
    """The domain whose mail a Maildir root holds: a world MTA's root is named after its
    domain (`<maildir>/<domain>/`); any other root is the teaching server's, tutor.test."""
    name = folder_name.lower()
    return name if any(host.domain == name for host in WORLD_HOSTS) else "tutor.test"
