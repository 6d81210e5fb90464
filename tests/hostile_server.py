"""A scriptable hostile SMTP server on loopback: what the tutor's client must survive.

A script is a list of steps played to every connection, in order:

    with HostileServer([Send(b"220 evil ESMTP\\r\\n"), ReadLine(), Stream(b"250-x\\r\\n")]) as evil:
        SmtpClient.connect(*evil.address, timeout=1.0)

Steps: `Send` bytes, `ReadLine` (wait for one command line), `Converse` (answer commands
until a given verb arrives, EHLO with a reply offering STARTTLS), `Stream` a pattern
again and again (endless, or up to a number of bytes), `Drip` bytes one at a time,
`Pause`, `Tls` (a real server-side handshake with a given context), `Stall` (read and
ignore until the client goes), `Close` (hang up, mid-reply if that is where it is).

In-process it runs in threads (`HostileServer`); as a subprocess target,
`python -m tests.hostile_server SCENARIO` prints `hostile server on 127.0.0.1:PORT` and
serves until it is killed (SIGTERM, Ctrl-C). `SCENARIOS` names the attacks of the
hardening tests. Loopback only; every wait is bounded, and `close()` ends every
connection's thread.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

POLL = 0.05  # how often a blocked step looks at the stop flag
STEP_TIMEOUT = 30.0  # the longest a step waits for the client
HEARD = 1024 * 1024  # what the server keeps of what clients sent


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class ReadLine:
    """Wait for one line from the client (ends the script if the client goes)."""


@dataclass(frozen=True)
class Converse:
    """Answer commands until one with the verb `until` arrives (not answered)."""

    until: str = "STARTTLS"
    name: str = "evil.example.test"


@dataclass(frozen=True)
class Stream:
    """`pattern` again and again: forever (`total` None) or up to `total` bytes."""

    pattern: bytes
    total: int | None = None


@dataclass(frozen=True)
class Drip:
    """`data` one byte at a time, `interval` seconds apart (forever with `repeat`)."""

    data: bytes
    interval: float = 0.05
    repeat: bool = False


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Tls:
    """A real TLS handshake as the server; the rest of the script runs over TLS."""

    context: ssl.SSLContext


@dataclass(frozen=True)
class Stall:
    """Read and throw away whatever comes, answer nothing, until the client goes."""


@dataclass(frozen=True)
class Close:
    pass


Step = Send | ReadLine | Converse | Stream | Drip | Pause | Tls | Stall | Close


class _Gone(Exception):
    """The client went away, or the server is stopping: the script ends."""


class _Peer:
    """One connection as the script sees it."""

    def __init__(self, sock: socket.socket, server: HostileServer) -> None:
        self.sock: socket.socket = sock
        self.server = server
        self.pending = b""
        sock.settimeout(POLL)

    def recv(self) -> bytes:
        """One chunk from the client (b"" when it has gone), kept in `server.heard`."""
        try:
            chunk = self.sock.recv(4096)
        except (TimeoutError, ssl.SSLWantReadError):
            raise  # nothing yet: the caller waits on
        except OSError:
            return b""
        self.server.hear(chunk)
        return chunk

    def alive(self) -> None:
        if self.server.stopping.is_set():
            raise _Gone

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + STEP_TIMEOUT
        while view:
            self.alive()
            try:
                sent = self.sock.send(view)
            except (TimeoutError, ssl.SSLWantWriteError):
                if time.monotonic() > deadline:
                    raise _Gone from None
                continue
            except OSError:
                raise _Gone from None
            self.server.count(sent)
            view = view[sent:]

    def read_line(self) -> bytes:
        deadline = time.monotonic() + STEP_TIMEOUT
        while b"\n" not in self.pending:
            self.alive()
            if time.monotonic() > deadline:
                raise _Gone
            try:
                chunk = self.recv()
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            if not chunk:
                raise _Gone
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return line + b"\n"

    def stall(self) -> None:
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline:
            self.alive()
            try:
                if not self.recv():
                    break
            except (TimeoutError, ssl.SSLWantReadError):
                continue
        raise _Gone

    def handshake(self, context: ssl.SSLContext) -> None:
        self.sock.settimeout(STEP_TIMEOUT)
        try:
            self.sock = context.wrap_socket(self.sock, server_side=True)
        except (OSError, ssl.SSLError):
            raise _Gone from None
        self.sock.settimeout(POLL)


def _ehlo_reply(name: str) -> bytes:
    lines = [name, "PIPELINING", "8BITMIME", "STARTTLS", "AUTH PLAIN LOGIN"]
    body = [f"250-{line}\r\n" for line in lines[:-1]] + [f"250 {lines[-1]}\r\n"]
    return "".join(body).encode()


def _converse(peer: _Peer, step: Converse) -> None:
    while True:
        line = peer.read_line()
        verb = line.split(b" ", 1)[0].strip().upper().decode("ascii", "replace")
        if verb == step.until.upper():
            return
        if verb == "EHLO":
            peer.send(_ehlo_reply(step.name))
        elif verb == "QUIT":
            peer.send(b"221 2.0.0 Bye\r\n")
            raise _Gone
        else:
            peer.send(b"250 2.0.0 Ok\r\n")


def _stream(peer: _Peer, step: Stream) -> None:
    block = step.pattern * max(1, 65536 // max(1, len(step.pattern)))
    left = step.total
    while left is None or left > 0:
        chunk = block if left is None else block[:left]
        peer.send(chunk)
        if left is not None:
            left -= len(chunk)


def _drip(peer: _Peer, step: Drip) -> None:
    while True:
        for byte in step.data:
            peer.send(bytes([byte]))
            if peer.server.stopping.wait(step.interval):
                raise _Gone
        if not step.repeat:
            return


def _play(peer: _Peer, step: Step) -> None:
    match step:
        case Send(data):
            peer.send(data)
        case ReadLine():
            peer.read_line()
        case Converse():
            _converse(peer, step)
        case Stream():
            _stream(peer, step)
        case Drip():
            _drip(peer, step)
        case Pause(seconds):
            if peer.server.stopping.wait(seconds):
                raise _Gone
        case Tls(context):
            peer.handshake(context)
        case Stall():
            peer.stall()
        case Close():
            raise _Gone


class HostileServer:
    """Plays `script` to every connection on 127.0.0.1, one thread per connection."""

    def __init__(self, script: Sequence[Step]) -> None:
        self.script = list(script)
        self.stopping = threading.Event()
        self.sent = 0  # bytes written to all clients
        self.heard = bytearray()  # what clients sent: the first MiB, decrypted after `Tls`
        self.connections = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(POLL)
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def count(self, sent: int) -> None:
        with self._lock:
            self.sent += sent

    def hear(self, chunk: bytes) -> None:
        with self._lock:
            self.heard += chunk[: HEARD - len(self.heard)]

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._sockets.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        peer = _Peer(sock, self)
        try:
            for step in self.script:
                _play(peer, step)
            peer.stall()  # the script is over: hold the line until the client goes
        except _Gone:
            pass
        finally:
            with contextlib.suppress(OSError):
                peer.sock.close()

    def close(self) -> None:
        self.stopping.set()
        self._acceptor.join(STEP_TIMEOUT)
        self.listener.close()
        for thread in self._threads:
            thread.join(STEP_TIMEOUT)
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the attacks, by name --------------------------------------------------------------------

GREETING = b"220 evil.example.test ESMTP\r\n"
LONG_LINE = b"250-" + b"A" * 70 + b"\r\n"
STARTTLS_OK = b"220 2.0.0 Ready to start TLS\r\n"
INJECTED = b"250-injected.example.test\r\n250 AUTH PLAIN\r\n"
# The largest reply the client takes whole: 126 lines of 512 octets, just under 64 KiB.
LARGEST_REPLY = (b"250-" + b"L" * 506 + b"\r\n") * 125 + b"250 " + b"L" * 506 + b"\r\n"


def tls_context(material: Path) -> ssl.SSLContext:
    """The teaching server's certificate (the smtp-tutor local CA, which nothing else
    trusts): a client that verifies against the system's store refuses it."""
    from tutor.server.tlsmaterial import server_context

    return server_context("mx.tutor.test", material)


def _starttls(*after: Step) -> list[Step]:
    return [Send(GREETING), Converse(until="STARTTLS"), *after]


def scenarios(material: Path) -> dict[str, Callable[[], list[Step]]]:
    """Every named attack; `material` is where TLS material is made when one needs it."""
    return {
        "endless-reply": lambda: [Send(GREETING), ReadLine(), Stream(LONG_LINE)],
        "endless-greeting": lambda: [Stream(b"220-hello\r\n")],
        "huge-line": lambda: [Send(GREETING), ReadLine(), Send(b"250 "), Stream(b"A")],
        "drip-reply": lambda: [Send(GREETING), ReadLine(), Drip(LONG_LINE, 0.01, repeat=True)],
        "close-mid-reply": lambda: [
            Send(GREETING),
            ReadLine(),
            Send(b"250-first\r\n250-sec"),
            Close(),
        ],
        "endless-unsolicited": lambda: [Send(GREETING), Stream(b"250 2.0.0 Ok\r\n")],
        "largest-reply": lambda: [Send(GREETING), ReadLine(), Send(LARGEST_REPLY)],
        "starttls-trailing": lambda: _starttls(Send(STARTTLS_OK + INJECTED)),
        "starttls-trailing-late": lambda: _starttls(Send(STARTTLS_OK), Pause(0.2), Send(INJECTED)),
        "starttls-garbage": lambda: _starttls(
            Send(STARTTLS_OK), Pause(0.2), Send(b"\x16\x03\x03\x00\x04junk")
        ),
        "starttls-stall": lambda: _starttls(Send(STARTTLS_OK), Stall()),
        "starttls-untrusted": lambda: _starttls(
            Send(STARTTLS_OK), Tls(tls_context(material)), Converse(until="NEVER")
        ),
        "starttls-close": lambda: _starttls(Send(STARTTLS_OK), Close()),
        "starttls-declined": lambda: _starttls(
            Send(b"454 4.7.0 TLS not available due to temporary reason\r\n"),
            Converse(until="NEVER"),
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hostile_server")
    parser.add_argument("scenario")
    parser.add_argument("--tls-dir", type=Path, default=Path("hostile-tls"))
    options = parser.parse_args(argv)
    named = scenarios(options.tls_dir)
    if options.scenario not in named:
        parser.error(f"no scenario {options.scenario!r}; one of: {', '.join(named)}")
    with HostileServer(named[options.scenario]()) as server:
        host, port = server.address
        print(f"hostile server on {host}:{port}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:  # until SIGTERM (the default action ends the process) or Ctrl-C
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
