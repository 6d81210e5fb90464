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
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tutor.smtp.textsafe import visible
from tutor.smtp.wire import CRLF, Reply, ReplyLine, host_port, parse_reply_line

__all__ = [
    "DEFAULT_TIMEOUT",
    "SmtpClient",
    "SmtpClientError",
    "SmtpConnectError",
    "SmtpConnectionClosed",
    "SmtpProtocolError",
    "SmtpStateError",
    "SmtpTimeout",
    "SmtpTlsError",
    "TapRecord",
    "TlsInfo",
    "client_context",
    "stuffed",
]

DEFAULT_TIMEOUT = 10.0
TUTOR_HOSTNAME = "mx.tutor.test"
_RECV_SIZE = 65536
# A reply line is at most 512 octets (RFC 5321 §4.5.3.1.5); be generous, but never let a
# server that sends no line ending at all grow the buffer without bound.
_MAX_LINE = 64 * 1024
_SHOWN = 80  # characters of a reply quoted in an error message

Direction = Literal["sent", "received"]


# --- errors -------------------------------------------------------------------------------


class SmtpClientError(Exception):
    """Something went wrong talking to the server; the message is one line for a learner."""


class SmtpConnectError(SmtpClientError):
    """The connection could not be opened (nothing listening, unknown host, no route)."""


class SmtpTimeout(SmtpClientError):
    """The server did not answer (or did not take our bytes) in time."""

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
    """The TLS handshake failed (for example, the certificate did not verify)."""

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
    """

    direction: Direction
    plaintext: bytes
    wire: bytes
    tls: bool
    at: float


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


def _quote(data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = visible(text.rstrip("\r\n"))
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


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
    ) -> None:
        """Take over a connected socket and read the server's banner.

        With `tls` (implicit TLS, RFC 8314: the submissions port 465) the handshake comes
        first and the banner arrives encrypted. On any failure the socket is closed
        before the error propagates.
        """
        self.timeout = timeout
        self.tap: list[TapRecord] = []
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
                self._start_tls(tls, server_hostname, cafile)
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
        return cls(sock, timeout=timeout, tls=tls, server_hostname=server_hostname, cafile=cafile)

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

    def mark(self) -> int:
        """A position in the tap; `tap_since(mark)` gives the records of one exchange."""
        return len(self.tap)

    def tap_since(self, mark: int) -> list[TapRecord]:
        return self.tap[mark:]

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

    def end_data(self) -> Reply:
        """End the message with a lone dot (CRLF . CRLF on the wire) and read the reply."""
        if not self._in_data:
            raise SmtpStateError("not in DATA: send DATA and wait for 354 first")
        self._in_data = False
        self._send(b"." + CRLF)
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
        self.tap.append(TapRecord("sent", plaintext, wire, tls, time.time()))

    def _flush_tls(self) -> None:
        """Send whatever the TLS layer queued by itself (handshake, alerts, close_notify)."""
        wire = self._outgoing.read()
        if wire and self._sock is not None:
            self._write_socket(self._sock, b"", wire, tls=True)

    # --- receiving ----------------------------------------------------------------------------

    def read_reply(self, timeout: float | None = None) -> Reply:
        """Read one complete reply (all its continuation lines).

        `timeout` bounds the whole reply (default: the client's timeout); 0 only takes
        what has already arrived. Raises SmtpTimeout (the connection stays usable),
        SmtpConnectionClosed or SmtpProtocolError.
        """
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        lines: list[ReplyLine] = []
        consumed = 0
        while True:
            end = self._inbuf.find(b"\n", consumed)
            if end < 0:
                if len(self._inbuf) - consumed > _MAX_LINE:
                    raise SmtpProtocolError(
                        "the server sent a line longer than 64 KiB without a line ending",
                        bytes(self._inbuf[consumed : consumed + _SHOWN]),
                    )
                try:
                    self._fill(deadline)
                except SmtpTimeout:
                    raise SmtpTimeout(
                        self._timeout_message(limit, bytes(self._inbuf)), bytes(self._inbuf)
                    ) from None
                continue
            raw = bytes(self._inbuf[consumed : end + 1])
            consumed = end + 1
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

    def _timeout_message(self, limit: float, received: bytes) -> str:
        if received:
            return f"no complete reply within {_seconds(limit)} (so far: {_quote(received)!r})"
        return f"no reply within {_seconds(limit)}"

    def _fill(self, deadline: float) -> None:
        """Wait for one chunk from the socket and add its SMTP bytes to the input buffer."""
        if self._eof or self._sock is None:
            raise self._closed_error()
        chunk = self._recv_chunk(self._sock, deadline)
        if self._tls is None:
            if chunk:
                self.tap.append(TapRecord("received", chunk, chunk, False, time.time()))
                self._inbuf += chunk
            else:
                self._peer_closed()
            return
        plain, eof = self._decrypt(chunk)
        if chunk:
            self.tap.append(TapRecord("received", plain, chunk, True, time.time()))
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
        """
        self._live_socket()  # raises if the connection is gone
        if self._tls is not None:
            raise SmtpStateError("TLS is already active on this connection")
        last = self._last_reply
        if last is None or last.code != 220 or last is self.banner:
            raise SmtpStateError("send STARTTLS and wait for its 220 reply before starttls()")
        if self._inbuf:
            # RFC 3207 §4.2 / CVE-2011-0411: nothing may be read in plaintext after the 220.
            extra = bytes(self._inbuf)
            raise SmtpProtocolError(
                f"the server sent more after its 220, before TLS started: {_quote(extra)!r}",
                extra,
            )
        chosen = context or client_context(verify=verify, cafile=cafile)
        return self._start_tls(chosen, server_hostname, None if context else cafile)

    def _start_tls(
        self, context: ssl.SSLContext, server_hostname: str, cafile: str | Path | None = None
    ) -> TlsInfo:
        """The handshake on this socket (after STARTTLS's 220, or at once for implicit TLS)."""
        sock = self._live_socket()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=False, server_hostname=server_hostname
        )
        self._handshake(sock, time.monotonic() + self.timeout)
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

    def _handshake(self, sock: socket.socket, deadline: float) -> None:
        assert self._tls is not None
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush_tls()
                try:
                    chunk = self._recv_chunk(sock, deadline)
                except SmtpTimeout:
                    message = f"the TLS handshake did not finish within {_seconds(self.timeout)}"
                    self._peer_closed(message=message)
                    raise SmtpTimeout(message) from None
                if not chunk:
                    self._peer_closed()
                    raise SmtpConnectionClosed(
                        "the server closed the connection during the TLS handshake",
                        last_reply=self._last_reply,
                    ) from None
                self.tap.append(TapRecord("received", b"", chunk, True, time.time()))
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
