"""The simulated DNS as resource records: what `smtp-tutor dns` and the DNS server answer.

The records are derived from dnsdata's table, the one source of truth the server's
SPF/DMARC/bounce code and the lessons already read; nothing here holds data of its own.
A Zone answers one question (name, type) the way an authoritative server would:
an answer, NODATA (NOERROR, no answer, the SOA as authority), NXDOMAIN (with the SOA),
or REFUSED for a name outside the domains it serves (docs/dns.md). It never recurses and
never asks anybody else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset
from dns.rdatatype import RdataType

from tutor.world import dkim_keys, dnsdata
from tutor.world.dnsdata import DomainRecord

TTL = 3600
NEGATIVE_TTL = 300  # the SOA minimum: how long a resolver may cache NXDOMAIN/NODATA
# The types `smtp-tutor dns` asks for; the server answers any type (NODATA for others).
QUERY_TYPES = (
    RdataType.A,
    RdataType.AAAA,
    RdataType.MX,
    RdataType.TXT,
    RdataType.PTR,
    RdataType.SOA,
)
_TXT_CHUNK = 255  # one TXT character-string holds at most 255 bytes (RFC 1035 §3.3)
_INVALID = dns.name.from_text("invalid.")


@dataclass(frozen=True)
class Answer:
    """One question's answer: the rcode, the answer and authority sections, and whether
    the zone is authoritative for the name (False only for REFUSED)."""

    rcode: dns.rcode.Rcode
    answer: tuple[dns.rrset.RRset, ...] = ()
    authority: tuple[dns.rrset.RRset, ...] = ()
    authoritative: bool = True


@dataclass
class Zone:
    """Resource records per owner name, and the apexes (zone cuts) they sit under."""

    records: dict[dns.name.Name, dict[RdataType, dns.rrset.RRset]] = field(default_factory=dict)
    apexes: tuple[dns.name.Name, ...] = ()

    def resolve(self, qname: dns.name.Name, qtype: RdataType) -> Answer:
        apex = self.apex_of(qname)
        if apex is None:
            return Answer(dns.rcode.Rcode.REFUSED, authoritative=False)
        soa = (self.records[apex][RdataType.SOA],)
        at_name = self.records.get(qname)
        if at_name is None and not self._has_names_below(qname):
            return Answer(dns.rcode.Rcode.NXDOMAIN, authority=_negative(soa))
        found = (at_name or {}).get(qtype)
        if found is None:  # the name exists, the type does not: NODATA
            return Answer(dns.rcode.Rcode.NOERROR, authority=_negative(soa))
        return Answer(dns.rcode.Rcode.NOERROR, answer=(found,))

    def apex_of(self, qname: dns.name.Name) -> dns.name.Name | None:
        """The served domain a name falls under (the longest match); None: not ours."""
        under = [apex for apex in self.apexes if qname.is_subdomain(apex)]
        return max(under, key=len, default=None)

    def _has_names_below(self, qname: dns.name.Name) -> bool:
        """An empty non-terminal (a name with no records but names below it) exists."""
        return any(name != qname and name.is_subdomain(qname) for name in self.records)

    def domains(self) -> list[str]:
        """The served domains as text, for docs and notes."""
        return sorted(apex.to_text(omit_final_dot=True) for apex in self.apexes)


def simulated_zone(*, ipv6_loopback: bool = True) -> Zone:
    """The zone of the tutor's simulated world, from dnsdata's table. Without
    `ipv6_loopback` (a system where nothing can listen on ::1) the AAAA ::1 is left out,
    so that DNS never names an address where no MTA can be reached (docs/dns.md)."""
    table = dnsdata.records()
    if not ipv6_loopback:
        table = tuple(_without_loopback_aaaa(row) for row in table)
    zone = zone_from(table)
    # The world's DKIM keys, where this data home has them (the world makes them).
    for name, text in dkim_keys.key_records(dkim_keys.existing_keys()):
        _add(zone, dns.name.from_text(name), _txt(text))
    return zone


def _without_loopback_aaaa(row: DomainRecord) -> DomainRecord:
    kept = tuple(a for a in row.aaaa if not ipaddress.ip_address(a).is_loopback)
    return replace(row, aaaa=kept)


def zone_from(table: Iterable[DomainRecord]) -> Zone:
    """A zone built from DomainRecords (tests give their own, e.g. a very long TXT)."""
    rows = [row for row in table if row.exists]
    owners = {dns.name.from_text(row.name) for row in rows}
    # An apex is a table name with no other table name above it; `.invalid` is served
    # too, so that everything under it is NXDOMAIN (RFC 6761 §6.4).
    apexes = {o for o in owners if not any(o != p and o.is_subdomain(p) for p in owners)}
    zone = Zone(apexes=())
    for row in rows:
        _add_domain(zone, row)
    served = apexes | _add_reverse(zone, rows) | {_INVALID}
    for apex in served:
        _add(zone, apex, _soa(apex))
    zone.apexes = tuple(sorted(served))
    return zone


def _add_domain(zone: Zone, row: DomainRecord) -> None:
    name = dns.name.from_text(row.name)
    if row.a:
        _add(zone, name, *(_rdata(RdataType.A, address) for address in row.a))
    if row.aaaa:
        _add(zone, name, *(_rdata(RdataType.AAAA, address) for address in row.aaaa))
    if row.mx:  # a null MX is `0 .` (RFC 7505)
        mx = (_rdata(RdataType.MX, f"{pref} {_absolute(host)}") for pref, host in row.mx)
        _add(zone, name, *mx)
    if row.spf:
        _add(zone, name, _txt(row.spf))
    if row.dmarc:
        _add(zone, dns.name.from_text(dnsdata.DMARC_PREFIX + row.name), _txt(row.dmarc))


def _add_reverse(zone: Zone, rows: list[DomainRecord]) -> set[dns.name.Name]:
    """PTR records for the table's addresses; the reverse zones served are their /24s
    (IPv4) and /64s (IPv6), so a neighbouring address is NXDOMAIN, not REFUSED."""
    apexes: set[dns.name.Name] = set()
    for row in rows:
        for text in (*row.a, *row.aaaa):
            address = ipaddress.ip_address(text)
            reverse = dns.name.from_text(address.reverse_pointer)
            _add(zone, reverse, _rdata(RdataType.PTR, _absolute(row.name)))
            network_labels = 1 if address.version == 4 else 16  # drop the host part
            apexes.add(reverse.split(len(reverse) - network_labels)[1])
    return apexes


def _add(zone: Zone, name: dns.name.Name, *rdatas: dns.rdata.Rdata) -> None:
    at_name = zone.records.setdefault(name, {})
    rdtype = rdatas[0].rdtype
    if rdtype in at_name:
        for rdata in rdatas:
            at_name[rdtype].add(rdata)
    else:
        at_name[rdtype] = dns.rrset.from_rdata_list(name, TTL, list(rdatas))


def _rdata(rdtype: RdataType, text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, text)


def _txt(text: str) -> dns.rdata.Rdata:
    """A TXT record of any length: split into 255-byte character-strings (RFC 7208 §3.3
    says a reader joins them without spaces)."""
    data = text.encode()
    chunks = [data[i : i + _TXT_CHUNK] for i in range(0, len(data), _TXT_CHUNK)] or [b""]
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, RdataType.TXT, chunks)


def _soa(apex: dns.name.Name) -> dns.rdata.Rdata:
    hostmaster = dns.name.from_text("hostmaster", origin=apex)
    return _rdata(RdataType.SOA, f"{apex} {hostmaster} 1 {TTL} 600 86400 {NEGATIVE_TTL}")


def _negative(soa: tuple[dns.rrset.RRset, ...]) -> tuple[dns.rrset.RRset, ...]:
    """The SOA for a negative answer, with the SOA minimum as its TTL (RFC 2308 §3)."""
    return tuple(dns.rrset.from_rdata_list(s.name, NEGATIVE_TTL, list(s)) for s in soa)


def _absolute(host: str) -> str:
    return host if host.endswith(".") else host + "."


def parse_type(text: str) -> RdataType:
    """A query type from the command line (case-insensitive); ValueError if unknown."""
    try:
        rdtype = RdataType.from_text(text.strip().upper())
    except dns.rdatatype.UnknownRdatatype:
        raise ValueError(text) from None
    if rdtype not in QUERY_TYPES:
        raise ValueError(text)
    return rdtype


def dig_fields(rrset: dns.rrset.RRset) -> list[tuple[str, str, str, str, str]]:
    """Each record as dig shows it: owner, TTL, class, type, data."""
    owner = rrset.name.to_text()
    return [
        (owner, str(rrset.ttl), "IN", rrset.rdtype.name, rdata.to_text())
        for rdata in sorted(rrset)  # wire order: MX by preference
    ]


def listing(zone: Zone) -> str:
    """Every record of a zone, one dig-like line each, owners in DNS order: the table in
    docs/dns.md (a test keeps the two the same)."""
    lines = []
    for name in sorted(zone.records):
        for rdtype in sorted(zone.records[name]):
            for fields in dig_fields(zone.records[name][rdtype]):
                owner, ttl, rdclass, type_name, data = fields
                lines.append(f"{owner:<32} {ttl:>5} {rdclass} {type_name:<5} {data}")
    return "\n".join(lines)
