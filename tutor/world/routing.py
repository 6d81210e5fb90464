"""Where mail for a domain goes, asked of the world's DNS server as a sending MTA asks:
the MX records by preference, the A record when there is no MX, nothing after a null MX
(RFC 5321 §5.1, RFC 7505). Every answer comes from a real query to the world's DNS
server on loopback; nothing here asks the system resolver.

`reachable` is the one gate of the sending side: the tutor opens SMTP connections only
to loopback addresses that the world's zone names (docs/world.md).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype

from tutor.world.dnsdata import records

QUERY_TIMEOUT = 3.0


class RouteKind(Enum):
    MX = "mx"  # the MX records, most preferred first
    A_FALLBACK = "a-fallback"  # no MX records: the domain's own address (RFC 5321 §5.1)
    NULL_MX = "null-mx"  # `MX 0 .`: the domain takes no mail; give up at once (RFC 7505)
    NO_DOMAIN = "no-domain"  # NXDOMAIN: no such domain; a permanent failure
    NO_ADDRESS = "no-address"  # neither MX nor A: nowhere to deliver


@dataclass(frozen=True)
class Hop:
    """One host to try: its MX preference (None for an A fallback), name and addresses."""

    preference: int | None
    host: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    domain: str
    kind: RouteKind
    hops: tuple[Hop, ...] = ()

    @property
    def why(self) -> str:
        """One sentence: why these hosts, in this order (or why none)."""
        if self.kind is RouteKind.MX:
            order = ", then ".join(f"{h.host} (preference {h.preference})" for h in self.hops)
            return f"{self.domain} has MX records; the lowest preference is tried first: {order}"
        if self.kind is RouteKind.A_FALLBACK:
            return (
                f"{self.domain} has no MX records, so its own address record is used "
                "(RFC 5321 §5.1, the implicit MX)"
            )
        if self.kind is RouteKind.NULL_MX:
            return (
                f"{self.domain} publishes a null MX (MX 0 .): it takes no mail, so a sender "
                "gives up at once, without connecting (RFC 7505)"
            )
        if self.kind is RouteKind.NO_DOMAIN:
            return f"{self.domain} does not exist (NXDOMAIN): a permanent failure"
        return f"{self.domain} has neither MX nor address records: nowhere to deliver"


class LookupFailed(Exception):
    """The world's DNS server did not answer (a timeout, or a malformed reply)."""


class NotServed(LookupFailed):
    """The world's DNS server answered REFUSED: the domain is not one of the simulated
    world's, and the tutor never asks the real internet. Not NO_DOMAIN: nobody said the
    domain does not exist, only that this server does not serve it."""


class Resolver:
    """Real queries to the world's DNS server (UDP, then TCP if the answer is truncated)."""

    def __init__(self, host: str, port: int, source: str = "") -> None:
        self.host = host
        self.port = port
        # An MTA of the world asks from its own address, so that the DNS server's log
        # (which lessons judge) tells its questions from the learner's.
        self.source = source

    def query(self, name: str, rdtype: str) -> dns.message.Message:
        request = dns.message.make_query(
            dns.name.from_text(name), dns.rdatatype.from_text(rdtype), use_edns=0
        )
        request.flags &= ~dns.flags.RD  # the world's server never recurses
        try:
            try:
                response, _ = dns.query.udp_with_fallback(
                    request,
                    self.host,
                    timeout=QUERY_TIMEOUT,
                    port=self.port,
                    source=self.source or None,
                )
            except OSError:
                if not self.source:
                    raise
                # A system that can use 127.0.0.1 only (macOS without aliases): ask from it.
                response, _ = dns.query.udp_with_fallback(
                    request, self.host, timeout=QUERY_TIMEOUT, port=self.port
                )
        except (dns.exception.DNSException, OSError) as error:
            raise LookupFailed(
                f"no answer from the DNS server at {self.host}:{self.port}: {error}"
            ) from None
        return response

    def records(self, name: str, rdtype: str) -> tuple[dns.rcode.Rcode, list[str]]:
        """The rcode and each record's data as text (MX as `10 host.`)."""
        response = self.query(name, rdtype)
        wanted = dns.rdatatype.from_text(rdtype)
        found = [
            rdata.to_text()
            for rrset in response.answer
            if rrset.rdtype == wanted
            for rdata in rrset
        ]
        return response.rcode(), found

    def addresses(self, host: str) -> tuple[str, ...]:
        """The host's A records, then its AAAA records: the order in which the tutor
        tries them, so that an IPv4 address stays first where a host has both."""
        _, ipv4 = self.records(host, "A")
        _, ipv6 = self.records(host, "AAAA")
        return (*ipv4, *ipv6)

    def route(self, domain: str) -> Route:
        """Where a sending MTA delivers mail for `domain`, asked as it asks."""
        domain = domain.lower().rstrip(".")
        rcode, mx = self.records(domain, "MX")
        if rcode == dns.rcode.REFUSED:
            raise NotServed(
                f"the DNS server at {self.host}:{self.port} answered REFUSED for {domain}: "
                "it is not a domain of the simulated world"
            )
        if rcode == dns.rcode.NXDOMAIN:
            return Route(domain, RouteKind.NO_DOMAIN)
        pairs = sorted((int(p), h.rstrip(".")) for p, h in (r.split() for r in mx))
        if pairs == [(0, "")]:
            return Route(domain, RouteKind.NULL_MX)
        if pairs:
            hops = tuple(Hop(p, h, self.addresses(h)) for p, h in pairs)
            return Route(domain, RouteKind.MX, hops)
        own = self.addresses(domain)
        if own:
            return Route(domain, RouteKind.A_FALLBACK, (Hop(None, domain, own),))
        return Route(domain, RouteKind.NO_ADDRESS)


def world_addresses() -> frozenset[str]:
    """Every loopback address the zone names: where the tutor may open a connection."""
    return frozenset(
        address
        for record in records()
        for address in (*record.a, *record.aaaa)
        if ipaddress.ip_address(address).is_loopback
    )


def reachable(address: str) -> bool:
    """May the tutor connect there? Only to a loopback address the world's zone names;
    a name, a public address, a loopback address outside the zone or anything that is
    not an address is refused. An IPv6 address counts in any spelling (`0::1` is ::1)."""
    try:
        canonical = str(ipaddress.ip_address(address))
    except ValueError:
        return False
    return canonical in world_addresses()
