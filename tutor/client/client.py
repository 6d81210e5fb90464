"""A raw-socket SMTP client: the learner's exact bytes on the wire, every reply read whole.

Stdlib only, and deliberately not smtplib: smtplib rewrites what it sends (it adds
dot-stuffing, fixes line endings, picks EHLO for you), and the tutor's promise is that what
the learner types is what crosses the wire, CRLF added
(docs/architecture.md, "Three promises").

    with SmtpClient.connect("127.0.0.1", 2525) as client:
        print(client.banner.code)                # 220
        reply = client.send_line("EHLO me.example")
        client.send_line("STARTTLS")             # 220 Ready to start TLS
        info = client.starttls()                 # same socket, now encrypted
        mark = client.mark()
        client.send_line("EHLO me.example")      # now offers AUTH
        for record in client.tap_since(mark):    # plaintext beside ciphertext
            ...

The byte tap records every chunk that crossed the socket, in order. Before STARTTLS a
record's `plaintext` and `wire` are the same bytes; after it, `wire` is the ciphertext
exactly as it was written to or read from the socket. To see the ciphertext the TLS layer
is an `ssl.SSLObject` over two memory BIOs, and this module moves the bytes between them
and the socket itself (`ssl.SSLContext.wrap_socket` would hide them).

The tap is for display only; whether a lesson step passed is decided from the server's
capture (docs/architecture.md, "Three promises").

A server cannot hold the client (docs/server.md, "The client: what a hostile server cannot
do to the sandbox"): every reply has a wall-clock deadline that holds while bytes keep
coming, a reply longer than `ClientLimits` allows closes the connection, and the tap keeps
the start and the end of each exchange with a count of the bytes it did not keep. TLS is
never reported without a completed handshake: on any STARTTLS failure the connection is
closed.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from tutor.smtp.textsafe import visible
from tutor.smtp.wire import CRLF, Reply, ReplyLine, host_port, parse_reply_line

__all__ = [
    "DEFAULT_TIMEOUT",
    "ClientLimits",
    "SmtpClient",
    "SmtpClientError",
    "SmtpConnectError",
    "SmtpConnectionClosed",
    "SmtpProtocolError",
    "SmtpStateError",
    "SmtpTimeout",
    "SmtpTlsError",
    "Tap",
    "TapMark",
    "TapRecord",
    "TlsInfo",
    "client_context",
    "stuffed",
]

DEFAULT_TIMEOUT = 10.0
TUTOR_HOSTNAME = "mx.tutor.test"
_RECV_SIZE = 65536
_SHOWN = 80  # characters of a reply quoted in an error message
# The first byte of a TLS record: change_cipher_spec, alert, handshake, application data.
# A server's first answer to a ClientHello that starts otherwise is plaintext, not TLS.
_TLS_RECORD_TYPES = frozenset({20, 21, 22, 23})
KIB = 1024

# What one reply may be before the client stops reading it and closes the connection
# (docs/server.md, "The client: what a hostile server cannot do to the sandbox"). A reply
# line is at most 512 octets (RFC 5321 §4.5.3.1.5) and a real EHLO reply has about 20
# lines; these figures are far above both, so only a server that never ends a reply meets
# them, and the largest reply they let through still fits on a screen in a moment.
MAX_REPLY_LINE = 8 * KIB  # one line: 16 times the RFC's 512 octets
MAX_REPLY_LINES = 1000  # lines of one reply: 50 times a long EHLO reply
MAX_REPLY_BYTES = 64 * KIB  # one reply: 128 lines of the RFC's full 512 octets

# The byte tap keeps, of each exchange (from one `mark()` to the next), its first and last
# 64 KiB, and of the whole session about 1 MiB: the wire view shows 64 bytes a side.
TAP_HEAD = 64 * KIB
TAP_TAIL = 64 * KIB
TAP_SESSION = 1024 * KIB

Direction = Literal["sent", "received"]


# --- errors -------------------------------------------------------------------------------


class SmtpClientError(Exception):
    """Something went wrong talking to the server; the message is one line for a learner."""


class SmtpConnectError(SmtpClientError):
    """The connection could not be opened (nothing listening, unknown host, no route)."""


class SmtpTimeout(SmtpClientError):
    """The server did not answer (or did not take our bytes) in time; the connection is
    still open, and a late reply may yet come."""

    def __init__(self, message: str, received: bytes = b"") -> None:
        super().__init__(message)
        self.received = received  # the incomplete reply read so far, if any


class SmtpConnectionClosed(SmtpClientError):
    """The server closed the connection (or it dropped)."""

    def __init__(
        self, message: str, received: bytes = b"", last_reply: Reply | None = None
    ) -> None:
        super().__init__(message)
        self.received = received  # bytes of an incomplete reply, if it was cut off
        self.last_reply = last_reply  # the last complete reply, often a 421


class SmtpProtocolError(SmtpClientError):
    """The server sent a line that is not an SMTP reply line."""

    def __init__(self, message: str, line: bytes = b"") -> None:
        super().__init__(message)
        self.line = line


class SmtpTlsError(SmtpClientError):
    """TLS did not start or broke (the certificate did not verify, the server sent plaintext
    after its 220, …); the connection is closed."""

    def __init__(self, message: str, verify_message: str | None = None) -> None:
        super().__init__(message)
        self.verify_message = verify_message


class SmtpStateError(SmtpClientError):
    """The call does not fit the session's state (a command line while in DATA, …)."""


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TapRecord:
    """One chunk that crossed the socket.

    `plaintext` is what it meant to SMTP, `wire` what was actually written or read. Without
    TLS they are equal. With TLS, a sent record is one `write` of SMTP bytes and the
    ciphertext it became; a received record is one socket read and the SMTP bytes it made
    available (possibly none: a handshake message, a session ticket, part of a record).
    Handshake and close records have empty plaintext. `at` is `time.time()`.

    The tap is bounded: `not_kept` counts bytes that crossed the socket here and were not
    kept (a record cut short, or a gap standing for the records dropped from the middle of
    a long exchange); `not_kept_text` is how many of them were SMTP text.
    """

    direction: Direction
    plaintext: bytes
    wire: bytes
    tls: bool
    at: float
    not_kept: int = 0
    not_kept_text: int = 0

    @property
    def size(self) -> int:
        """Bytes on the wire, kept or not."""
        return len(self.wire) + self.not_kept

    @property
    def text_size(self) -> int:
        """Bytes of SMTP text, kept or not."""
        return len(self.plaintext) + self.not_kept_text


@dataclass(frozen=True)
class TapMark:
    """A position in the tap (`SmtpClient.mark()`): how much had crossed, each way."""

    index: int = 0  # records added before it
    sent: int = 0  # wire bytes sent before it
    sent_text: int = 0
    received: int = 0
    received_text: int = 0

    def after(self, record: TapRecord) -> TapMark:
        if record.direction == "sent":
            return replace(
                self,
                index=self.index + 1,
                sent=self.sent + record.size,
                sent_text=self.sent_text + record.text_size,
            )
        return replace(
            self,
            index=self.index + 1,
            received=self.received + record.size,
            received_text=self.received_text + record.text_size,
        )


@dataclass(frozen=True)
class ClientLimits:
    """How much one reply and the byte tap may hold (defaults: the figures above)."""

    reply_line: int = MAX_REPLY_LINE
    reply_lines: int = MAX_REPLY_LINES
    reply_bytes: int = MAX_REPLY_BYTES
    tap_head: int = TAP_HEAD
    tap_tail: int = TAP_TAIL
    tap_session: int = TAP_SESSION


@dataclass(frozen=True)
class TlsInfo:
    """What the STARTTLS handshake agreed on, and whether the certificate was verified."""

    version: str  # "TLSv1.3"
    cipher: str  # "TLS_AES_256_GCM_SHA384"
    cipher_bits: int
    peer_cert_der: bytes  # the server's certificate, DER; b"" if it sent none
    verified: bool  # chain (and, if the context checks it, host name) verified
    verify_error: str | None  # why it is not verified; None when it is
    server_hostname: str
    ca_file: str = ""  # the one CA file trusted (the tutor's local CA); "": the system's store


def stuffed(line: str | bytes) -> bytes:
    """Dot-stuff one message line (RFC 5321 §4.5.2): a leading "." becomes "..".

    The client never stuffs behind the learner's back: the UI calls this and shows the
    stuffed line, so the learner sees the transparency rule at work; the server removes
    the extra dot again before it stores the message.
    """
    data = _encode(line)
    return b"." + data if data.startswith(b".") else data


def client_context(*, verify: bool, cafile: str | Path | None = None) -> ssl.SSLContext:
    """The system's defaults; without `verify`, any certificate is accepted unchecked.

    With `cafile` the certificate must chain to that CA alone (the system's store is not
    loaded) and name the server: how a client trusts the tutor's local CA.
    """
    if cafile is not None:
        return ssl.create_default_context(cafile=str(cafile))
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _encode(text: str | bytes) -> bytes:
    # surrogateescape: text decoded the same way (a non-UTF-8 byte) goes back unchanged.
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _size(count: int) -> str:
    """1048576 -> "1 MiB", 65536 -> "64 KiB", 300 -> "300 bytes"."""
    for unit, scale in (("MiB", KIB * KIB), ("KiB", KIB)):
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count} bytes"


def _quote(data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = visible(text.rstrip("\r\n"))
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


# --- the byte tap ------------------------------------------------------------------------------


# What the Python objects around the bytes cost (measured with tracemalloc: about 210 per
# record, 1,340 per exchange), so that a session of many tiny exchanges is bounded too.
_RECORD_COST = 256
_STRETCH_COST = 1536


def _kept(record: TapRecord) -> int:
    """Bytes a record holds in memory (without TLS, plaintext and wire are one object)."""
    return len(record.wire) + (len(record.plaintext) if record.tls else 0) + _RECORD_COST


def _cut(record: TapRecord, limit: int) -> TapRecord:
    """A record holding at most `limit` bytes of each kind; the rest counted, not kept."""
    if len(record.wire) <= limit and len(record.plaintext) <= limit:
        return record
    wire, text = record.wire[:limit], record.plaintext[:limit]
    return replace(
        record,
        wire=wire,
        plaintext=text if record.tls else wire,
        not_kept=record.not_kept + len(record.wire) - len(wire),
        not_kept_text=record.not_kept_text + len(record.plaintext) - len(text),
    )


def _gap(direction: Direction, tls: bool, at: float, size: int, text_size: int) -> TapRecord:
    return TapRecord(direction, b"", b"", tls, at, not_kept=size, not_kept_text=text_size)


class _Stretch:
    """One exchange of the tap: its first `head` bytes, its last `tail`, a gap between."""

    def __init__(self, start: TapMark, head: int, tail: int) -> None:
        self.start = start
        self.end = start
        self._head_room = head
        self._tail_limit = tail
        self._head: list[TapRecord] = []
        self._head_closed = False  # once a record overflowed the head, the rest is tail
        self._tail: deque[TapRecord] = deque()
        self._tail_bytes = 0
        self._gaps: dict[tuple[Direction, bool], TapRecord] = {}
        self.kept = _STRETCH_COST

    def add(self, record: TapRecord) -> None:
        self.end = self.end.after(record)
        cost = _kept(record)
        self.kept += cost
        if not self._head_closed and cost <= self._head_room:
            self._head.append(record)
            self._head_room -= cost
            return
        self._head_closed = True
        self._tail.append(record)
        self._tail_bytes += cost
        while self._tail_bytes > self._tail_limit and len(self._tail) > 1:
            self._drop(self._tail.popleft())

    def _drop(self, record: TapRecord) -> None:
        cost = _kept(record)
        self._tail_bytes -= cost
        self.kept -= cost
        key = (record.direction, record.tls)
        gap = self._gaps.get(key) or _gap(record.direction, record.tls, record.at, 0, 0)
        self._gaps[key] = replace(
            gap,
            at=record.at,
            not_kept=gap.not_kept + record.size,
            not_kept_text=gap.not_kept_text + record.text_size,
        )

    def records(self) -> list[TapRecord]:
        return [*self._head, *self._gaps.values(), *self._tail]


class Tap:
    """The byte tap, bounded: a list of `TapRecord`s in the order they crossed the socket.

    Each `mark()` starts an exchange. Of an exchange the tap keeps the first
    `limits.tap_head` bytes and the last `limits.tap_tail` (a gap record counts what lay
    between); of the session, older exchanges are dropped whole while the tap holds more
    than `limits.tap_session`. `since(mark)` says, with gap records, what it no longer has.
    """

    def __init__(self, limits: ClientLimits) -> None:
        self._limits = limits
        self._stretches: deque[_Stretch] = deque([self._stretch(TapMark())])
        self._kept = self._stretches[0].kept

    def _stretch(self, start: TapMark) -> _Stretch:
        return _Stretch(start, self._limits.tap_head, self._limits.tap_tail)

    @property
    def kept_bytes(self) -> int:
        """What the tap holds: its bytes and, roughly, the objects around them."""
        return self._kept

    def mark(self) -> TapMark:
        current = self._stretches[-1]
        if current.end != current.start:
            stretch = self._stretch(current.end)
            self._stretches.append(stretch)
            self._kept += stretch.kept
            self._trim()
        return self._stretches[-1].start

    def add(self, record: TapRecord) -> None:
        current = self._stretches[-1]
        before = current.kept
        current.add(_cut(record, self._limits.tap_head))
        self._kept += current.kept - before
        self._trim()

    def _trim(self) -> None:
        """Drop the oldest exchanges (never the current one) while over the budget."""
        while len(self._stretches) > 1 and self._kept > self._limits.tap_session:
            self._kept -= self._stretches.popleft().kept

    def records(self) -> list[TapRecord]:
        return self.since(TapMark())

    def since(self, mark: TapMark) -> list[TapRecord]:
        kept = [s for s in self._stretches if s.start.index >= mark.index]
        first = kept[0].start if kept else self._stretches[-1].end
        out = self._dropped(mark, first)
        for stretch in kept:
            out += stretch.records()
        return out

    @staticmethod
    def _dropped(mark: TapMark, first: TapMark) -> list[TapRecord]:
        """Gap records for whole exchanges dropped between `mark` and the oldest kept."""
        if first.index <= mark.index:
            return []
        now = time.time()
        gaps = [
            _gap("sent", False, now, first.sent - mark.sent, first.sent_text - mark.sent_text),
            _gap(
                "received",
                False,
                now,
                first.received - mark.received,
                first.received_text - mark.received_text,
            ),
        ]
        return [gap for gap in gaps if gap.not_kept]


# --- the client -------------------------------------------------------------------------------


class SmtpClient:
    """One SMTP session over one TCP connection, plaintext or upgraded with STARTTLS.

    Create it with `SmtpClient.connect(host, port)`; it reads the banner at once. Use it as
    a context manager, or call `close()` (idempotent). Not thread-safe: one caller at a time.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        tls: ssl.SSLContext | None = None,
        server_hostname: str = TUTOR_HOSTNAME,
        cafile: str | Path | None = None,
        limits: ClientLimits | None = None,
    ) -> None:
        """Take over a connected socket and read the server's banner.

        With `tls` (implicit TLS, RFC 8314: the submissions port 465) the handshake comes
        first and the banner arrives encrypted. On any failure the socket is closed
        before the error propagates.
        """
        self.timeout = timeout
        self.limits = limits or ClientLimits()
        self._tap = Tap(self.limits)
        self.tls_info: TlsInfo | None = None
        self._sock: socket.socket | None = sock
        self._inbuf = bytearray()
        self._eof = False
        self._gone = ""  # how the other end went away, once it has
        self._in_data = False
        self._last_reply: Reply | None = None
        self._tls: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        try:
            local_host, local_port = sock.getsockname()[:2]
            peer_host, peer_port = sock.getpeername()[:2]
            self.local_address: tuple[str, int] = (local_host, local_port)
            self.peer_address: tuple[str, int] = (peer_host, peer_port)
            if tls is not None:
                self._start_tls(tls, server_hostname, cafile, starttls=False)
            self.banner: Reply = self.read_reply()
        except BaseException:
            self.close()
            raise

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        source_address: str | tuple[str, int] | None = None,
        implicit_tls: bool = False,
        verify: bool = False,
        cafile: str | Path | None = None,
        server_hostname: str = TUTOR_HOSTNAME,
        limits: ClientLimits | None = None,
    ) -> SmtpClient:
        """Open a TCP connection to host:port and read the banner.

        `source_address` is a local address to connect from (a host, or (host, port)).
        `implicit_tls` runs the TLS handshake before the banner (RFC 8314), checking the
        certificate against `server_hostname` only with `verify` or `cafile` (see `starttls`).
        Raises SmtpConnectError, SmtpTimeout, SmtpConnectionClosed, SmtpProtocolError or
        SmtpTlsError.
        """
        where = host_port(host, port)
        bind = (source_address, 0) if isinstance(source_address, str) else source_address
        try:
            sock = socket.create_connection((host, port), timeout=timeout, source_address=bind)
        except ConnectionRefusedError:
            raise SmtpConnectError(f"nothing is listening on {where}") from None
        except socket.gaierror as error:
            reason = error.strerror or str(error)
            raise SmtpConnectError(f"cannot find the host {host!r}: {reason}") from None
        except TimeoutError:
            raise SmtpTimeout(f"no answer from {where} within {_seconds(timeout)}") from None
        except OSError as error:
            reason = error.strerror or str(error)
            raise SmtpConnectError(f"cannot connect to {where}: {reason}") from None
        tls = client_context(verify=verify, cafile=cafile) if implicit_tls else None
        return cls(
            sock,
            timeout=timeout,
            tls=tls,
            server_hostname=server_hostname,
            cafile=cafile,
            limits=limits,
        )

    # --- state ----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the connection is over: `close()` was called or the server closed it."""
        return self._sock is None

    @property
    def in_data(self) -> bool:
        """True between a 354 reply and `end_data()`: lines are message text then."""
        return self._in_data

    @property
    def tls_active(self) -> bool:
        return self._tls is not None

    @property
    def last_reply(self) -> Reply | None:
        return self._last_reply

    @property
    def tap(self) -> list[TapRecord]:
        """What the tap kept of the whole session, gap records where it kept no bytes."""
        return self._tap.records()

    def mark(self) -> TapMark:
        """Start an exchange in the tap; `tap_since(mark)` gives its records."""
        return self._tap.mark()

    def tap_since(self, mark: TapMark) -> list[TapRecord]:
        return self._tap.since(mark)

    @property
    def held_bytes(self) -> int:
        """What the client holds of the server's bytes: the tap and unread input."""
        return self._tap.kept_bytes + len(self._inbuf)

    def pending(self) -> bool:
        """True if bytes are waiting to be read (an unsolicited 421, say).

        Under TLS the waiting bytes may turn out to be TLS housekeeping with no reply in
        them; `read_reply(timeout=0)` then raises SmtpTimeout.
        """
        if self._inbuf:
            return True
        if self._sock is None:
            return False
        readable, _, _ = select.select([self._sock], [], [], 0)
        return bool(readable)

    def partial_reply(self) -> bool:
        """True if part of a reply has arrived and waits for the rest of its line."""
        return bool(self._inbuf)

    # --- sending ------------------------------------------------------------------------------

    def send_line(self, text: str | bytes) -> Reply:
        """Send one command line exactly as given, CRLF appended, and read the whole reply.

        A line holding CR or LF is refused with ValueError: the caller splits lines, so
        that each one is an exchange of its own.
        """
        data = self._checked_line(text)
        if self._in_data:
            raise SmtpStateError(
                "in DATA the server expects message text: "
                "use send_data_line() and finish with end_data()"
            )
        self._send(data + CRLF)
        return self.read_reply()

    def send_raw(self, data: bytes) -> None:
        """Send bytes exactly as given (no CRLF added, nothing checked, no reply read).

        For pipelining and for showing what bare LFs do; read replies with `read_reply()`.
        """
        self._send(bytes(data))

    def send_data_line(self, text: str | bytes) -> None:
        """Send one line of message text (after 354), CRLF appended; no reply comes.

        Nothing is dot-stuffed here: use `stuffed(line)` so the UI can show it. A line of
        just "." would end the message, so it is refused: call `end_data()` instead.
        """
        data = self._checked_line(text)
        if not self._in_data:
            raise SmtpStateError("not in DATA: send DATA and wait for 354 first")
        if data == b".":
            raise ValueError(
                "a line holding only '.' ends the message: call end_data(), "
                "or send stuffed('.') to keep the dot as text"
            )
        self._send(data + CRLF)

    def end_data(self, text: bytes = b"") -> Reply:
        """End the message with a lone dot (CRLF . CRLF on the wire) and read the reply.

        `text` is message text not sent yet (dot-stuffed, every line ended by CRLF): it goes
        in one write with the dot. Sent apart, the dot would wait for the text's ACK
        (Nagle's algorithm against delayed ACKs: some 40 ms on Linux).
        """
        if not self._in_data:
            raise SmtpStateError("not in DATA: send DATA and wait for 354 first")
        self._in_data = False
        self._send(bytes(text) + b"." + CRLF)
        return self.read_reply()

    @staticmethod
    def _checked_line(text: str | bytes) -> bytes:
        data = _encode(text)
        if b"\r" in data or b"\n" in data:
            raise ValueError("a line cannot contain CR or LF: send each line separately")
        return data

    def _send(self, plaintext: bytes) -> None:
        sock = self._live_socket()
        if self._tls is None:
            self._write_socket(sock, plaintext, plaintext, tls=False)
            return
        self._tls.write(plaintext)
        self._write_socket(sock, plaintext, self._outgoing.read(), tls=True)

    def _write_socket(self, sock: socket.socket, plaintext: bytes, wire: bytes, tls: bool) -> None:
        sock.settimeout(self.timeout)
        try:
            sock.sendall(wire)
        except TimeoutError:
            raise SmtpTimeout(
                f"the server did not take our bytes within {_seconds(self.timeout)}"
            ) from None
        except OSError as error:  # EPIPE, ECONNRESET: the server is gone
            self._peer_closed(error)
            raise self._closed_error() from None
        self._tap.add(TapRecord("sent", plaintext, wire, tls, time.time()))

    def _flush_tls(self) -> None:
        """Send whatever the TLS layer queued by itself (handshake, alerts, close_notify)."""
        wire = self._outgoing.read()
        if wire and self._sock is not None:
            self._write_socket(self._sock, b"", wire, tls=True)

    # --- receiving ----------------------------------------------------------------------------

    def read_reply(self, timeout: float | None = None) -> Reply:
        """Read one complete reply (all its continuation lines).

        `timeout` is a wall-clock deadline for the whole reply (default: the client's
        timeout), kept even while the server goes on sending; 0 only takes what has
        already arrived. Raises SmtpTimeout (the connection stays usable),
        SmtpConnectionClosed or SmtpProtocolError; a reply over `limits` is a
        SmtpProtocolError and closes the connection, since the rest of it would be read
        as the next reply.
        """
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        lines: list[ReplyLine] = []
        consumed = 0
        while True:
            end = self._inbuf.find(b"\n", consumed)
            if end < 0:
                self._check_partial(consumed)
                if limit > 0 and time.monotonic() >= deadline:
                    raise self._reply_timeout(limit)
                try:
                    self._fill(deadline)
                except SmtpTimeout:
                    raise self._reply_timeout(limit) from None
                continue
            raw = bytes(self._inbuf[consumed : end + 1])
            consumed = end + 1
            self._check_sizes(len(raw.rstrip(b"\r\n")), consumed)
            line = parse_reply_line(raw.decode("utf-8", "surrogateescape"))
            if line is None:
                del self._inbuf[:consumed]
                raise SmtpProtocolError(
                    f"the server sent a line that is not an SMTP reply: {_quote(raw)!r}", raw
                )
            if lines and line.code != lines[0].code:
                del self._inbuf[:consumed]
                raise SmtpProtocolError(
                    f"reply lines changed code mid-reply ({lines[0].code} then {line.code})",
                    raw,
                )
            lines.append(line)
            if line.final:
                del self._inbuf[:consumed]
                reply = Reply(tuple(lines))
                self._last_reply = reply
                if reply.code == 354:
                    self._in_data = True
                return reply
            if len(lines) >= self.limits.reply_lines:
                raise self._over_limit(f"a reply of more than {self.limits.reply_lines} lines")

    def _check_sizes(self, line: int, reply: int) -> None:
        """A complete line of the reply, and the reply so far: within the limits."""
        limits = self.limits
        if line > limits.reply_line:
            raise self._over_limit(f"a line longer than {_size(limits.reply_line)}")
        if reply > limits.reply_bytes:
            raise self._over_limit(f"a reply longer than {_size(limits.reply_bytes)}")

    def _check_partial(self, consumed: int) -> None:
        """A reply still without its end: not longer than the limits allow."""
        limits = self.limits
        if len(self._inbuf) - consumed > limits.reply_line:
            raise self._over_limit(
                f"a line longer than {_size(limits.reply_line)} without a line ending"
            )
        if len(self._inbuf) > limits.reply_bytes:
            raise self._over_limit(f"a reply longer than {_size(limits.reply_bytes)}")

    def _over_limit(self, what: str) -> SmtpProtocolError:
        """Stop reading a reply that is too long: the connection cannot be used again."""
        start = bytes(self._inbuf[: _SHOWN + 2])
        first_line = start.split(b"\n", 1)[0]
        message = (
            f"the server sent {what} (it began '{_quote(first_line)}'): "
            "the tutor stopped reading and closed the connection"
        )
        self._abandon(f"the tutor closed the connection after {what}")
        return SmtpProtocolError(message, start)

    def _reply_timeout(self, limit: float) -> SmtpTimeout:
        received = bytes(self._inbuf)
        return SmtpTimeout(self._timeout_message(limit, received), received)

    def _timeout_message(self, limit: float, received: bytes) -> str:
        if received:
            first_line = received.split(b"\n", 1)[0]
            so_far = f"so far {len(received)} bytes: '{_quote(first_line)}'"
            return f"no complete reply within {_seconds(limit)} ({so_far})"
        return f"no reply within {_seconds(limit)}"

    def _fill(self, deadline: float) -> None:
        """Wait for one chunk from the socket and add its SMTP bytes to the input buffer."""
        if self._eof or self._sock is None:
            raise self._closed_error()
        chunk = self._recv_chunk(self._sock, deadline)
        if self._tls is None:
            if chunk:
                self._tap.add(TapRecord("received", chunk, chunk, False, time.time()))
                self._inbuf += chunk
            else:
                self._peer_closed()
            return
        plain, eof = self._decrypt(chunk)
        if chunk:
            self._tap.add(TapRecord("received", plain, chunk, True, time.time()))
        self._inbuf += plain
        self._flush_tls()
        if eof:
            self._peer_closed()

    def _recv_chunk(self, sock: socket.socket, deadline: float) -> bytes:
        sock.settimeout(max(0.0, deadline - time.monotonic()))  # 0.0: only what is here
        try:
            return sock.recv(_RECV_SIZE)
        except (TimeoutError, BlockingIOError):
            raise SmtpTimeout("timeout") from None  # reworded by the caller
        except OSError as error:  # ECONNRESET and friends
            self._peer_closed(error)
            raise self._closed_error() from None

    def _decrypt(self, chunk: bytes) -> tuple[bytes, bool]:
        """Feed one socket chunk to TLS; return the SMTP bytes it freed and whether TLS ended."""
        assert self._tls is not None
        if chunk:
            self._incoming.write(chunk)
        else:
            self._incoming.write_eof()
        plain = bytearray()
        eof = not chunk
        while True:
            try:
                data = self._tls.read(_RECV_SIZE)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                eof = True  # close_notify, or the TCP connection ended without one
                break
            except ssl.SSLError as error:
                message = f"the TLS connection broke: {error.reason or error}"
                self._peer_closed(message=message)
                raise SmtpTlsError(message) from None
            if not data:
                eof = True
                break
            plain += data
        return bytes(plain), eof

    def _peer_closed(self, error: OSError | None = None, *, message: str = "") -> None:
        """The other end is gone: remember how, for every later call, and close our socket."""
        self._eof = True
        if not self._gone:
            if message:
                self._gone = message
            elif error is None or isinstance(error, ConnectionError):
                # EOF, or a reset / broken pipe: to a learner, both mean the server hung up.
                self._gone = "the server closed the connection"
            else:
                self._gone = f"the connection dropped ({error.strerror or error})"
        self._drop_socket()

    def _abandon(self, message: str) -> None:
        """The tutor gives up on this connection: close it, keep nothing unread."""
        self._eof = True
        self._gone = self._gone or message
        self._inbuf.clear()
        self._tls = None  # no close_notify: nothing more is said on this connection
        self._drop_socket()

    def _closed_error(self) -> SmtpConnectionClosed:
        received = bytes(self._inbuf)
        if received:
            where = f"in the middle of a reply (after {_quote(received)!r})"
        elif self._last_reply is not None:
            where = f"(after {_quote(self._last_reply.wire_lines()[-1])})"
        else:
            where = "before sending any reply"
        what = self._gone or "the server closed the connection"
        return SmtpConnectionClosed(f"{what} {where}", received, self._last_reply)

    def _live_socket(self) -> socket.socket:
        if self._sock is None:
            if self._eof:
                raise self._closed_error()
            raise SmtpStateError("the connection is closed")
        return self._sock

    # --- STARTTLS -----------------------------------------------------------------------------

    def starttls(
        self,
        context: ssl.SSLContext | None = None,
        server_hostname: str = TUTOR_HOSTNAME,
        *,
        verify: bool = False,
        cafile: str | Path | None = None,
    ) -> TlsInfo:
        """Upgrade this connection to TLS, after the server answered STARTTLS with 220.

        The caller sends `STARTTLS` with `send_line()` first, so the learner sees that
        exchange; this method runs the handshake on the same socket. There is exactly one
        handshake, and the choice of verifying is made up front:

        - `verify=False` (the default): the certificate is accepted without checking it,
          as most MTAs do for opportunistic STARTTLS. The result says `verified=False`
          and `verify_error` says why.
        - `verify=True`: the chain is checked against the system's trust store and the
          name against `server_hostname`; a failure raises SmtpTlsError naming the reason
          ("certificate verify failed: …") and closes the connection.
        - `cafile`: verified as with `verify=True`, but against that CA alone — the
          tutor's own server is checked against its local CA this way.
        - `context`: used as given (and `verify` is ignored); `verified` reports whether
          that context checked the certificate.

        Checking the certificate "on the side" after an unverified handshake would need a
        second handshake, which one SMTP session cannot do, so the choice is up front.

        On any failure the connection is closed and `tls_active` stays False: bytes the
        server sent after its 220 (read by none), a handshake that fails, does not verify
        or does not finish within the timeout (SmtpTlsError), a server that hangs up
        (SmtpConnectionClosed).
        """
        self._live_socket()  # raises if the connection is gone
        if self._tls is not None:
            raise SmtpStateError("TLS is already active on this connection")
        last = self._last_reply
        if last is None or last.code != 220 or last is self.banner:
            raise SmtpStateError("send STARTTLS and wait for its 220 reply before starttls()")
        if self._inbuf:
            # RFC 3207 §4.2 / CVE-2011-0411 the other way round: whatever the server (or
            # someone in the middle) sent after the 220 would be taken for the answer to a
            # command sent under TLS. Nothing is read in plaintext after the 220.
            raise self._plaintext_after_220(bytes(self._inbuf))
        chosen = context or client_context(verify=verify, cafile=cafile)
        return self._start_tls(chosen, server_hostname, None if context else cafile)

    def _plaintext_handshake(self, chunk: bytes, *, starttls: bool) -> SmtpTlsError:
        """The server answered the ClientHello with plaintext instead of TLS."""
        if starttls:
            return self._plaintext_after_220(chunk)
        message = (
            f"the server answered the TLS handshake in plaintext ('{_quote(chunk)}'): "
            "this port does not start with TLS"
        )
        self._abandon(message)
        return SmtpTlsError(message)

    def _plaintext_after_220(self, extra: bytes) -> SmtpTlsError:
        message = (
            f"the server sent more after its 220, before TLS started ('{_quote(extra)}'), "
            "which the tutor did not read (RFC 3207 §4.2)"
        )
        self._abandon(message)
        return SmtpTlsError(message)

    def _start_tls(
        self,
        context: ssl.SSLContext,
        server_hostname: str,
        cafile: str | Path | None = None,
        *,
        starttls: bool = True,
    ) -> TlsInfo:
        """The handshake on this socket (after STARTTLS's 220, or at once for implicit TLS).

        Never "TLS" without a completed handshake: on any failure the connection is closed
        and `tls_active` is False.
        """
        sock = self._live_socket()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=False, server_hostname=server_hostname
        )
        try:
            self._handshake(sock, time.monotonic() + self.timeout, starttls=starttls)
        except BaseException:
            self._abandon("the TLS handshake failed")
            raise
        tls = self._tls
        name, _protocol, bits = tls.cipher() or ("?", "?", 0)
        verified = context.verify_mode != ssl.CERT_NONE
        info = TlsInfo(
            version=tls.version() or "?",
            cipher=name,
            cipher_bits=bits,
            peer_cert_der=tls.getpeercert(binary_form=True) or b"",
            verified=verified,
            verify_error=None
            if verified
            else "not checked: the certificate was accepted without verification",
            server_hostname=server_hostname,
            ca_file=str(cafile) if cafile is not None and verified else "",
        )
        self.tls_info = info
        return info

    def _handshake(self, sock: socket.socket, deadline: float, *, starttls: bool) -> None:
        assert self._tls is not None
        first = True
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush_tls()
                chunk = self._handshake_chunk(sock, deadline)
                if first and chunk[0] not in _TLS_RECORD_TYPES:
                    self._tap.add(TapRecord("received", chunk, chunk, False, time.time()))
                    raise self._plaintext_handshake(chunk, starttls=starttls) from None
                first = False
                self._tap.add(TapRecord("received", b"", chunk, True, time.time()))
                self._incoming.write(chunk)
            except ssl.SSLCertVerificationError as error:
                reason = error.verify_message or error.reason or str(error)
                message = (
                    f"the server's certificate did not verify (certificate verify failed: {reason})"
                )
                self._abort_tls(message)
                raise SmtpTlsError(message, reason) from None
            except ssl.SSLError as error:
                message = f"the TLS handshake failed: {error.reason or error}"
                self._abort_tls(message)
                raise SmtpTlsError(message) from None
            else:
                self._flush_tls()
                return

    def _handshake_chunk(self, sock: socket.socket, deadline: float) -> bytes:
        """The server's next bytes of the handshake, within the handshake's deadline.

        A handshake that does not finish in time is a SmtpTlsError, not a SmtpTimeout: the
        connection is closed, as after any TLS failure, where a SmtpTimeout leaves it open.
        """
        late = f"the TLS handshake did not finish within {_seconds(self.timeout)}"
        if time.monotonic() >= deadline:  # a server that drips its handshake forever
            self._peer_closed(message=late)
            raise SmtpTlsError(late)
        try:
            chunk = self._recv_chunk(sock, deadline)
        except SmtpTimeout:
            self._peer_closed(message=late)
            raise SmtpTlsError(late) from None
        if not chunk:
            self._peer_closed()
            raise SmtpConnectionClosed(
                "the server closed the connection during the TLS handshake",
                last_reply=self._last_reply,
            )
        return chunk

    def _abort_tls(self, message: str) -> None:
        """After a failed handshake: send the alert TLS queued (best effort), then close."""
        with contextlib.suppress(SmtpClientError):
            self._flush_tls()
        self._peer_closed(message=message)

    # --- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent). Under TLS a close_notify is sent first.

        Nothing is said in SMTP: sending QUIT is the caller's (the learner's) choice.
        """
        if self._sock is None:
            return
        if self._tls is not None and not self._eof:
            # unwrap() queues our close_notify, then raises SSLWantReadError: we do not
            # wait for the server's; a dead connection is fine too (best effort).
            with contextlib.suppress(ssl.SSLError):
                self._tls.unwrap()
            with contextlib.suppress(SmtpClientError):
                self._flush_tls()
        self._drop_socket()

    def _drop_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> SmtpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("TLS" if self._tls else "plaintext")
        peer = host_port(*self.peer_address) if hasattr(self, "peer_address") else "?"
        return f"<SmtpClient {peer} {state}>"


class HoldsClient:
    """Something that may hold an open client between turns: the lesson driver, the sandbox."""

    client: SmtpClient | None

    @property
    def connected(self) -> bool:
        return self.client is not None and not self.client.closed

    @property
    def in_data(self) -> bool:
        return self.client is not None and self.client.in_data
