"""`serve` without the terminal: build the server from options, describe how to reach it."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from pathlib import Path

from tutor.classroom import periods
from tutor.classroom.report import TEACHER
from tutor.errors import UserError
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
    )
    return persona, (options.host,) if options.host else _loopback_hosts()


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
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return [
        f"telnet {host} {port}",
        f"nc -C {host} {port}",
        f"openssl s_client -starttls smtp -crlf -quiet -connect {host_port(host, port)}",
        f"swaks --server {host} --port {port} --to you@tutor.test",
    ]
