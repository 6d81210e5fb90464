"""`smtp-tutor world` without the terminal: the simulated DNS and one teaching MTA per
listening host of tutor.world.dnsdata.WORLD_HOSTS, all on loopback (docs/world.md).

Each MTA is a ServerProcess of its own with the persona of its domain, bound to its
host's A record (127.0.0.x) and one port shared by all, so that DNS alone says where
mail goes. With `base_port` (a system with only 127.0.0.1) each MTA listens on
127.0.0.1 at base_port + i instead, and the map says so (`shared_port` is False).

This module lives in tutor/server because it starts servers (tutor/world, a layer below,
holds only the data and the DNS server), so that both `sandbox` and the lessons, which
sit above, can start a world. A lesson's world mirrors each MTA's capture (`mirror`).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutor.errors import UserError, reason
from tutor.server.endpoints import BindError, MaildirError
from tutor.server.persona import Persona
from tutor.server.process import ServerProcess
from tutor.server.world_personas import maildir_name, world_persona
from tutor.server.world_tls import ensure_host_certificate
from tutor.world.dkim_keys import ensure_keys, keys_dir
from tutor.world.dns_server import HOST, DnsServer, running_in_thread
from tutor.world.dnsdata import WORLD_HOSTS, Role, WorldHost, lookup
from tutor.world.zone import Zone, simulated_zone

LOOPBACK = "127.0.0.1"
LOOPBACK6 = "::1"


@dataclass(frozen=True)
class RunningMta:
    """Where one MTA of the world listens."""

    host: WorldHost
    address: str
    port: int

    def as_json(self) -> dict[str, Any]:
        return {
            "domain": self.host.domain,
            "host": self.host.host,
            "address": self.address,
            "port": self.port,
            "role": self.host.role.value,
        }


@dataclass(frozen=True)
class WorldMap:
    """What `world` prints: the DNS server's address and every host, down ones included
    (with the address and port a client would try, where nothing listens)."""

    dns_host: str
    dns_port: int
    maildir: Path
    mtas: tuple[RunningMta, ...]
    shared_port: bool  # False with --base-port: each MTA on 127.0.0.1 at a port of its own

    @property
    def dns(self) -> str:
        return f"{self.dns_host}:{self.dns_port}"

    def as_json(self) -> dict[str, Any]:
        return {
            "dns": self.dns,
            "maildir": str(self.maildir),
            "shared_port": self.shared_port,
            "mtas": [mta.as_json() for mta in self.mtas],
        }

    def mta(self, host: str) -> RunningMta:
        return next(mta for mta in self.mtas if mta.host.host == host)


def persona_for(host: WorldHost) -> Persona:
    """The MTA's identity: its host name and domain. No STARTTLS: the tutor's certificate
    names mx.tutor.test only, and the world is about routing (docs/world.md)."""
    return Persona(
        hostname=host.host,
        domain=host.domain,
        greylist=host.role is Role.GREYLISTING,
        busy=host.role is Role.BUSY,
        tls=False,
    )


def loopback_aliases_work() -> bool:
    """Whether this system routes 127.0.0.x beyond 127.0.0.1 to loopback (Linux does;
    macOS needs an alias per address)."""
    address = next(host.address for host in WORLD_HOSTS if host.address != LOOPBACK)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


def ipv6_loopback_works() -> bool:
    """Whether something can listen on ::1 here (not where IPv6 is disabled)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind((LOOPBACK6, 0))
    except OSError:
        return False
    return True


def ipv6_addresses(host: WorldHost) -> tuple[str, ...]:
    """The loopback AAAA addresses DNS gives the host (::1 for mx.tutor.test)."""
    record = lookup(host.host)
    aaaa = () if record is None else record.aaaa
    return tuple(address for address in aaaa if ipaddress.ip_address(address).is_loopback)


class World:
    """start() starts the DNS server and every listening MTA (or raises UserError and
    leaves nothing running); stop() stops them all."""

    def __init__(
        self,
        maildir: Path,
        *,
        dns_port: int = 0,
        port: int = 0,
        base_port: int | None = None,
        mirror: bool = False,
    ) -> None:
        self.maildir = maildir
        self.dns_port = dns_port
        self.port = port
        self.base_port = base_port
        self.mirror = mirror  # a lesson reads each MTA's record of its sessions
        self.servers: list[ServerProcess] = []
        self.dns: DnsServer | None = None
        self._dns: contextlib.ExitStack | None = None
        # DNS names ::1 only where the tutor.test MTA listens there too (docs/dns.md).
        self.ipv6 = ipv6_loopback_works()

    def start(self) -> WorldMap:
        try:
            dns = self._start_dns()
            mtas = self._start_mtas()
        except BaseException:
            self.stop()
            raise
        shared = len({mta.port for mta in mtas}) == 1
        return WorldMap(HOST, dns.port, self.maildir, mtas, shared_port=shared)

    def _start_dns(self) -> DnsServer:
        self._dns = contextlib.ExitStack()
        try:
            self.dns = self._dns.enter_context(running_in_thread(self._zone(), HOST, self.dns_port))
            return self.dns
        except OSError as error:
            raise UserError(
                f"cannot serve DNS on {HOST}:{self.dns_port}: {reason(error)} "
                "(try --dns-port 0 for a free port)"
            ) from None

    def _zone(self) -> Zone:
        """The simulated zone, with the world's DKIM keys (made the first time)."""
        ensure_keys()
        ensure_host_certificate("smtp.tutor.test")  # STARTTLS at the submission MTA
        return simulated_zone(ipv6_loopback=self.ipv6)

    def _start_mtas(self) -> tuple[RunningMta, ...]:
        aliases = self.base_port is None and loopback_aliases_work()
        listening = [host for host in WORLD_HOSTS if host.listens]
        # The first MTA picks the shared port (when --port is 0) for all the others, which
        # then start side by side: each is a process of its own.
        first = self._start_mta(self._server_for(listening[0], aliases, self.port))
        shared_port = first.address[1] if aliases else 0
        others = [self._server_for(host, aliases, shared_port) for host in listening[1:]]
        for server in others:
            self.servers.append(server)
            server.launch_in_background()
        for server in others:
            self._start_mta(server)
        self._check_ipv6()
        where = {server.persona.hostname: server.address for server in self.servers}
        return tuple(
            RunningMta(host, *where[host.host]) if host.listens else self._down(host, shared_port)
            for host in WORLD_HOSTS
        )

    def _server_for(self, host: WorldHost, aliases: bool, shared_port: int) -> ServerProcess:
        """The host's server, not started: on its own address at the shared port, or on
        127.0.0.1 at its --base-port port (a free one without --base-port)."""
        if aliases:
            address, port = host.address, shared_port
        else:
            address, port = LOOPBACK, self._own_port(host)
        also = ipv6_addresses(host) if self.ipv6 else ()
        return ServerProcess(
            self.maildir / maildir_name(host),
            self._persona(host, shared_port if aliases else 0),
            hosts=(address, *also),
            port=port,
            mirror=self.mirror,
        )

    def _persona(self, host: WorldHost, shared_port: int) -> Persona:
        """Its persona, with what it verifies, signs and forwards (world_mail)."""
        assert self.dns is not None
        dns = (HOST, self.dns.port)
        return world_persona(persona_for(host), host, dns=dns, port=shared_port, key_dir=keys_dir())

    def _check_ipv6(self) -> None:
        """The zone names ::1 (an AAAA): an MTA that could not also listen there (its
        port taken on ::1 alone) must not leave DNS naming a dead address."""
        for server in self.servers:
            listening = {listener.host for listener in server.listeners}
            missing = [address for address in server.hosts if address not in listening]
            if missing:
                raise UserError(
                    f"cannot listen on {missing[0]} port {server.address[1]} "
                    f"({server.persona.hostname}), which DNS names as its AAAA; "
                    "pick another port with --port or --base-port"
                )

    def _own_port(self, host: WorldHost) -> int:
        return 0 if self.base_port is None else self.base_port + WORLD_HOSTS.index(host)

    def _down(self, host: WorldHost, shared_port: int) -> RunningMta:
        """A down host, at the address and port a client would try (nothing listens)."""
        if shared_port:
            return RunningMta(host, host.address, shared_port)
        return RunningMta(host, LOOPBACK, self._own_port(host))

    def _start_mta(self, server: ServerProcess) -> ServerProcess:
        if server not in self.servers:
            self.servers.append(server)
        address, port, name = server.hosts[0], server.port, server.persona.hostname
        try:
            server.start()
        except MaildirError as error:
            raise UserError(str(error.strerror)) from None
        except BindError as error:
            if error.errno == errno.EADDRINUSE:
                raise UserError(
                    f"port {port} is already in use on {address} ({name}); "
                    "pick another with --port or --base-port"
                ) from None
            raise UserError(
                f"cannot listen on {address} port {port} ({name}): {error.strerror or error}"
            ) from None
        return server

    def stop(self) -> None:
        """Stop every MTA (each says 421 to its clients) and the DNS server."""
        servers, self.servers = self.servers, []
        for server in servers:
            server.stop()
        dns, self._dns, self.dns = self._dns, None, None
        if dns is not None:
            dns.close()

    def server_at(self, address: str, port: int) -> ServerProcess | None:
        """The running MTA listening at this address and port, if any."""
        return next(
            (
                server
                for server in self.servers
                if any((item.host, item.port) == (address, port) for item in server.listeners)
            ),
            None,
        )
