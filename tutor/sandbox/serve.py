"""`serve` without the terminal: build the server from options, describe how to reach it."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from pathlib import Path

from tutor.classroom import periods
from tutor.classroom.report import TEACHER
from tutor.errors import UserError
from tutor.sandbox import lan
from tutor.server.access import CLASS_NETWORKS, Network, parse_network
from tutor.server.endpoints import BindError, MaildirError
from tutor.server.persona import Persona
from tutor.server.process import ServerProcess
from tutor.server.runner import TeachingServer
from tutor.smtp.wire import host_port

LOOPBACK_HOSTS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class ServeOptions:
    host: str | None
    port: int
    maildir: Path
    open_relay: bool
    idle_timeout: float
    max_connections: int
    tls_port: int | None
    # --lan: host is the LAN address (serve_app finds it), loopback is served too, and
    # only the class's network (server/access.py) and the --allow networks are served.
    lan: bool = False
    allow: tuple[str, ...] = ()


def build_server(options: ServeOptions) -> TeachingServer:
    """In this process (tests that drive the capture directly)."""
    persona, hosts = _persona_and_hosts(options)
    return TeachingServer(
        options.maildir, persona, hosts=hosts, port=options.port, tls_port=options.tls_port
    )


def build_server_process(options: ServeOptions) -> ServerProcess:
    """In its own process, as `smtp-tutor serve` runs it (tutor/server/process.py), in the
    class's current period (one is begun if the Maildir has none yet)."""
    periods.current_or_new(options.maildir)  # a file error names its path (cli's problems)
    persona, hosts = _persona_and_hosts(options)
    persona = persona.with_changes(mailboxes=(*persona.mailboxes, TEACHER))  # for reports
    return ServerProcess(
        options.maildir,
        persona,
        hosts=hosts,
        port=options.port,
        tls_port=options.tls_port,
        save_every_session=True,  # the class roster reads every session from disk
    )


def _persona_and_hosts(options: ServeOptions) -> tuple[Persona, tuple[str, ...]]:
    persona = Persona(
        open_relay=options.open_relay,
        idle_timeout=options.idle_timeout,
        max_connections=options.max_connections,
        clients=served_networks(options),
    )
    if options.lan and options.host:  # and loopback, for the teacher's own demonstrations
        return persona, (options.host, "::1" if ":" in options.host else "127.0.0.1")
    return persona, (options.host,) if options.host else _loopback_hosts()


def served_networks(options: ServeOptions) -> tuple[Network, ...] | None:
    """The networks whose clients are served: --lan's class networks and --allow's;
    None (every client) without --lan."""
    if not options.lan:
        return None
    return CLASS_NETWORKS + tuple(parse_network(text) for text in options.allow)


def _loopback_hosts() -> tuple[str, ...]:
    return LOOPBACK_HOSTS if socket.has_ipv6 else LOOPBACK_HOSTS[:1]


def start(server: TeachingServer | ServerProcess) -> None:
    """Start, turning the usual bind failures into one clear line."""
    try:
        server.start()
    except MaildirError as error:
        raise UserError(str(error.strerror)) from error
    except BindError as error:  # only the listening socket's: a file error names its path
        where = f"{server.hosts[0]} port {server.port}"
        if error.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
            raise UserError(
                f"port {server.port} is already in use on {server.hosts[0]}; "
                "pick another with --port"
            ) from error
        if error.errno in (errno.EACCES, getattr(errno, "WSAEACCES", -1)):
            raise UserError(
                f"not allowed to listen on {where} (ports below 1024 need privileges); "
                "try --port 2525"
            ) from error
        if error.errno == errno.EADDRNOTAVAIL or (error.errno or 0) < 0:  # < 0: getaddrinfo
            raise UserError(f"cannot listen on {where}: no such local address") from error
        raise UserError(f"cannot listen on {where}: {error.strerror or error}") from error


def client_hints(host: str, port: int) -> list[str]:
    host = reachable_address(host)
    return [
        f"telnet {host} {port}",
        f"nc -C {host} {port}",
        f"openssl s_client -starttls smtp -crlf -quiet -connect {host_port(host, port)}",
        f"swaks --server {host} --port {port} --to you@tutor.test",
    ]


def reachable_address(host: str) -> str:
    """The address to tell a client: for a wildcard (every address), the one on the
    default route (sandbox/lan.py, no packet sent), or loopback on a machine without one."""
    if host in ("0.0.0.0", ""):
        return lan.default_route_address(socket.AF_INET) or "127.0.0.1"
    if host == "::":  # asyncio binds "::" IPv6 only (IPV6_V6ONLY)
        return lan.default_route_address(socket.AF_INET6) or "::1"
    return host
