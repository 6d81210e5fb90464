"""Servers that are not smtp-tutor's own, all on 127.0.0.1, for the sandbox tests.

- `StockSink`: aiosmtpd's stock SMTP class with its stock `Sink` handler, on its own loop.
- `PostfixSink`: Postfix's `smtp-sink` test server, where it is installed.
- `silent_listener`: accepts TCP connections (the kernel does) but never says a word.
- `dropping_server`: greets, reads one line, hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

from tests.support import require_tool

TIMEOUT = 10.0


class StockSink:
    """aiosmtpd.smtp.SMTP + aiosmtpd.handlers.Sink: accepts everything, stores nothing."""

    def __init__(self) -> None:
        from aiosmtpd.handlers import Sink
        from aiosmtpd.smtp import SMTP

        self.open_connections = 0
        self.changed = threading.Condition()
        outer = self

        class Counted(SMTP):  # type: ignore[misc]
            def connection_made(self, transport: Any) -> None:
                with outer.changed:
                    outer.open_connections += 1
                super().connection_made(transport)

            def connection_lost(self, error: Exception | None) -> None:
                super().connection_lost(error)
                with outer.changed:
                    outer.open_connections -= 1
                    outer.changed.notify_all()

        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(
            self.loop.create_server(
                lambda: Counted(Sink(), hostname="sink.example.test"), "127.0.0.1", 0
            )
        )
        self.address: tuple[str, int] = self.server.sockets[0].getsockname()[:2]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        with self.changed:  # every client has gone before the loop stops
            assert self.changed.wait_for(lambda: self.open_connections == 0, TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.server.close()
        self.loop.run_until_complete(self.server.wait_closed())
        self.loop.close()


class PostfixSink:
    """Postfix's smtp-sink on 127.0.0.1; ready once it reports watching its socket."""

    def __init__(self, binary: str) -> None:
        with socket.socket() as probe:  # a free port (smtp-sink sets SO_REUSEADDR)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.address = ("127.0.0.1", port)
        command = [binary, "-v", "-v", "-v"]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]
        command += [f"127.0.0.1:{port}", "10"]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.ready = threading.Event()
        self.log: list[bytes] = []
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        if not self.ready.wait(TIMEOUT):
            self.close()
            raise AssertionError(f"smtp-sink did not start: {b''.join(self.log)!r}")

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:  # after listen() it registers the socket
            self.log.append(line)
            if b"event_enable_read" in line:
                self.ready.set()

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(TIMEOUT)
        self.reader.join(TIMEOUT)
        if self.process.stderr is not None:
            self.process.stderr.close()


def smtp_sink_binary() -> str:
    """The smtp-sink binary (Postfix's test server), often outside PATH."""
    return require_tool("smtp-sink", "/usr/sbin/smtp-sink", "/usr/lib/postfix/smtp-sink")


@contextlib.contextmanager
def silent_listener() -> Iterator[tuple[str, int]]:
    """A port where connections complete (the backlog) but no greeting ever comes."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=4)
    try:
        yield listener.getsockname()[:2]
    finally:
        listener.close()


@contextlib.contextmanager
def dropping_server() -> Iterator[tuple[str, int]]:
    """Greets one client, reads one line, then closes the connection without a reply."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn, contextlib.suppress(OSError):
            conn.settimeout(TIMEOUT)
            conn.sendall(b"220 flaky.example.test ESMTP\r\n")
            conn.recv(1024)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[:2]
    finally:
        thread.join(TIMEOUT)
        listener.close()


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port bound but not listening: connections to it are refused."""
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        yield placeholder.getsockname()[1]
