"""`smtp-tutor world` without the terminal: the simulated DNS and one teaching MTA per
listening host of tutor.world.dnsdata.WORLD_HOSTS, all on loopback (docs/world.md).

Each MTA is a ServerProcess of its own with the persona of its domain, bound to its
host's A record (127.0.0.x) and one port shared by all, so that DNS alone says where
mail goes. With `base_port` (a system with only 127.0.0.1) each MTA listens on
127.0.0.1 at base_port + i instead, and the map says so (`shared_port` is False).

This module lives in tutor/sandbox because it starts servers: tutor/world is a layer
below tutor/server and holds only the data.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tutor.errors import UserError, reason
from tutor.server.endpoints import BindError, MaildirError
from tutor.server.persona import Persona
from tutor.server.process import ServerProcess
from tutor.world.dns_server import HOST, DnsServer, running_in_thread
from tutor.world.dnsdata import WORLD_HOSTS, Role, WorldHost
from tutor.world.zone import simulated_zone

LOOPBACK = "127.0.0.1"


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


class World:
    """start() starts the DNS server and every listening MTA (or raises UserError and
    leaves nothing running); stop() stops them all."""

    def __init__(
        self, maildir: Path, *, dns_port: int = 0, port: int = 0, base_port: int | None = None
    ) -> None:
        self.maildir = maildir
        self.dns_port = dns_port
        self.port = port
        self.base_port = base_port
        self.servers: list[ServerProcess] = []
        self._dns: contextlib.ExitStack | None = None

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
            return self._dns.enter_context(running_in_thread(simulated_zone(), HOST, self.dns_port))
        except OSError as error:
            raise UserError(
                f"cannot serve DNS on {HOST}:{self.dns_port}: {reason(error)} "
                "(try --dns-port 0 for a free port)"
            ) from None

    def _start_mtas(self) -> tuple[RunningMta, ...]:
        mtas: list[RunningMta] = []
        shared_port = self.port
        aliases = self.base_port is None and loopback_aliases_work()
        for index, host in enumerate(WORLD_HOSTS):
            if not host.listens:  # its address and port exist; nothing listens there
                mtas.append(RunningMta(host, host.address, 0))
                continue
            if aliases:
                address, port = host.address, shared_port
            else:  # --base-port, or only 127.0.0.1 here: a free port each without it
                base = self.base_port
                address, port = LOOPBACK, 0 if base is None else base + index
            server = self._start_mta(host, address, port)
            port = server.address[1]
            shared_port = shared_port or port  # the first MTA's free port, for all the others
            mtas.append(RunningMta(host, address, port))
        return tuple(self._down_port(mta, shared_port if aliases else 0) for mta in mtas)

    def _down_port(self, mta: RunningMta, shared_port: int) -> RunningMta:
        """A down host's port: the one a client would try (the shared one, or its own
        --base-port one); 0 without either."""
        if mta.host.listens:
            return mta
        if self.base_port is not None:
            return replace(mta, address=LOOPBACK, port=self.base_port + WORLD_HOSTS.index(mta.host))
        return replace(mta, port=shared_port)

    def _start_mta(self, host: WorldHost, address: str, port: int) -> ServerProcess:
        server = ServerProcess(
            self.maildir / host.domain, persona_for(host), hosts=(address,), port=port
        )
        self.servers.append(server)
        try:
            server.start()
        except MaildirError as error:
            raise UserError(str(error.strerror)) from None
        except BindError as error:
            if error.errno == errno.EADDRINUSE:
                raise UserError(
                    f"port {port} is already in use on {address} ({host.host}); "
                    "pick another with --port or --base-port"
                ) from None
            raise UserError(
                f"cannot listen on {address} port {port} ({host.host}): {error.strerror or error}"
            ) from None
        return server

    def stop(self) -> None:
        """Stop every MTA (each says 421 to its clients) and the DNS server."""
        servers, self.servers = self.servers, []
        for server in servers:
            server.stop()
        dns, self._dns = self._dns, None
        if dns is not None:
            dns.close()
