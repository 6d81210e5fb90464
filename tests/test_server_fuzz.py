"""Fuzzing the teaching server over real sockets (the robustness tests).

Generated sessions (hypothesis, derandomised so CI sees the same ones every run) mix
valid transactions with random and hostile command lines, bare line feeds, commands
split across TCP segments, pipelined groups, messages with tricky lines, STARTTLS left
hanging, and clients that hang up or reset in the middle of DATA. Whatever happens:

- every reply line is `DDD[ -]text` + CRLF, printable, and every reply has a final line;
- the server never fails inside (no 451 4.3.0, nothing logged as an error) and a new
  client still gets its banner after each session;
- every stored copy belongs to a 250 the client received and holds that whole message,
  and every 250 has its copies on disk: never a partial or an unacknowledged message.

The run is bounded: a fixed number of examples of bounded length, and a wall-clock
budget after which the remaining examples pass without running.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tutor.server.persona import Persona
from tutor.server.runner import TeachingServer

EXAMPLES = int(os.environ.get("SMTP_TUTOR_FUZZ_EXAMPLES", "150"))
BUDGET = float(os.environ.get("SMTP_TUTOR_FUZZ_SECONDS", "20"))
TIMEOUT = 5.0
REPLY_LINE = re.compile(rb"\A[2-5][0-9]{2}[ -][^\r\n]*\r\n\Z")
STORED_ID = re.compile(rb"^\tby mx\.tutor\.test with \S+ id (\S+)$", re.M)
TEXT_LINE_LIMIT = 1000  # RFC 5321 §4.5.3.1.6, CRLF included


# --- what a session is made of -----------------------------------------------------------------


def no_line_breaks(data: bytes) -> bytes:
    return data.replace(b"\r", b"?").replace(b"\n", b"?")


def no_crlf(data: bytes) -> bytes:
    """A message line may hold a lone CR or LF, but a CRLF would end it."""
    while b"\r\n" in data:
        data = data.replace(b"\r\n", b"\n")
    return data


VERBS = [b"HELO", b"EHLO", b"MAIL", b"RCPT", b"DATA", b"RSET", b"NOOP", b"QUIT", b"VRFY"]
VERBS += [b"EXPN", b"HELP", b"STARTTLS", b"AUTH", b"helo", b"mail", b"BDAT", b"XYZZY", b""]
VERBS += [b"\x00", b"M\xc3\xa4IL"]
verbs = st.sampled_from(VERBS)
arguments = st.one_of(
    st.just(b""),
    st.sampled_from(
        [
            b"FROM:<fuzz@client.example>",
            b"FROM:<>",
            b"FROM:fuzz@client.example",
            b"FROM:<fuzz@client.example> SIZE=100",
            b"FROM:<fuzz@client.example> SIZE=99999999999",
            b"FROM:<fuzz@client.example> BODY=8BITMIME SMTPUTF8",
            b"FROM:<fuzz@client.example> FOO=bar",
            b"FROM:<\xc3\xa4@client.example> SMTPUTF8",
            b"FROM:<\xc3\xa4@client.example>",
            b"FROM:<a@nomail.example>",
            b"TO:<you@tutor.test>",
            b"TO:<ALICE@tutor.test>",
            b"TO:<postmaster>",
            b"TO:<nobody@tutor.test>",
            b"TO:<x@elsewhere.example>",
            b"TO:<@route.example:you@tutor.test>",
            b"TO:you@tutor.test",
            b"TO:<you@tutor.test> NOTIFY=NEVER",
            b"client.example",
            b"[127.0.0.1]",
            b"[bold]x[/]",
            b"\x1b]0;title\x07",
            b"\xe2\x80\xae evil",
            b"\xff\xfe",
            b"PLAIN AGZ1enoAcGFzcw==",
            b"LOGIN",
            b"x" * 600,
        ]
    ),
    st.binary(max_size=40).map(no_line_breaks),
)
commands = st.builds(lambda verb, arg: verb + (b" " + arg if arg else b""), verbs, arguments)
# Commands that may go in a pipelined group: none that changes what the next line means.
safe_commands = commands.filter(
    lambda line: line.split(b" ", 1)[0].upper() not in (b"DATA", b"QUIT", b"STARTTLS", b"AUTH")
)
TRICKY_LINES = [b"From: Fuzz <fuzz@client.example>", b"Subject: fuzz", b"", b".", b"..", b".x"]
TRICKY_LINES += [b"\x00", b"\xff", b"a\nb", b"\r", b"550 5.0.0 not a reply", b"QUIT"]
message_lines = st.lists(
    st.one_of(
        st.sampled_from(TRICKY_LINES),
        st.binary(max_size=60).map(no_crlf),
        st.sampled_from([996, 997, 998, 999, 1200]).map(lambda n: b"y" * n),
    ),
    max_size=15,
)
SENDERS = [b"<fuzz@client.example>", b"<>", b"<fuzz@client.example> SIZE=500 BODY=8BITMIME"]
SENDERS += [b"<fuzz@client.example> SIZE=99999999999", b"<a@nomail.example>", b"<bad address>"]
SENDERS += [b"<\xc3\xa4@client.example> SMTPUTF8", b"<\xc3\xa4@client.example>"]
senders = st.sampled_from(SENDERS)
recipients = st.lists(
    st.sampled_from(["you@tutor.test", "alice@tutor.test", "Bob@tutor.test", "postmaster"])
    | st.sampled_from(["nobody@tutor.test", "x@elsewhere.example", "not an address", ""]),
    min_size=1,
    max_size=3,
)


@dataclass(frozen=True)
class Command:
    line: bytes
    ending: bytes = b"\r\n"
    split: int = 0  # send in pieces at these many places (TCP segments)


@dataclass(frozen=True)
class Pipeline:
    lines: tuple[bytes, ...]


@dataclass(frozen=True)
class Transaction:
    sender: bytes
    recipients: tuple[str, ...]
    lines: tuple[bytes, ...]


@dataclass(frozen=True)
class AbandonedTls:
    """STARTTLS accepted, then plain bytes (or nothing) where the TLS handshake should be."""

    garbage: bytes


@dataclass(frozen=True)
class HangUp:
    """Start a message, send part of it, then close (FIN) or reset (RST)."""

    lines: tuple[bytes, ...]
    rst: bool


actions = st.one_of(
    st.builds(
        Command,
        commands,
        st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"]),
        st.integers(0, 2),
    ),
    st.builds(Pipeline, st.lists(safe_commands, min_size=2, max_size=5).map(tuple)),
    st.builds(Transaction, senders, recipients.map(tuple), message_lines.map(tuple)),
    st.builds(AbandonedTls, st.binary(max_size=40) | st.just(b"EHLO again\r\n")),
    st.builds(HangUp, message_lines.map(tuple), st.booleans()),
)
sessions = st.lists(actions, min_size=1, max_size=20)


def stuff(lines: tuple[bytes, ...]) -> bytes:
    """Message lines as DATA carries them: CRLF after each, leading dots doubled."""
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)


# --- the client ----------------------------------------------------------------------------------


class Closed(Exception):
    """The server ended the session (221, 421) or the client did."""


@dataclass
class Client:
    address: tuple[str, int]
    acknowledged: dict[str, bytes]  # queue id -> the message as it must be stored
    log: list[bytes] = field(default_factory=list)  # what was sent, for failure reports
    sock: socket.socket | None = None
    buffer: bytes = b""

    def connect(self) -> None:
        self.sock = socket.create_connection(self.address, timeout=TIMEOUT)
        self.buffer = b""
        greeting = self.reply()
        assert greeting[-1].startswith(b"220 "), greeting

    def close(self, *, rst: bool = False) -> None:
        if self.sock is not None:
            if rst:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
            self.sock = None

    def send(self, data: bytes, pieces: int = 0) -> None:
        assert self.sock is not None
        self.log.append(data)
        cuts = sorted({len(data) * (n + 1) // (pieces + 1) for n in range(pieces)})
        start = 0
        for cut in [*cuts, len(data)]:
            if cut > start:
                self.sock.sendall(data[start:cut])
                start = cut

    def line(self) -> bytes:
        assert self.sock is not None
        while b"\r\n" not in self.buffer:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise AssertionError(
                    f"no reply within {TIMEOUT}s; sent {self.log[-3:]!r}"
                ) from None
            if not chunk:
                raise Closed
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line + b"\r\n"

    def reply(self) -> list[bytes]:
        """One whole reply, every line checked; EOF before its final line fails."""
        lines: list[bytes] = []
        while True:
            try:
                line = self.line()
            except Closed:
                assert not lines, f"the connection closed inside a reply: {lines!r}"
                raise
            assert REPLY_LINE.match(line), f"malformed reply line {line!r} after {self.log[-3:]!r}"
            assert line.decode("utf-8").rstrip("\r\n").isprintable(), line
            assert not lines or line[:3] == lines[0][:3], (
                f"one reply, two codes: {[*lines, line]!r}"
            )
            assert not line.startswith(b"451 4.3.0"), f"internal error after {self.log[-3:]!r}"
            lines.append(line)
            if line[3:4] == b" ":
                return lines

    def command(self, data: bytes, pieces: int = 0) -> list[bytes]:
        self.send(data, pieces)
        reply = self.reply()
        self.after(reply)
        return reply

    def after(self, reply: list[bytes]) -> None:
        """Replies that end the session, or leave it where plain text cannot go on."""
        code = reply[-1][:3]
        if code in (b"221", b"421"):
            assert self.at_eof(), "the server must close after 221 / 421"
            raise Closed
        if code == b"220":  # STARTTLS accepted: the next bytes must be a TLS handshake
            raise Closed
        if code == b"354":
            self.data((b"Subject: body for a bare DATA",), expect_store=True)

    def at_eof(self) -> bool:
        try:
            return self.line() == b""
        except Closed:
            return True

    def data(self, lines: tuple[bytes, ...], *, expect_store: bool) -> None:
        """After a 354: the lines, dot-stuffed, then the lone dot; check what comes back."""
        self.send(stuff(lines) + b".\r\n")
        final = self.reply()[-1]
        too_long = any(len(line) + 2 > TEXT_LINE_LIMIT for line in lines)
        if too_long:
            assert final.startswith(b"500 5.5.2 Line too long"), final
            return
        match = re.fullmatch(rb"250 2\.0\.0 OK id=(\S+)\r\n", final)
        assert match, f"a complete message got {final!r}"
        content = b"".join(line + b"\r\n" for line in lines)
        self.acknowledged[match.group(1).decode()] = content.replace(b"\r\n", b"\n")
        del expect_store

    def run(self, action: object) -> None:
        if isinstance(action, Command):
            self.command(action.line + action.ending, action.split)
        elif isinstance(action, Pipeline):
            self.send(b"".join(line + b"\r\n" for line in action.lines))
            for _ in action.lines:
                reply = self.reply()
                if reply[-1][:3] == b"421":  # too many unknown commands: the rest is unread
                    self.after(reply)
        elif isinstance(action, Transaction):
            self.command(b"EHLO fuzz.example\r\n")
            self.command(b"MAIL FROM:" + action.sender + b"\r\n")
            accepted = 0
            for recipient in action.recipients:
                reply = self.command(f"RCPT TO:<{recipient}>\r\n".encode())
                accepted += reply[-1].startswith(b"250 ")
            self.send(b"DATA\r\n")
            reply = self.reply()
            assert reply[-1].startswith(b"354 " if accepted else b"503 5.5.1"), reply
            if accepted:
                self.data(action.lines, expect_store=True)
        elif isinstance(action, AbandonedTls):
            self.command(b"EHLO fuzz.example\r\n")
            self.send(b"STARTTLS\r\n")
            assert self.reply() == [b"220 2.0.0 Ready to start TLS\r\n"]
            if action.garbage:
                self.send(action.garbage)
            self.close()
            raise Closed
        elif isinstance(action, HangUp):
            self.command(b"EHLO fuzz.example\r\n")
            self.command(b"MAIL FROM:<fuzz@client.example>\r\n")
            self.command(b"RCPT TO:<you@tutor.test>\r\n")
            self.send(b"DATA\r\n")
            assert self.reply()[-1].startswith(b"354 ")
            self.send(stuff(action.lines)[:-1])  # the last line lacks its LF, even
            self.close(rst=action.rst)
            raise Closed


# --- the property -----------------------------------------------------------------------------


def stored_copies(maildir: Path) -> dict[str, list[bytes]]:
    copies: dict[str, list[bytes]] = {}
    for path in maildir.glob("*/new/*"):
        raw = path.read_bytes()
        match = STORED_ID.search(raw)
        assert match, f"{path}: no Received header of ours"
        copies.setdefault(match.group(1).decode(), []).append(raw)
    return copies


def test_random_sessions_get_well_formed_replies_and_store_only_whole_acknowledged_messages(
    start_server: object, caplog: pytest.LogCaptureFixture
) -> None:
    server: TeachingServer = start_server(Persona())  # type: ignore[operator]
    acknowledged: dict[str, bytes] = {}
    stop_at = time.monotonic() + BUDGET

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(sessions)
    def session(actions: list[object]) -> None:
        if time.monotonic() > stop_at:
            return  # the time budget is spent: the remaining examples pass unrun
        client = Client(server.address, acknowledged)
        try:
            client.connect()
            for action in actions:
                if client.sock is None:
                    client.connect()
                try:
                    client.run(action)
                except Closed:
                    client.close()
        finally:
            client.close()
        # The server is still there for the next client.
        with socket.create_connection(server.address, timeout=TIMEOUT) as probe:
            assert probe.recv(512).startswith(b"220 mx.tutor.test ESMTP")

    with caplog.at_level(logging.WARNING, logger="tutor.server"):
        session()

    # Every stored copy is a whole message that got its 250; every 250 has its copies.
    assert server.capture.wait_for(
        lambda: all(record.closed is not None for record in server.capture.sessions()), TIMEOUT
    )
    copies = stored_copies(server.maildir)
    assert set(copies) == set(acknowledged), "stored and acknowledged differ"
    for queue_id, raws in copies.items():
        for raw in raws:
            assert raw.endswith(acknowledged[queue_id]), f"{queue_id}: not the whole message"
    assert list(server.maildir.glob("*/tmp/*")) == [], "a write was left half done"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
