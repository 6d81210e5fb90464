"""A small asyncio SMTP load generator for the benchmarks (loopback only, bounded).

Every run is bounded twice: by a fixed number of messages and by a wall-clock deadline
(`asyncio.wait_for`). It refuses any address that is not loopback, so a typo can never
send traffic anywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import socket
import time
from dataclasses import dataclass, field

SENDER = "bench@client.example"
RECIPIENT = "you@tutor.test"
BODY_BYTES = 1024


def check_loopback(host: str) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"{host}: the benchmarks only talk to loopback addresses")


def message(number: int, size: int = BODY_BYTES) -> bytes:
    """A small, well-formed message, dot-stuffed and ending with CRLF.CRLF."""
    headers = (
        f"From: Bench <{SENDER}>\r\n"
        f"To: You <{RECIPIENT}>\r\n"
        f"Subject: benchmark message {number}\r\n"
        f"Message-ID: <{number}.{time.time_ns()}@client.example>\r\n"
        "\r\n"
    )
    line = b"The quick brown fox jumps over the lazy dog, one line after another.\r\n"
    body = line * max(1, size // len(line))
    return headers.encode() + bytes(body) + b".\r\n"


@dataclass
class Timings:
    """Per-command latencies in seconds, by command name ("data-end" for the dot)."""

    by_command: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    messages: int = 0

    def add(self, command: str, seconds: float) -> None:
        self.by_command.setdefault(command, []).append(seconds)

    def merged(self, *, exclude: tuple[str, ...] = ()) -> list[float]:
        return [t for name, ts in self.by_command.items() if name not in exclude for t in ts]


class ProtocolError(Exception):
    pass


async def read_reply(reader: asyncio.StreamReader) -> list[bytes]:
    lines = []
    while True:
        line = await reader.readuntil(b"\n")
        lines.append(line)
        if line[3:4] != b"-":
            return lines


async def _command(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    data: bytes,
    name: str,
    expect: bytes,
    timings: Timings,
) -> None:
    start = time.perf_counter()
    writer.write(data)
    reply = await read_reply(reader)
    timings.add(name, time.perf_counter() - start)
    if not reply[-1].startswith(expect):
        raise ProtocolError(f"{name}: {reply[-1]!r}")


async def session(
    host: str,
    port: int,
    messages: int,
    timings: Timings,
    *,
    think: float = 0.0,
    rng: random.Random | None = None,
) -> None:
    """One client: EHLO, `messages` transactions on the same connection, QUIT."""
    rng = rng or random.Random()

    async def pause() -> None:
        if think > 0:  # pacing between commands, as a person or a slow client would
            await asyncio.sleep(rng.uniform(0, 2 * think))

    reader, writer = await asyncio.open_connection(host, port)
    try:
        start = time.perf_counter()
        banner = await read_reply(reader)
        timings.add("banner", time.perf_counter() - start)
        if not banner[-1].startswith(b"220"):
            raise ProtocolError(f"banner: {banner[-1]!r}")
        await pause()
        await _command(reader, writer, b"EHLO client.example\r\n", "EHLO", b"250", timings)
        for number in range(messages):
            await pause()
            await _command(
                reader, writer, f"MAIL FROM:<{SENDER}>\r\n".encode(), "MAIL", b"250", timings
            )
            await pause()
            await _command(
                reader, writer, f"RCPT TO:<{RECIPIENT}>\r\n".encode(), "RCPT", b"250", timings
            )
            await pause()
            await _command(reader, writer, b"DATA\r\n", "DATA", b"354", timings)
            await pause()
            await _command(reader, writer, message(number), "data-end", b"250", timings)
            timings.messages += 1
        await pause()
        await _command(reader, writer, b"QUIT\r\n", "QUIT", b"221", timings)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _run(
    host: str, port: int, clients: int, messages: int, think: float, seed: int
) -> Timings:
    timings = Timings()
    master = random.Random(seed)

    async def guarded(index: int) -> None:
        try:
            await session(
                host, port, messages, timings, think=think, rng=random.Random(master.random())
            )
        except (OSError, ProtocolError, asyncio.IncompleteReadError) as error:
            timings.errors.append(f"client {index}: {type(error).__name__}: {error}")

    await asyncio.gather(*(guarded(i) for i in range(clients)))
    return timings


def run_load(
    host: str,
    port: int,
    clients: int,
    messages: int,
    *,
    think: float = 0.0,
    deadline: float = 120.0,
    seed: int = 8,
) -> tuple[Timings, float]:
    """`clients` concurrent sessions × `messages` each; returns timings and wall seconds."""
    check_loopback(host)

    async def bounded() -> Timings:
        return await asyncio.wait_for(_run(host, port, clients, messages, think, seed), deadline)

    start = time.perf_counter()
    timings = asyncio.run(bounded())
    return timings, time.perf_counter() - start


def open_idle(host: str, port: int, count: int, timeout: float = 10.0) -> list[socket.socket]:
    """`count` connections that each read their banner, then stay silent."""
    check_loopback(host)
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, port), timeout=timeout)
            sockets.append(sock)
        for sock in sockets:
            if not sock.recv(512).startswith(b"220"):
                raise ProtocolError("an idle client got no 220 banner")
    except BaseException:
        close_all(sockets)
        raise
    return sockets


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()


def marker_session(host: str, port: int, helo: str, timeout: float = 30.0) -> None:
    """One short session (EHLO helo, QUIT) whose name a view can be watched for: sent
    after a flood, it is the last session the server sees."""
    check_loopback(host)
    with (
        socket.create_connection((host, port), timeout=timeout) as sock,
        sock.makefile("rb") as replies,
    ):
        for command, expect in ((None, b"220"), (f"EHLO {helo}", b"250"), ("QUIT", b"221")):
            if command is not None:
                sock.sendall(command.encode() + b"\r\n")
            while True:
                line = replies.readline()
                if not line.startswith(expect):
                    raise ProtocolError(f"{command or 'banner'}: {line!r}")
                if line[3:4] != b"-":
                    break


def time_to_banner(host: str, port: int, timeout: float = 10.0) -> float:
    """Seconds from connect() to a complete 220 line."""
    check_loopback(host)
    start = time.perf_counter()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        data = b""
        while b"\n" not in data:
            chunk = sock.recv(512)
            if not chunk:
                raise ProtocolError("closed before the banner")
            data += chunk
        elapsed = time.perf_counter() - start
        if not data.startswith(b"220"):
            raise ProtocolError(f"banner: {data!r}")
        sock.sendall(b"QUIT\r\n")
    return elapsed
