"""`sandbox --to DOMAIN`: find the host that takes a domain's mail, as a sending MTA does.

The simulated world (tutor.server.world) runs in the background; the route comes from a
real query to its DNS server (tutor.world.routing), and each host is tried in order, the
most preferred first: a refused connection or a 4xx greeting is a temporary failure, and
the sender moves on to the next host; the first 220 greeting is the session, handed to
the Sandbox on the very connection that read it (docs/world.md, "sandbox --to").

Connections go only to the addresses `routing.reachable` allows (loopback addresses the
world's zone names); any other address is refused here, before a socket is opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

import dns.exception
import dns.name
import dns.rcode

from tutor.client.client import SmtpClient, SmtpClientError, SmtpConnectError
from tutor.errors import UsageError, UserError
from tutor.server.capture import Capture
from tutor.server.world import World, WorldMap
from tutor.smtp.wire import Reply
from tutor.world.dnsdata import WORLD_HOSTS, records
from tutor.world.routing import Hop, LookupFailed, Resolver, Route, reachable


class Outcome(Enum):
    SESSION = "session"  # a 220 greeting: this host takes the mail
    TEMPORARY = "temporary"  # a 4xx greeting: try the next host
    REJECTED = "rejected"  # a 5xx greeting: this host offers no service; try the next
    NO_CONNECTION = "no-connection"  # refused, timed out, closed: try the next host
    NOT_REACHABLE = "not-reachable"  # an address the tutor never connects to
    NO_ADDRESS = "no-address"  # the host's name has no address record


@dataclass(frozen=True)
class Attempt:
    """One try at one address of one host, in the order a sending MTA tries them."""

    hop: Hop
    address: str  # the DNS address ("" when the host has none)
    port: int  # where the connection went (0: no connection was tried)
    connect_to: str  # the address connected to: the DNS one, or 127.0.0.1 without aliases
    outcome: Outcome
    reply: Reply | None = None
    detail: str = ""  # one line: why there was no session here
    client: SmtpClient | None = None  # SESSION only: the open connection, greeting read
    capture: Capture | None = None  # SESSION only: the MTA's own record of its sessions

    @property
    def last(self) -> bool:
        return self.outcome is Outcome.SESSION


def world_domains() -> list[str]:
    """The mail domains of the world: each MTA's domain, and the null-MX domain."""
    served = {host.domain for host in WORLD_HOSTS}
    served |= {record.name for record in records() if record.null_mx}
    return sorted(served)


def domain_argument(text: str) -> str:
    """--to's DOMAIN as the queries take it (lower case, no final dot); UsageError for
    anything that is not a domain name."""
    domain = text.strip().lower().rstrip(".")
    try:
        name = dns.name.from_text(domain)
    except dns.exception.DNSException as error:
        raise UsageError(f"--to {text!r} is not a domain name: {error}") from None
    if not domain or len(name) < 2 or "@" in domain:
        raise UsageError(f"--to {text!r} is not a domain name (e.g. --to example.org)")
    return domain


class NotServed(UsageError):
    """The world's DNS server answered REFUSED: the domain is not in the simulated zone."""


class RoutedWorld:
    """The world in the background, the route to one domain, and the tries along it.

    `start()` starts the world; `stop()` stops every process of it, also after a failed
    start. Used as a context manager it stops on any way out (Ctrl-C included).
    """

    def __init__(self, maildir: Path, *, timeout: float) -> None:
        self.maildir = maildir
        self.timeout = timeout
        self.world = World(maildir, mirror=True)  # the sandbox reads what each MTA stored
        self.map: WorldMap | None = None

    def __enter__(self) -> RoutedWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> WorldMap:
        self.map = self.world.start()
        return self.map

    def stop(self) -> None:
        self.world.stop()

    @property
    def resolver(self) -> Resolver:
        assert self.map is not None, "start() first"
        return Resolver(self.map.dns_host, self.map.dns_port)

    def route(self, domain: str) -> Route:
        """The route, from real queries; NotServed (exit 2) outside the world's zone."""
        resolver = self.resolver
        try:
            rcode, _ = resolver.records(domain, "MX")
            if rcode == dns.rcode.REFUSED:
                raise NotServed(not_served_line(domain))
            return resolver.route(domain)
        except LookupFailed as error:
            raise UserError(str(error)) from None

    def attempts(self, route: Route) -> Iterator[Attempt]:
        """Each try in order, until one gives a session (its Attempt comes last)."""
        assert self.map is not None, "start() first"
        for attempt in tries(route, self.map, timeout=self.timeout):
            if attempt.outcome is Outcome.SESSION:
                attempt = _with_capture(attempt, self.world)
            yield attempt
            if attempt.last:
                return


def more_after(route: Route, attempt: Attempt) -> bool:
    """Whether the route has a host or address left to try after this attempt."""
    order = [(hop, address) for hop in route.hops for address in hop.addresses or ("",)]
    return order.index((attempt.hop, attempt.address)) < len(order) - 1


def not_served_line(domain: str) -> str:
    return (
        f"the world's DNS server answered REFUSED for {domain}: it is not a domain of the "
        "simulated world, and the tutor never asks the real internet. "
        f"The world's domains: {', '.join(world_domains())}"
    )


def tries(route: Route, world_map: WorldMap, *, timeout: float) -> Iterator[Attempt]:
    """Each host of the route in order, each of its addresses in order; stops after the
    first 220 greeting. Never opens a socket to an address `reachable` refuses."""
    for hop in route.hops:
        if not hop.addresses:
            yield Attempt(hop, "", 0, "", Outcome.NO_ADDRESS, detail="no address record")
            continue
        for address in hop.addresses:
            attempt = _try(hop, address, world_map, timeout)
            yield attempt
            if attempt.last:
                return


def _try(hop: Hop, address: str, world_map: WorldMap, timeout: float) -> Attempt:
    connect_to, port = _where(hop, address, world_map)
    if not (reachable(address) and reachable(connect_to)):
        return Attempt(
            hop,
            address,
            0,
            address,
            Outcome.NOT_REACHABLE,
            detail=(
                "not connected: the tutor connects only to the loopback addresses the "
                "world's zone names"
            ),
        )
    try:
        client = SmtpClient.connect(connect_to, port, timeout=timeout, server_hostname=hop.host)
    except SmtpConnectError as error:
        reason = "connection refused (nothing listens there)"
        if "nothing is listening" not in str(error):
            reason = str(error)
        return Attempt(hop, address, port, connect_to, Outcome.NO_CONNECTION, detail=reason)
    except SmtpClientError as error:
        return Attempt(hop, address, port, connect_to, Outcome.NO_CONNECTION, detail=str(error))
    greeting = client.banner
    if greeting.code == 220:
        return Attempt(hop, address, port, connect_to, Outcome.SESSION, greeting, client=client)
    client.close()  # a busy or refusing host hangs up after its greeting anyway
    outcome = Outcome.TEMPORARY if 400 <= greeting.code < 500 else Outcome.REJECTED
    return Attempt(hop, address, port, connect_to, outcome, greeting)


def _where(hop: Hop, address: str, world_map: WorldMap) -> tuple[str, int]:
    """Where an address of the route is reached: itself at the shared port, or (a system
    with only 127.0.0.1) the map's 127.0.0.1 port of the host at that address."""
    if world_map.shared_port:
        return address, world_map.mtas[0].port
    for mta in world_map.mtas:
        if mta.host.address == address:
            return mta.address, mta.port
    return address, world_map.mtas[0].port  # not a host of the map: `reachable` decides


def _with_capture(attempt: Attempt, world: World) -> Attempt:
    server = world.server_at(attempt.connect_to, attempt.port)
    return attempt if server is None else replace(attempt, capture=server.capture)
