"""The teaching SMTP protocol: aiosmtpd's machinery with the persona's rules and texts.

aiosmtpd provides the transport, the STARTTLS upgrade and the AUTH mechanisms. The
command loop and the MAIL/RCPT/DATA handling are the persona's own, because the tutor
must be exact about what it accepts (angle brackets, line limits, CRLF.CRLF) and must
record every line it reads, byte for byte, as an exchange (docs/architecture.md,
"How a session is captured"; docs/server.md). What the persona refuses on purpose
(greylisting, GTUBE, AUTH passwords) is decided in policy.py, without a socket.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import ssl
import time
from asyncio import sslproto
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword, TLSSetupException

from tutor.maildir.store import RELAY, Delivery, StorageError, new_queue_id, summarize_headers
from tutor.server import policy, verify, world_relay
from tutor.server.bounce import schedule_bounces
from tutor.server.fixups import header_lines, submission_fixups
from tutor.server.replies import LIBRARY_TEXTS, REPLIES, ReplyKey, reply
from tutor.server.spool import SPOOL_THRESHOLD, MessageSpool, spool_directory
from tutor.smtp.events import (
    TLS_HANDSHAKE,
    TLS_PLAINTEXT,
    TLS_SILENT,
    Authenticated,
    BareLineFeed,
    Copy,
    Event,
    Exchange,
    ExchangeKind,
    MessageStored,
    SessionClosed,
    SessionOpened,
    StudentNamed,
    TlsStarted,
)
from tutor.smtp.student import noop_student
from tutor.smtp.wire import (
    COMMAND_LINE_LIMIT,
    RECIPIENT_LIMIT,
    TEXT_LINE_LIMIT,
    PathError,
    address_literal,
    dot_unstuff,
    has_bare_lf,
    parse_path,
    split_command,
)
from tutor.world import authresults, dnsdata

if TYPE_CHECKING:
    from tutor.server.context import ServerContext

log = logging.getLogger("tutor.server")

_VERB = re.compile(rb"[A-Za-z]+\Z")
# Each advertised extension that adds a MAIL parameter lengthens the MAIL line: SIZE by
# 26 octets (RFC 1870 §3), SMTPUTF8 by 10 (RFC 6531 §3.4), AUTH= by 500 (RFC 4954 §3),
# and BODY= (8BITMIME) by the 14 of " BODY=8BITMIME", the longest value taken here.
_MAIL_LINE_EXTRA = 26 + 10 + 500 + 14
READ_SIZE = 64 * 1024  # the most one read from a client's socket takes
_HELP_TOPICS = {
    "HELO": "HELO <domain>",
    "EHLO": "EHLO <domain>",
    "MAIL": "MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8] [AUTH=<>]",
    "RCPT": "RCPT TO:<address>",
    "DATA": 'DATA, then the message, ending with "." on a line by itself',
    "RSET": "RSET",
    "NOOP": "NOOP",
    "QUIT": "QUIT",
    "VRFY": "VRFY <address>",
    "HELP": "HELP [command]",
    "STARTTLS": "STARTTLS (after EHLO)",
    "AUTH": "AUTH PLAIN|LOGIN [initial-response] (after STARTTLS)",
}


def echo_safe(text: str, *, allow_utf8: bool) -> str:
    """Text that is safe to echo in a reply: printable, and ASCII unless SMTPUTF8 is in use."""
    if text.isprintable() and (allow_utf8 or text.isascii()):
        return text  # the usual case, checked in C rather than character by character
    return "".join(ch if ch.isprintable() and (allow_utf8 or ch.isascii()) else "?" for ch in text)


@dataclass
class _Pending:
    kind: ExchangeKind
    sent: bytearray
    tls: bool
    replies: list[str] = field(default_factory=list)


class _NoHooks:
    """aiosmtpd calls handle_* hooks on its handler; the persona needs none."""


class TeachingSMTP(SMTP):
    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"
    # The reader's limit: the longest line read whole (a longer one is drained and
    # refused). It must hold the longest MAIL line and a dot-stuffed text line.
    line_length_limit = max(COMMAND_LINE_LIMIT + _MAIL_LINE_EXTRA, TEXT_LINE_LIMIT + 1)

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        persona = context.persona
        super().__init__(
            _NoHooks(),
            hostname=persona.hostname,  # never let aiosmtpd call getfqdn()
            ident="ESMTP smtp-tutor",
            tls_context=context.tls_context,
            data_size_limit=persona.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=persona.idle_timeout,
            auth_require_tls=True,
            authenticator=self._check_password,
            loop=context.loop,
        )
        self.sid = 0
        self._pending: _Pending | None = None
        self._unknown_commands = 0
        self._refused = False
        self._close_reason = ""
        self._closed_published = False
        self._tls_failure = ("", "")  # SessionClosed's tls_failure and tls_detail
        self._in_data = False
        self._bare_lf_reported = {False: False, True: False}
        self._last_byte = b""
        self._tls_active = False
        self._folders: dict[str, str] = {}  # accepted recipient -> folder
        self._accepted_rcpts = 0  # RCPT commands accepted in this transaction
        self._mail_from: str | None = None
        self._idle_deadline = 0.0  # loop.time() at which the idle timeout is due
        self._spool_directory: Path | None = None
        self._unsent: list[str] = []  # the lines of a multi-line reply before its last
        self._outsider = False  # serve --lan: a client from beyond the class's network

    # --- connection lifecycle ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is not None and self.transport is not None:
            self._starttls_done(transport)
            return
        peer = transport.get_extra_info("peername") or ("", 0)
        sock = transport.get_extra_info("sockname") or ("", 0)
        self.sid = self.context.capture.new_session_id()
        self.context.connections.add(self)
        # Refused at connect: beyond the connection cap (421), or, under `serve --lan`, a
        # client from outside the class's network (554 instead of 220, RFC 5321 §3.1).
        over_cap = len(self.context.connections) > self.context.persona.max_connections
        self._outsider = not over_cap and not self.context.persona.serves(peer[0])
        self._refused = over_cap or self._outsider
        self._publish(
            SessionOpened(
                self.sid, peer[0], peer[1], sock[1], refused=self._refused, local_host=sock[0]
            )
        )
        # Implicit TLS (the submissions port, RFC 8314): encrypted from the first byte.
        self._tls_active = transport.get_extra_info("ssl_object") is not None
        if hasattr(transport, "max_size"):
            # asyncio's socket transport reads into a new bytes object of max_size (256
            # KiB) for every recv: above glibc's mmap threshold, so each read of a 20-byte
            # command cost an mmap, an mremap and a munmap. 64 KiB comes from the heap.
            transport.max_size = READ_SIZE
        super().connection_made(transport)

    def _starttls_done(self, transport: asyncio.BaseTransport) -> None:
        # Bytes the client pipelined after STARTTLS in plaintext are thrown away by
        # aiosmtpd (RFC 3207 §4.2); count them first so the lesson can show it.
        discarded = len(getattr(self._reader, "_buffer", b""))
        super().connection_made(transport)
        self._set_rset_state()
        self._tls_active = True
        ssl_object = transport.get_extra_info("ssl_object")
        version = ssl_object.version() if ssl_object else "?"
        cipher = ssl_object.cipher()[0] if ssl_object and ssl_object.cipher() else "?"
        self._publish(TlsStarted(self.sid, version or "?", cipher, discarded))

    def eof_received(self) -> bool | None:
        """The client half-closed. aiosmtpd cancels the session at once, losing a QUIT the
        client pipelined just before; instead let the command loop answer what already
        arrived and stop when the reader reaches the end (IncompleteReadError)."""
        self._reader.feed_eof()
        return self._original_transport is None and not self._tls_active

    def connection_lost(self, error: Exception | None) -> None:
        self.context.connections.discard(self)
        if self._outsider:  # however it ended (QUIT, a hang-up), it was a refusal
            self._close_reason = "network"
        self._finish_pending()
        if not self._closed_published:
            self._closed_published = True
            self._publish(
                SessionClosed(self.sid, self._close_reason or "client", *self._tls_failure)
            )
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        in_data = self._in_data
        if not self._bare_lf_reported[in_data] and has_bare_lf(data, self._last_byte):
            self._bare_lf_reported[in_data] = True
            self._publish(BareLineFeed(self.sid, in_data))
        self._last_byte = data[-1:]
        super().data_received(data)

    def _timeout_cb(self) -> None:
        self._finish_pending()
        self._close(reply(ReplyKey.IDLE_TIMEOUT, host=self.hostname), "idle")

    def _reset_timeout(self, duration: float | None = None) -> None:
        # Called for every line read, DATA lines included. aiosmtpd cancels its timer and
        # makes a new one each time; under load that churn of timer handles was a tenth
        # of the server's time (docs/performance.md). Instead, move the deadline and keep
        # one timer, which re-arms itself for the rest of the period if it fires early.
        self._idle_deadline = self.loop.time() + (duration or self._timeout_duration)
        if self._timeout_handle is None:
            self._timeout_handle = self.loop.call_at(self._idle_deadline, self._idle_check)

    def _idle_check(self) -> None:
        if self.loop.time() < self._idle_deadline:
            self._timeout_handle = self.loop.call_at(self._idle_deadline, self._idle_check)
        else:
            self._timeout_cb()

    def shut_down(self) -> None:
        """The server is stopping: tell the client (421 4.3.2) and close."""
        if (
            self.transport is not None
            and not self.transport.is_closing()
            and not self._close_reason
        ):
            self._finish_pending()
            self._close(reply(ReplyKey.SHUTDOWN, host=self.hostname), "server")

    def _close(self, final_reply: str, reason: str, *, answers_command: bool = False) -> None:
        """Send a last 421 and close: the server ends the session.

        It answers the command just read (too many unknown commands) or stands alone as
        a notice nobody asked for (idle timeout, shutdown, connection cap).
        """
        self._close_reason = reason
        if not answers_command:
            self._begin("notice", b"")
        self._record_reply(final_reply)
        if self._writer is not None and self.transport is not None:
            self._writer.write(self._with_unsent(final_reply).encode() + b"\r\n")
            self.transport.close()

    def _set_rset_state(self) -> None:
        super()._set_rset_state()  # type: ignore[no-untyped-call]
        self._folders = {}
        self._accepted_rcpts = 0
        self._mail_from = None

    # --- recording ----------------------------------------------------------------------

    def _publish(self, event: Any) -> None:
        self.context.capture.publish(event)

    def _begin(self, kind: ExchangeKind, sent: bytes) -> None:
        self._finish_pending()
        self._pending = _Pending(kind, bytearray(sent), self._tls_active)

    def _finish_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        self._publish(
            Exchange(
                self.sid, pending.kind, bytes(pending.sent), tuple(pending.replies), pending.tls
            )
        )

    def _record_reply(self, line: str) -> None:
        if self._pending is None:
            self._pending = _Pending("notice", bytearray(), self._tls_active)
        self._pending.replies.append(line)
        if len(line) == 3 or line[3:4] == " ":
            pending, self._pending = self._pending, None
            self._publish(
                Exchange(
                    self.sid, pending.kind, bytes(pending.sent), tuple(pending.replies), pending.tls
                )
            )

    async def push(self, status: Any) -> None:
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else str(status)
        key = LIBRARY_TEXTS.get(text)
        if key is not None:
            text = reply(key)
        self._record_reply(text)
        await self._send(text)

    async def _send(self, line: str) -> None:
        """Write one reply line, as aiosmtpd's push does; the lines of a multi-line reply
        wait for its last line and go out together (one write, not one per line)."""
        if line[3:4] == "-" and line[:3].isdigit():
            self._unsent.append(line)
            return
        self._writer.write(self._with_unsent(line).encode() + b"\r\n")
        await self._writer.drain()

    def _with_unsent(self, line: str) -> str:
        """The lines held back (if any) and this one, CRLF between them."""
        if not self._unsent:
            return line
        lines, self._unsent = self._unsent, []
        return "\r\n".join([*lines, line])

    async def _push_lines(self, lines: list[str]) -> None:
        for line in lines:
            await self.push(line)

    async def _read_line(self, kind: ExchangeKind) -> bytes | None:
        """Read one line ending in LF; None if it overran the reader (already drained)."""
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as error:  # the client sent EOF
            if error.partial:  # an unfinished line: shown as sent, never answered
                self._begin(kind, error.partial)
            raise
        except asyncio.LimitOverrunError as error:
            head = await self._reader.read(error.consumed)
            self._begin(kind, head[:COMMAND_LINE_LIMIT] + b"...")
            while True:
                try:
                    await self._reader.readuntil(b"\n")
                    return None
                except asyncio.LimitOverrunError as more:
                    await self._reader.read(more.consumed)
        self._reset_timeout()
        self._begin(kind, line)
        if not line.endswith(b"\r\n") and not self._bare_lf_reported[False]:
            self._bare_lf_reported[False] = True
            self._publish(BareLineFeed(self.sid, False))
        return line

    # --- the command loop ---------------------------------------------------------------

    async def _handle_client(self) -> None:
        if self._refused and not self._outsider:
            self._close(reply(ReplyKey.TOO_MANY_CONNECTIONS, host=self.hostname), "cap")
            return
        self._begin("greeting", b"")
        if self.context.persona.busy:  # the 421 is this session's greeting
            self._close(reply(ReplyKey.BUSY, host=self.hostname), "busy", answers_command=True)
            return
        if self._outsider:
            await self.push(self._outsider_reply(ReplyKey.NOT_ON_NETWORK))
        else:
            await self.push(reply(ReplyKey.GREETING, host=self.hostname))
        # Once the session is ending (QUIT, a final 421), lines the client pipelined
        # behind it are not read: the capture must hold only replies really sent.
        while self.transport is not None and not self._close_reason:
            try:
                line = await self._read_line("command")
                if line is None:
                    await self.push(reply(ReplyKey.COMMAND_TOO_LONG))
                    continue
                await self._dispatch(line)
            except asyncio.IncompleteReadError:
                # The client sent EOF: every complete line before it has been answered
                # (a pipelined QUIT included); now close our side too.
                self._close_reason = self._close_reason or "client"
                if self.transport is not None:
                    self.transport.close()
                return
            except asyncio.CancelledError:
                # The connection was lost: close our side too, or it lingers half-open.
                if self.transport is not None:
                    self._writer.close()
                raise
            except (ConnectionResetError, BrokenPipeError):
                return
            except TLSSetupException:
                self._close_reason = "tls"
                if self.transport is not None:
                    self.transport.close()
                self.connection_lost(None)
                return
            except Exception:
                log.exception("session %s: unexpected error", self.sid)
                await self.push(reply(ReplyKey.INTERNAL_ERROR))

    async def _dispatch(self, line: bytes) -> None:
        stripped = line.rstrip(b"\r\n")
        limit = COMMAND_LINE_LIMIT
        if stripped[:4].upper() == b"MAIL" and self.session and self.session.extended_smtp:
            limit += _MAIL_LINE_EXTRA
        if len(line) > limit:
            await self.push(reply(ReplyKey.COMMAND_TOO_LONG))
            return
        if b"\x00" in stripped:
            await self.push(reply(ReplyKey.NUL_BYTE))
            return
        if not stripped.strip():
            await self.push(reply(ReplyKey.EMPTY_LINE))
            return
        verb_bytes, argument_bytes = split_command(stripped)
        if self._outsider and verb_bytes != b"QUIT":
            await self._refuse_outsider()
            return
        verb = verb_bytes.decode("ascii") if _VERB.match(verb_bytes) else None
        method = self._smtp_methods.get(verb) if verb else None
        if method is None:
            if self._closed_for_one_unknown_too_many():
                return
            if verb is None:
                await self.push(reply(ReplyKey.BAD_VERB))
            else:
                await self.push(reply(ReplyKey.UNKNOWN, verb=echo_safe(verb, allow_utf8=False)))
            return
        try:
            argument = argument_bytes.decode("utf-8")
        except UnicodeDecodeError:
            await self.push(reply(ReplyKey.BAD_UTF8))
            return
        await method(argument or None)

    async def _refuse_outsider(self) -> None:
        """After the 554 greeting, RFC 5321 §3.1: 503 to every command until QUIT. One that
        keeps on is closed as a client sending unknown commands is."""
        if not self._closed_for_one_unknown_too_many():
            await self.push(self._outsider_reply(ReplyKey.NOT_ON_NETWORK_COMMAND))

    def _closed_for_one_unknown_too_many(self) -> bool:
        """Count a command the server cannot take; at the persona's limit, close (421)."""
        self._unknown_commands += 1
        if self._unknown_commands < self.context.persona.max_unknown_commands:
            return False
        self._close(
            reply(ReplyKey.TOO_MANY_UNKNOWN, host=self.hostname),
            "unknown-commands",
            answers_command=True,
        )
        return True

    def _outsider_reply(self, key: ReplyKey) -> str:
        assert self.session is not None
        peer = self.session.peer
        address = peer[0] if isinstance(peer, tuple) else str(peer)
        return reply(key, host=self.hostname, address=address_literal(address))

    # --- greetings ----------------------------------------------------------------------

    def _greet(self, name: str, extended: bool) -> str:
        assert self.session is not None
        self._set_rset_state()
        self.session.extended_smtp = extended
        self.session.host_name = echo_safe(name, allow_utf8=False)
        peer = self.session.peer
        address = peer[0] if isinstance(peer, tuple) else str(peer)
        return reply(
            ReplyKey.EHLO if extended else ReplyKey.HELO,
            host=self.hostname,
            name=self.session.host_name,
            address=address_literal(address),
        )

    async def smtp_HELO(self, hostname: str | None) -> None:
        if not hostname:
            await self.push(reply(ReplyKey.HELO_SYNTAX))
            return
        await self.push(self._greet(hostname, extended=False))

    async def smtp_EHLO(self, hostname: str | None) -> None:
        if not hostname:
            await self.push(reply(ReplyKey.EHLO_SYNTAX))
            return
        first = self._greet(hostname, extended=True)[4:]
        lines = [first, *self.extensions()]
        await self._push_lines([f"250-{t}" for t in lines[:-1]] + [f"250 {lines[-1]}"])

    def extensions(self) -> list[str]:
        """What EHLO advertises: only what this server really does."""
        offered = [
            f"SIZE {self.context.persona.max_message_size}",
            "8BITMIME",
            "PIPELINING",
            "ENHANCEDSTATUSCODES",
            "SMTPUTF8",
        ]
        if self.tls_context is not None and not self._tls_active:
            offered.append("STARTTLS")
        if self._tls_active:
            offered.append("AUTH PLAIN LOGIN")
        offered.append("HELP")
        return offered

    # --- simple commands ----------------------------------------------------------------

    async def smtp_NOOP(self, arg: str | None) -> None:
        student = noop_student(arg)  # any other argument is ignored, as RFC 5321 asks
        if student is None:
            await self.push(reply(ReplyKey.NOOP))
        elif student.name is None:
            await self.push(reply(ReplyKey.NOOP_STUDENT_REFUSED, problem=student.problem))
        else:
            # A name in UTF-8 is shown as ? to a client that did not ask for SMTPUTF8.
            named = reply(ReplyKey.NOOP_STUDENT, name=echo_safe(student.name, allow_utf8=False))
            await self._answer_then_publish(named, StudentNamed(self.sid, student.name))

    async def smtp_QUIT(self, arg: str | None) -> None:
        if arg:
            await self.push(reply(ReplyKey.QUIT_SYNTAX))
            return
        self._close_reason = "quit"
        await self.push(reply(ReplyKey.QUIT, host=self.hostname))
        if self.transport is not None:
            self.transport.close()

    async def smtp_RSET(self, arg: str | None) -> None:
        if arg:
            await self.push(reply(ReplyKey.RSET_SYNTAX))
            return
        self._set_rset_state()
        await self.push(reply(ReplyKey.RSET))

    async def smtp_VRFY(self, arg: str | None) -> None:
        """Answer as RCPT would, without the transaction (as Postfix does with VRFY on).

        252, not 250: the server will try, but does not claim to have verified the
        mailbox (RFC 5321 §3.5.3)."""
        address = _vrfy_address(arg or "", self.context.persona.domain)
        if address is None:
            await self.push(reply(ReplyKey.VRFY_SYNTAX))
            return
        local, _, domain = address.rpartition("@")
        persona = self.context.persona
        shown = echo_safe(address, allow_utf8=False)
        if persona.is_local_domain(domain):
            known = persona.mailbox_for(local, domain) is not None
            await self.push(reply(ReplyKey.VRFY if known else ReplyKey.VRFY_UNKNOWN, address=shown))
        elif persona.open_relay or (self.session is not None and self.session.authenticated):
            await self.push(reply(ReplyKey.VRFY, address=shown))
        else:
            await self.push(reply(ReplyKey.VRFY_RELAY_DENIED, address=shown))

    async def smtp_EXPN(self, arg: str | None) -> None:
        await self.push(reply(ReplyKey.EXPN))

    async def smtp_HELP(self, arg: str | None) -> None:
        spec = REPLIES[ReplyKey.HELP]
        if arg:
            topic = _HELP_TOPICS.get(arg.upper())
            if topic is None:
                await self.push(
                    reply(ReplyKey.HELP_UNKNOWN, topic=echo_safe(arg, allow_utf8=False))
                )
            else:
                await self.push(spec.render(line=topic))
            return
        lines = [
            "smtp-tutor teaching server; commands:",
            " ".join(sorted(_HELP_TOPICS)),
            "HELP <command> shows its syntax; RFC 5321 explains them all",
        ]
        await self._push_lines(spec.render_lines(lines))

    # --- the transaction ---------------------------------------------------------------

    async def smtp_MAIL(self, arg: str | None) -> None:
        assert self.session is not None and self.envelope is not None
        if not self.session.host_name:
            await self.push(reply(ReplyKey.MAIL_NEED_HELO))
            return
        if self._mail_from is not None:
            await self.push(reply(ReplyKey.MAIL_NESTED))
            return
        try:
            path = parse_path(arg or "", "FROM:", allow_null=True, allow_postmaster=False)
        except PathError as error:
            await self.push(self._path_error("mail", error))
            return
        params = dict(path.params)
        if params and not self.session.extended_smtp:
            # HELO offers no extensions, so no parameter is supported (RFC 5321 §4.1.1.11).
            option = _sent_option(arg or "", next(iter(params)))
            await self.push(reply(ReplyKey.MAIL_PARAMS_HELO, option=option))
            return
        size = params.pop("SIZE", None)
        body = params.pop("BODY", "7BIT")
        utf8 = params.pop("SMTPUTF8", False) is True
        # AUTH= (RFC 4954 §5) is accepted and ignored: this server never trusts a client's
        # claim about who submitted a message first, which is what AUTH=<> means.
        auth = params.pop("AUTH", None)
        if params:
            option = _sent_option(arg or "", next(iter(params)))
            await self.push(reply(ReplyKey.MAIL_PARAMS, option=option))
            return
        if body not in ("7BIT", "8BITMIME"):
            await self.push(reply(ReplyKey.MAIL_BODY, option=_sent_option(arg or "", "BODY")))
            return
        limit = self.context.persona.max_message_size
        if size is not None and (not isinstance(size, str) or not size.isdigit()):
            await self.push(reply(ReplyKey.MAIL_SYNTAX))
            return
        if auth is True:  # AUTH needs a value: an xtext mailbox or <>
            await self.push(reply(ReplyKey.MAIL_SYNTAX))
            return
        if isinstance(size, str) and int(size) > limit:
            await self.push(reply(ReplyKey.MAIL_TOO_BIG, limit=limit))
            return
        record = dnsdata.lookup(path.domain) if path.domain else None
        if record is not None and record.null_mx:
            await self.push(reply(ReplyKey.MAIL_NULL_MX, domain=path.domain))
            return
        self._mail_from = path.address
        self.envelope.mail_from = path.address
        self.envelope.smtp_utf8 = utf8
        self.envelope.mail_options = (arg or "").split()[1:]
        await self.push(reply(ReplyKey.MAIL_OK, address=echo_safe(path.address, allow_utf8=utf8)))

    async def smtp_RCPT(self, arg: str | None) -> None:
        assert self.session is not None and self.envelope is not None
        if not self.session.host_name:
            await self.push(reply(ReplyKey.RCPT_NEED_HELO))
            return
        if self._mail_from is None:
            await self.push(reply(ReplyKey.RCPT_NEED_MAIL))
            return
        utf8 = self.envelope.smtp_utf8
        try:
            path = parse_path(arg or "", "TO:", allow_null=False, allow_postmaster=True, utf8=utf8)
        except PathError as error:
            await self.push(self._path_error("rcpt", error))
            return
        if path.params:
            option = _sent_option(arg or "", next(iter(path.params)))
            await self.push(reply(ReplyKey.RCPT_PARAMS, option=option))
            return
        # Every accepted RCPT counts, the same address again too (as on Postfix): counting
        # distinct addresses let one address repeated 162,117 times through.
        if self._accepted_rcpts >= RECIPIENT_LIMIT:
            await self.push(reply(ReplyKey.RCPT_TOO_MANY, limit=RECIPIENT_LIMIT))
            return
        shown = echo_safe(path.address, allow_utf8=utf8)
        persona = self.context.persona
        if persona.is_local_domain(path.domain):
            folder = persona.mailbox_for(path.local, path.domain)
            if folder is None:
                await self.push(reply(ReplyKey.RCPT_UNKNOWN, address=shown))
                return
            refusal = self._greylist_refusal(path.address)
            if refusal is not None:
                await self.push(reply(refusal, address=shown))
                return
            await self._accept_recipient(
                path.address, folder, reply(ReplyKey.RCPT_OK, address=shown)
            )
            return
        if not (persona.open_relay or self.session.authenticated):
            await self.push(reply(ReplyKey.RCPT_RELAY_DENIED, address=shown))
            return
        record = dnsdata.lookup(path.domain)
        if record is not None and record.null_mx:
            await self.push(reply(ReplyKey.RCPT_NULL_MX, address=shown, domain=path.domain))
            return
        why = (
            "open relay"
            if persona.open_relay and not self.session.authenticated
            else "you authenticated"
        )
        await self._accept_recipient(
            path.address, RELAY, reply(ReplyKey.RCPT_RELAY_OK, address=shown, why=why)
        )

    def _greylist_refusal(self, recipient: str) -> ReplyKey | None:
        peer = self.session.peer if self.session else None
        client = peer[0] if isinstance(peer, tuple) else str(peer)
        return policy.greylist_refusal(
            self.context.persona,
            self.context.greylist_seen,
            client,
            self._mail_from or "",
            recipient,
        )

    async def _accept_recipient(self, address: str, folder: str, status: str) -> None:
        assert self.envelope is not None
        self._folders[address] = folder
        self._accepted_rcpts += 1
        self.envelope.rcpt_tos.append(address)
        await self.push(status)

    def _path_error(self, command: str, error: PathError) -> str:
        key = {
            "syntax": f"{command}_syntax",
            "params": f"{command}_syntax",
            "brackets": f"{command}_brackets",
            "address": f"{command}_bad_address",
            "non_ascii": f"{command}_non_ascii",
        }[error.kind]
        return reply(ReplyKey(key), detail=error.detail)

    async def smtp_DATA(self, arg: str | None) -> None:
        assert self.session is not None and self.envelope is not None
        if not self.session.host_name:
            await self.push(reply(ReplyKey.DATA_NEED_HELO))
            return
        if not self._folders:
            await self.push(reply(ReplyKey.DATA_NEED_RCPT))
            return
        if arg:
            await self.push(reply(ReplyKey.DATA_SYNTAX))
            return
        await self.push(reply(ReplyKey.DATA_GO))
        # However DATA ends (the dot, a refusal, the client gone, the server stopping),
        # leaving this block closes the spool, and closing deletes its file (spool.py).
        if self._spool_directory is None:
            self._spool_directory = spool_directory(self.context.store.root)
        with MessageSpool(self._spool_directory) as spool:
            problem = await self._read_message(spool)
            if problem is not None:
                spool.close()  # before the reply: whoever reads it finds the file gone
                self._set_rset_state()
                await self.push(problem)
                return
            await self._store(spool)

    async def _read_message(self, spool: MessageSpool) -> str | None:
        """Read DATA lines into the spool until CRLF.CRLF (no bare-LF ending); the
        refusal to send after the dot, if any."""
        self._in_data = True
        # Message lines that came in the same burst as DATA (plain nc sends everything
        # at once) are already buffered: data_received saw them before DATA was read.
        buffered = bytes(getattr(self._reader, "_buffer", b""))
        if not self._bare_lf_reported[True] and has_bare_lf(buffered):
            self._bare_lf_reported[True] = True
            self._publish(BareLineFeed(self.sid, True))
        self._begin("data", b"")
        assert self._pending is not None
        sent = self._pending.sent
        limit = self.context.persona.max_message_size
        size = 0
        problem: str | None = None
        spam: ReplyKey | None = None
        continuing = False  # inside a line that overran the reader
        ended = False
        try:
            while not ended:
                lines = self._buffered_lines()
                if not lines:
                    try:
                        lines = [await self._reader.readuntil(b"\r\n")]
                    except asyncio.IncompleteReadError as error:  # EOF mid-message: keep none
                        _keep(sent, error.partial, limit)
                        raise
                    except asyncio.LimitOverrunError as error:
                        line = await self._reader.read(error.consumed)
                        problem = problem or reply(ReplyKey.DATA_LINE_TOO_LONG)
                        spool.discard()
                        continuing = True
                        self._reset_timeout()
                        _keep(sent, line, limit)
                        continue
                self._reset_timeout()
                # Each line is checked on its own; what is kept (the capture's bytes, the
                # spool's text) is written once for the lines read together: the same
                # bytes in the same order as line by line.
                texts = []
                read = len(lines)
                for index, line in enumerate(lines):
                    if line == b".\r\n" and not continuing:
                        ended = True
                        read = index + 1
                        break
                    if continuing:
                        continuing = False
                        continue
                    text = dot_unstuff(line)
                    size += len(text)
                    if len(text) > TEXT_LINE_LIMIT:
                        problem = problem or reply(ReplyKey.DATA_LINE_TOO_LONG)
                    elif size > limit:
                        problem = problem or reply(ReplyKey.DATA_TOO_BIG, limit=limit)
                    if problem is None:
                        texts.append(text)
                _keep_lines(sent, lines[:read], limit)
                if problem is not None:
                    spool.discard()
                elif texts:
                    text = b"".join(texts)
                    spool.write(text)
                    # GTUBE holds no line break, and every text ends with one: looking
                    # in these lines together finds it wherever a search of the whole
                    # message would.
                    spam = spam or policy.spam_refusal(text)
        finally:
            self._in_data = False
        if problem is None and spool.failed is not None:
            log.warning("session %s: message not spooled: %s", self.sid, spool.failed)
            problem = reply(ReplyKey.DATA_STORAGE_FULL)
        if problem is None and spam is not None:
            problem = reply(spam)
        return problem

    def _buffered_lines(self) -> list[bytes]:
        """The whole DATA lines the reader already holds, each with its CRLF, up to the
        first that may be the lone dot (what follows it is the next command); none when
        it holds no whole line.

        Taken at once instead of awaiting readuntil() for each: a client's message
        usually arrives in one piece, and a coroutine round trip per line was several
        percent of the server's time per message. The lines are the ones readuntil(b"\\r\\n") would
        have returned, in order; a line longer than the reader's limit is refused as
        the slow path refuses it (the per-line checks, with the same bytes captured).
        """
        reader = self._reader
        buffer = getattr(reader, "_buffer", None)
        if not isinstance(buffer, bytearray) or getattr(reader, "_exception", None):
            return []
        if buffer.startswith(b".\r\n"):
            end = 3
        else:
            dot = buffer.find(b"\r\n.\r\n")
            end = dot + 5 if dot >= 0 else buffer.rfind(b"\r\n") + 2
            if end < 2:
                return []
        block = bytes(buffer[:end])
        del buffer[:end]
        resume = getattr(reader, "_maybe_resume_transport", None)
        if resume is not None:
            resume()  # as readuntil does: reading may go on now the buffer is smaller
        return [line + b"\r\n" for line in block[:-2].split(b"\r\n")]

    async def _store(self, spool: MessageSpool) -> None:
        assert self.session is not None
        queue_id = new_queue_id()
        spool = submission_fixups(spool, self.session.authenticated, queue_id, self.hostname)
        sender = self._mail_from or ""
        recipients = _unique_copies(self._folders)
        protocol = "ESMTP" if self.session.extended_smtp else "SMTP"
        if self._tls_active:
            protocol += "S"
        if self.session.authenticated:
            protocol += "A"
        peer = self.session.peer
        client_address = peer[0] if isinstance(peer, tuple) else str(peer)
        # The start of the message is all the summary and the checks read: a message under
        # the spool threshold is read whole, as before; a longer header is cut there.
        head = spool.read(0, SPOOL_THRESHOLD)
        headers = summarize_headers(head)
        helo = self.session.host_name or ""
        verdicts = authresults.evaluate(sender, headers.header_from, client_address, helo)
        verdicts = await verify.with_dkim(self.context, verdicts, spool)  # world MTAs only
        delivery = Delivery(
            queue_id=queue_id,
            sender=sender,
            helo=self.session.host_name or "",
            client_address=client_address,
            protocol=protocol,
            content=spool.content(),
            received_at=time.time(),
            auth_results=verdicts.header(self.hostname),
            smtputf8=self.envelope is not None and self.envelope.smtp_utf8,
        )
        folders = tuple(self._folders)

        def stored(copies: list[Copy]) -> MessageStored:
            return MessageStored(
                self.sid,
                queue_id,
                sender,
                folders,
                tuple(copies),
                headers.header_from,
                headers.header_to,
                headers.header_cc,
                headers.subject,
                spool.size,
                client_address,
                helo,
                verdicts.spf,
                verdicts.dmarc,
                _body_lines(spool, head),
                header_lines(head),
            )

        def onward(copies: list[Copy]) -> None:
            if world_relay.takes(self.context, self.sid, delivery, copies):
                return  # a world MTA sends it on for real (tutor.server.world_relay)
            relayed = [c.recipient for c in copies if c.folder == RELAY]
            if relayed:  # a bounce quotes the headers only, and outlives the spool
                headers_only = replace(delivery, content=_header_section(head))
                schedule_bounces(self.context, self.sid, headers_only, relayed)

        def stored_unanswered(committed: asyncio.Future[list[Copy]]) -> None:
            if not committed.cancelled() and committed.exception() is None:
                self._publish(stored(committed.result()))
                onward(committed.result())
            spool.close()

        committing = self.context.deliveries.submit(delivery, recipients)
        try:
            copies = await asyncio.shield(committing)
        except asyncio.CancelledError:
            # The connection was lost while the message was being written: it is stored
            # all the same (no 250 can reach the client), and the capture says so then.
            committing.add_done_callback(stored_unanswered)
            raise
        except StorageError as error:
            spool.close()
            log.warning("session %s: storage failed: %s", self.sid, error)
            self._set_rset_state()
            await self.push(reply(ReplyKey.DATA_STORAGE_FULL))
            return
        event = stored(copies)
        spool.close()  # delivered: the copies hold the message now
        self._set_rset_state()
        # Record the 250 and the stored message before the client can read the 250, so
        # whoever reacts to the reply finds both in the capture, in reading order.
        ok = reply(ReplyKey.DATA_OK, queue_id=queue_id)
        self._record_reply(ok)
        self._publish(event)
        await self._send(ok)
        onward(copies)

    # --- STARTTLS and AUTH ------------------------------------------------------------------

    async def smtp_STARTTLS(self, arg: str | None) -> None:
        assert self.session is not None
        if arg:
            await self.push(reply(ReplyKey.STARTTLS_SYNTAX))
        elif self.tls_context is None:
            await self.push(reply(ReplyKey.STARTTLS_UNAVAILABLE))
        elif self._tls_active:
            await self.push(reply(ReplyKey.STARTTLS_ACTIVE))
        elif not self.session.extended_smtp:
            await self.push(reply(ReplyKey.STARTTLS_NEED_EHLO))
        else:
            await self._upgrade_to_tls(self.tls_context)

    async def _upgrade_to_tls(self, context: ssl.SSLContext) -> None:
        """aiosmtpd's STARTTLS upgrade (SMTP.smtp_STARTTLS), through a TLS layer that keeps
        the first bytes the client sends after the 220, so that a failure can say what came
        instead of a handshake: telnet's plain text is no TLS record (docs/server.md,
        "STARTTLS from telnet")."""
        assert self.transport is not None
        await self.push(reply(ReplyKey.STARTTLS_READY))
        waiter = self.loop.create_future()
        layer = _WatchedTls(self.loop, self, context, waiter, server_side=True)
        self._tls_protocol = layer
        self._original_transport = self.transport
        self._original_transport.set_protocol(layer)
        self.transport = layer._app_transport
        layer.connection_made(self._original_transport)
        try:
            await waiter
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # Lines the client pipelined behind STARTTLS never reach the TLS layer.
            pipelined = bytes(getattr(self._reader, "_buffer", b""))
            self._tls_failure = _tls_failure(layer.first_bytes, pipelined, error)
            raise TLSSetupException() from error

    async def smtp_AUTH(self, arg: str | None) -> None:
        assert self.session is not None
        if not self.session.host_name or not self.session.extended_smtp:
            await self.push(reply(ReplyKey.AUTH_NEED_EHLO))
            return
        if not self._tls_active:
            await self.push(reply(ReplyKey.AUTH_BEFORE_TLS))
            return
        if self.session.authenticated:
            await self.push(reply(ReplyKey.AUTH_ALREADY))
            return
        if self._mail_from is not None:
            await self.push(reply(ReplyKey.AUTH_IN_TRANSACTION))
            return
        words = (arg or "").split()
        if not 1 <= len(words) <= 2:
            await self.push(reply(ReplyKey.AUTH_SYNTAX))
            return
        mechanism = words[0].upper()
        if mechanism not in ("PLAIN", "LOGIN"):
            await self.push(reply(ReplyKey.AUTH_MECHANISM))
            return
        method = self._auth_methods[mechanism].method
        result = await method(self, [mechanism, *words[1:]])
        login = ""
        if isinstance(result.auth_data, LoginPassword):
            login = result.auth_data.login.decode("utf-8", "replace")
        if result.success:
            self.session.authenticated = True
            self.session.auth_data = result.auth_data
            await self._answer_then_publish(
                reply(ReplyKey.AUTH_OK), Authenticated(self.sid, mechanism, login, True)
            )
        elif not result.handled:
            await self._answer_then_publish(
                reply(ReplyKey.AUTH_FAILED), Authenticated(self.sid, mechanism, login, False)
            )

    async def _answer_then_publish(self, line: str, event: Event) -> None:
        """A final reply and the event it brings about, in wire order: the exchange that
        carries the command and this reply, then the event; both are in the capture before
        the client can read the reply (docs/architecture.md, "How a session is captured")."""
        self._record_reply(line)
        self._publish(event)
        await self._send(line)

    def _check_password(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        refusal = policy.password_refusal(self.context.persona, login, password)
        return AuthResult(success=refusal is None, handled=False, auth_data=auth_data)

    async def challenge_auth(
        self, challenge: str | bytes, encode_to_b64: bool = True, log_client_response: bool = False
    ) -> Any:
        raw = challenge.encode() if isinstance(challenge, str) else challenge
        text = base64.b64encode(raw).decode() if encode_to_b64 else raw.decode()
        await self.push(reply(ReplyKey.AUTH_CHALLENGE, challenge=text))
        line = await self._read_line("auth")
        if line is None:
            await self.push(reply(ReplyKey.AUTH_BASE64))
            return MISSING
        blob = line.strip()
        if blob == b"*":
            await self.push(reply(ReplyKey.AUTH_ABORTED))
            return MISSING
        try:
            return base64.b64decode(blob, validate=True)
        except binascii.Error:
            await self.push(reply(ReplyKey.AUTH_BASE64))
            return MISSING


# The first byte of a TLS record that carries a handshake message (RFC 8446 §5.1): a
# ClientHello starts with it; a line typed into telnet or nc never does.
TLS_HANDSHAKE_RECORD = 0x16
TLS_FIRST_BYTES = 64  # of what the client sends after the 220, kept to say what came


class _WatchedTls(sslproto.SSLProtocol):
    """asyncio's TLS layer, as aiosmtpd uses it, keeping the first bytes it is given."""

    first_bytes = b""

    def get_buffer(self, n: int) -> memoryview:
        self._given = super().get_buffer(n)
        return self._given

    def buffer_updated(self, nbytes: int) -> None:
        room = TLS_FIRST_BYTES - len(self.first_bytes)
        if room > 0:
            self.first_bytes += bytes(self._given[: min(nbytes, room)])
        super().buffer_updated(nbytes)


def _tls_failure(raw: bytes, pipelined: bytes, error: BaseException) -> tuple[str, str]:
    """Why STARTTLS ended without TLS, and what was seen: the client's first bytes after
    the 220 (`raw`; else the lines it had pipelined behind STARTTLS) and the error."""
    seen = raw or pipelined
    if seen and seen[0] != TLS_HANDSHAKE_RECORD:
        first_line = seen.split(b"\n", 1)[0].rstrip(b"\r")
        return TLS_PLAINTEXT, first_line.decode("utf-8", "backslashreplace")
    if raw:
        if isinstance(error, ssl.SSLError):
            return TLS_HANDSHAKE, error.reason or str(error)
        return TLS_HANDSHAKE, "closed" if isinstance(error, ConnectionError) else str(error)
    # asyncio gives up on a handshake that never starts with ConnectionAbortedError
    timed_out = isinstance(error, ConnectionAbortedError)
    return TLS_SILENT, "timeout" if timed_out else "closed"


CAPTURED_DATA_LIMIT = 64 * 1024  # of a message's raw bytes kept in the capture


def _keep(sent: bytearray, line: bytes, limit: int) -> None:
    """Keep a message's raw bytes for the capture, up to a bound that protects memory.

    The capture shows a message (its first lines, its size); the stored copy holds it
    whole. Keeping every byte of every message made a long `serve` grow without bound.
    """
    room = min(limit + 4096, CAPTURED_DATA_LIMIT) - len(sent)
    if room > 0:
        sent += line[:room]


def _keep_lines(sent: bytearray, lines: list[bytes], limit: int) -> None:
    """_keep for several lines at once (joined only while there is room)."""
    if len(lines) == 1:
        _keep(sent, lines[0], limit)
    elif len(sent) < min(limit + 4096, CAPTURED_DATA_LIMIT):
        _keep(sent, b"".join(lines), limit)


def _unique_copies(folders: dict[str, str]) -> list[tuple[str, str]]:
    """One copy per local mailbox (you@ and YOU@ are one), one per relayed address."""
    seen: set[tuple[str, str]] = set()
    copies = []
    for address, folder in folders.items():
        identity = (folder, folder if folder != RELAY else address.lower())
        if identity not in seen:
            seen.add(identity)
            copies.append((address, folder))
    return copies


BODY_LINES = 200  # of a stored message's body, in its MessageStored event


def _body_lines(spool: MessageSpool, head: bytes) -> tuple[str, ...]:
    """The first lines of the body (after the first empty line), for lesson checks.

    Read from the spool, never the whole message: the lines of an accepted message hold
    at most TEXT_LINE_LIMIT octets with their CRLF, so BODY_LINES of them fit in that
    many times BODY_LINES; the piece read may end inside the line after them.
    """
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return ()
    wanted = BODY_LINES * TEXT_LINE_LIMIT
    body = spool.read(end + 4, wanted)
    lines = body.decode("utf-8", "replace").split("\r\n")
    if lines and lines[-1] == "" and len(body) < wanted:
        lines.pop()
    return tuple(lines[:BODY_LINES])


def _header_section(head: bytes) -> bytes:
    """The header section of a message's start, with the empty line that ends it."""
    section, sep, _body = head.partition(b"\r\n\r\n")
    return section + sep


def _sent_option(argument: str, name: str) -> str:
    """A MAIL/RCPT parameter as the client wrote it, for the 555 reply: `FOO=bar`."""
    for word in argument.split():  # the path itself never looks like NAME=value
        if word.partition("=")[0].upper() == name:
            return echo_safe(word, allow_utf8=False)
    return name


def _vrfy_address(argument: str, local_domain: str) -> str | None:
    """The address a VRFY asks about: `<a@b>` or `a@b`; a bare user name is local."""
    text = argument.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if not text or any(ch in text for ch in " <>\t"):
        return None
    if "@" not in text:
        text = f"{text}@{local_domain}"
    try:
        path = parse_path(f"TO:<{text}>", "TO:", allow_null=False, allow_postmaster=False)
    except PathError:
        return None
    return path.address
