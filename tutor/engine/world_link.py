"""A world lesson's servers: the simulated internet (DNS and one MTA per host) seen by the
lesson driver as one LessonServer whose `current` MTA is the one the learner connected to.

The learner, playing the sending MTA, types `dig …` to ask the world's DNS server and
`connect HOST` (or `telnet HOST [PORT]`) to open a session with a host of the world; the
driver turns those lines into real DNS queries and real connections. Every connection
goes only where `routing.reachable` allows: loopback addresses that the zone names.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutor.errors import UserError
from tutor.server.capture import Capture
from tutor.server.persona import Persona
from tutor.server.process import ServerProcess
from tutor.server.world import World, WorldMap
from tutor.world.authresults import is_address
from tutor.world.dns_server import HOST
from tutor.world.dnsdata import WORLD_HOSTS
from tutor.world.query_log import QueryLog
from tutor.world.routing import Resolver, reachable
from tutor.world.zone import QUERY_TYPES

QUIET_WAIT = 15.0  # seconds validate waits for mail in flight between two replays
# Words of a dig line that are options, not the question (dig's own syntax).
_DIG_OPTIONS_WITH_VALUE = {"-p", "-b", "-c", "-k", "-y", "-q", "-t"}


@dataclass(frozen=True)
class Question:
    name: str
    rdtype: str


def dig_question(line: str) -> Question:
    """The question of a dig line: `dig MX example.org`, `dig example.org mx`,
    `dig @127.0.0.1 -p 1053 MX example.org +short`; the type defaults to A, as dig's does.
    A line that names no domain raises ValueError with what to type."""
    words = line.split()[1:]
    name, rdtype = "", "A"
    skip = False
    for index, word in enumerate(words):
        if skip:
            skip = False
            continue
        if word in _DIG_OPTIONS_WITH_VALUE:
            if word == "-t" and index + 1 < len(words):
                rdtype = words[index + 1].upper()
            skip = True
        elif word.startswith(("@", "+", "-")):
            continue
        elif word.upper() in {t.name for t in QUERY_TYPES}:
            rdtype = word.upper()
        elif not name:
            name = word
    if not name:
        raise ValueError("say which name to ask about, e.g. dig MX example.org")
    return Question(name.lower().rstrip(".") or ".", rdtype)


@dataclass(frozen=True)
class Target:
    """Where a `connect` line points: an address of the world, its port and its name."""

    host: str  # the world's name for the address ("" if none)
    address: str
    port: int
    note: str = ""  # where the system made the tutor connect elsewhere (only 127.0.0.1)


def host_name(address: str) -> str:
    """The world's name for one of its addresses."""
    return next((h.host for h in WORLD_HOSTS if h.address == address), "")


class WorldLessonServer:
    """start() runs the world; `current` is the MTA the learner's session talks to (the
    tutor.test MTA until they connect elsewhere). It satisfies the driver's LessonServer."""

    def __init__(self, maildir: Path) -> None:
        self.root = maildir  # <root>/<domain>/<mailbox>/: each domain's Maildir
        self.world = World(maildir, mirror=True)
        self.map: WorldMap | None = None
        self.current: ServerProcess | None = None

    # --- LessonServer ----------------------------------------------------------------

    def start(self) -> WorldLessonServer:
        self.map = self.world.start()
        self.current = self.world.servers[0]
        return self

    def stop(self) -> None:
        self.world.stop()

    @property
    def _server(self) -> ServerProcess:
        if self.current is None:
            raise RuntimeError("the world is not started")
        return self.current

    @property
    def persona(self) -> Persona:
        return self._server.persona

    @property
    def tls_context(self) -> ssl.SSLContext | None:
        return None  # the world's MTAs offer no STARTTLS (docs/world.md)

    @property
    def address(self) -> tuple[str, int]:
        return self._server.address

    @property
    def capture(self) -> Capture:
        return self._server.capture

    def update_persona(self, **changes: Any) -> None:
        raise UserError("a world lesson cannot change its servers' settings")

    # --- validate's use: one world for every replay -------------------------------------

    @property
    def maildir(self) -> Path:
        return self.root

    def reset(self, persona: Persona) -> None:
        """A fresh start for the next replay: mail of the last one still being relayed
        between the world's MTAs has arrived (or QUIET_WAIT passed), and each MTA is back
        to its own persona, with no greylisting memory (`persona` is the lesson's, and
        means nothing here)."""
        self._settle()
        for server in self.world.servers:
            server.reset(server.persona)

    def _settle(self) -> None:
        """Wait until every session of every MTA is closed and no new file has come into
        any mailbox for a moment: a relay between MTAs runs after the 250."""
        deadline = time.monotonic() + QUIET_WAIT
        last = -1
        while time.monotonic() < deadline:
            files = sum(1 for path in self.root.glob("*/*/new/*"))
            busy = any(
                record.closed is None
                for server in self.world.servers
                for record in server.capture.sessions()
            )
            if files == last and not busy:
                return
            last = files
            time.sleep(0.2)

    def __enter__(self) -> WorldLessonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the world -------------------------------------------------------------------

    @property
    def started(self) -> WorldMap:
        if self.map is None:
            raise RuntimeError("the world is not started")
        return self.map

    @property
    def dns_port(self) -> int:
        return self.started.dns_port

    @property
    def dns_log(self) -> QueryLog:
        assert self.world.dns is not None
        return self.world.dns.log

    def resolver(self) -> Resolver:
        return Resolver(HOST, self.dns_port)

    def where(self, address: str) -> tuple[str, int]:
        """Where the host DNS names at `address` really listens: there, at the shared
        port; or, on a system that can use 127.0.0.1 only, 127.0.0.1 at its own port."""
        mta = next((m for m in self.started.mtas if m.host.address == address), None)
        if mta is None:
            return address, self.started.mtas[0].port
        return mta.address, mta.port

    @property
    def shared_port(self) -> bool:
        return self.started.shared_port

    def target(self, line: str) -> Target:
        """`connect HOST [PORT]` / `telnet HOST [PORT]`: resolve a name through the world's
        DNS (a real query), and refuse anything `reachable` does not allow."""
        words = line.split()[1:]
        if not words:
            raise UserError("say which host: connect mx2.example.org (or an address)")
        name = words[0].strip("[]").lower().rstrip(".")
        if len(words) > 2 or (len(words) == 2 and not words[1].isdigit()):
            raise UserError("connect HOST or connect HOST PORT, e.g. connect mx2.example.org")
        address = name
        if not is_address(name):
            found = self.resolver().addresses(name)
            if not found:
                raise UserError(f"{name} has no A record in the world's DNS: nothing to connect to")
            address = found[0]
        if not reachable(address):
            raise UserError(
                f"{address} is not a host of the simulated world: the tutor connects only "
                "to the world's own loopback addresses (smtp-tutor world lists them)"
            )
        host = host_name(address) or name
        listening, port = self.where(address)
        note = ""
        if listening != address:  # no 127.0.0.x aliases here (macOS): docs/world.md
            note = (
                f"this system can use 127.0.0.1 only, so {host} listens on {listening} port "
                f"{port} instead of {address}: the tutor connects there"
            )
        if len(words) == 2:
            port = int(words[1])
        return Target(host, listening, port, note)

    def select(self, target: Target) -> ServerProcess | None:
        """Make the MTA at `target` current; None when nothing of the world listens there."""
        server = self.world.server_at(target.address, target.port)
        if server is not None:
            self.current = server
        return server

    def root_of(self, host: str) -> Path:
        """The Maildir root where a host of the world stores its domain's mail."""
        domain = next((h.domain for h in WORLD_HOSTS if h.host == host), "tutor.test")
        return self.root / domain
