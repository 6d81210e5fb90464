"""The SMTP sandbox without a screen: a raw session with any server, every reply explained.

The learner's lines go to the server exactly as typed (CRLF added), through the raw
client. The server is either a private teaching server on loopback (the default) or one
the learner names (a lab Postfix, a provider's submission port). The session state that
annotations need is kept here, on the client's side, from the replies alone: for a
server that is not smtp-tutor's own there is no capture, and nothing is assumed about its
reply texts. With the built-in server the capture adds what only the server knows: the
bytes it threw away after STARTTLS, the messages it stored and where.

Every wait has a timeout; every failure becomes one line (`Result.error`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tutor.client.client import (
    DEFAULT_TIMEOUT,
    TUTOR_HOSTNAME,
    HoldsClient,
    SmtpClient,
    SmtpClientError,
    SmtpConnectError,
    SmtpConnectionClosed,
    SmtpProtocolError,
    SmtpTimeout,
    SmtpTlsError,
    TapMark,
    TapRecord,
    TlsInfo,
)
from tutor.errors import UsageError, UserError
from tutor.server.capture import Capture, SessionRecord
from tutor.server.endpoints import BindError, MaildirError
from tutor.server.persona import Persona
from tutor.server.runner import TeachingServer
from tutor.smtp.authcodec import AuthDecoding, decode_auth
from tutor.smtp.events import Event, Exchange, ExchangeKind, MessageStored, TlsStarted
from tutor.smtp.session_state import SessionState
from tutor.smtp.wire import CRLF, Reply, host_port, is_loopback, split_command

if TYPE_CHECKING:
    from tutor.client.mitm import MitmDemo

DEFAULT_PORT = 25
EVENT_WAIT = 5.0  # how long to wait for the built-in server's record of something we saw
LATE_REPLY_WAIT = 1.0  # after pipelining past STARTTLS: does a reply still come?
# Replies nobody asked for, read before one command: a real server sends at most one (the
# idle timeout's 421); a server that keeps sending them is holding the sandbox.
MAX_UNSOLICITED = 10
# A reply nobody asked for may arrive in pieces: once its first bytes are in, the rest gets
# this long before the sandbox gives up on it and sends the learner's command.
PARTIAL_REPLY_WAIT = 0.5

# name -> (usage, what it does)
SLASH_COMMANDS: dict[str, tuple[str, str]] = {
    "/help": ("/help", "this list"),
    "/state": ("/state", "what the server knows now, and the extensions it offered"),
    "/mailbox": ("/mailbox", "the messages the built-in server stored"),
    "/tls": ("/tls", "the TLS facts of this connection: version, cipher, certificate"),
    "/mitm": (
        "/mitm",
        "a man in the middle on loopback: who refuses its certificate, who logs in anyway",
    ),
    "/wire": ("/wire", "the last exchange as it crossed the wire: text beside ciphertext"),
    "/b64": ("/b64 TEXT", "base64 of TEXT (\\0 is a NUL byte); decoded too if it is base64"),
    "/plain": ("/plain USER PASS", "the AUTH PLAIN argument, base64(\\0USER\\0PASS)"),
    "/pipe": ("/pipe CMD ; CMD …", "send several commands in one write, then read the replies"),
    "/lf": ("/lf TEXT", "send TEXT ended by LF alone (as plain nc does), not CRLF"),
    "/reset": ("/reset", "close this connection and open a new session"),
    "/quit": ("/quit", "leave (send QUIT first if you want to be polite)"),
}


class SlashError(ValueError):
    """A sandbox command that cannot run as typed; the message says what to type."""


@dataclass(frozen=True)
class SlashCommand:
    name: str
    argument: str  # the rest of the line, stripped

    @property
    def words(self) -> list[str]:
        return self.argument.split()


def parse_slash(line: str) -> SlashCommand:
    """`/b64 hello` -> SlashCommand("/b64", "hello"); SlashError for anything unusable."""
    name, _, argument = line.strip().partition(" ")
    name = name.lower()
    if name not in SLASH_COMMANDS:
        raise SlashError(f"no sandbox command {name!r}: /help lists them")
    if name == "/lf":  # the text exactly as typed after "/lf ", spaces and all
        return SlashCommand(name, line.lstrip().partition(" ")[2].rstrip("\r\n"))
    command = SlashCommand(name, argument.strip())
    usage = SLASH_COMMANDS[name][0]
    wanted = {"/b64": 1, "/pipe": 1, "/plain": 2}.get(name, 0)
    if wanted == 0 and command.argument:
        raise SlashError(f"{name} takes no argument")
    if name == "/plain" and len(command.argument.split(maxsplit=1)) < 2:
        raise SlashError(f"usage: {usage}")
    if wanted and not command.argument:
        raise SlashError(f"usage: {usage}")
    return command


def pipe_lines(argument: str) -> list[str]:
    """The commands of `/pipe A ; B ; C`; DATA may only come last (RFC 2920 §3.1)."""
    lines = [part.strip() for part in argument.split(";")]
    if any(not line for line in lines):
        raise SlashError("usage: /pipe CMD ; CMD … (no empty commands)")
    for line in lines[:-1]:
        if split_command(line)[0] == "DATA":
            raise SlashError(
                "in /pipe, DATA must come last (RFC 2920 §3.1): "
                "after its 354 every following line is message text"
            )
    return lines


# --- where to connect ----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    builtin: bool = False  # the private teaching server (host and port filled in on open)
    implicit_tls: bool = False

    @property
    def where(self) -> str:
        return host_port(self.host, self.port)

    @property
    def loopback(self) -> bool:
        return self.builtin or is_loopback(self.host)


BUILTIN = Target("127.0.0.1", 0, builtin=True)


def builtin_target(*, implicit_tls: bool = False) -> Target:
    """The private teaching server; with implicit_tls, its port-465-style listener."""
    return Target(BUILTIN.host, 0, builtin=True, implicit_tls=implicit_tls)


def parse_target(text: str, *, implicit_tls: bool = False) -> Target:
    """HOST, HOST:PORT, [IPv6]:PORT or a bare IPv6 address; the port defaults to 25."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError(f"--connect {text!r}: missing ']' after the IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise UsageError(f"--connect {text!r}: expected [ADDRESS]:PORT")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise UsageError("--connect needs a host, e.g. --connect 127.0.0.1:2525")
    port = DEFAULT_PORT
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise UsageError(f"--connect {text!r}: the port must be a number from 1 to 65535")
        port = int(port_text)
    return Target(host, port, implicit_tls=implicit_tls)


def leaving_notice(target: Target) -> str:
    return f"connecting to {target.where}: this leaves your machine"


# --- what one action produced ----------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """One exchange to show, with what the server knew before it (for the annotation)."""

    exchange: Exchange
    before: SessionState
    auth: AuthDecoding | None = None  # credentials it carried, decoded


@dataclass
class Result:
    shown: list[Shown] = field(default_factory=list)
    tls: TlsInfo | None = None  # TLS started in this action
    notes: list[str] = field(default_factory=list)  # facts worth a line of their own
    events: list[Event] = field(default_factory=list)  # built-in server: stored, bounced
    data_line: str | None = None  # a message line sent (no reply comes until the dot)
    data_ending: bytes = CRLF  # how that line ended on the wire (LF alone after /lf)
    error: str = ""  # one line: how the connection failed
    closed: bool = False  # the session is over


# --- the session ---------------------------------------------------------------------------


class Sandbox(HoldsClient):
    """One raw SMTP session at a time with the target; `reset()` opens the next."""

    def __init__(
        self,
        target: Target = BUILTIN,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        insecure: bool = False,
        cafile: Path | None = None,
        maildir: Path | None = None,
        persona: Persona | None = None,
        server: TeachingServer | None = None,
        world_host: str | None = None,
        capture: Capture | None = None,
    ) -> None:
        self.target = target
        # `sandbox --to`: the world MTA's host name, and its record of its sessions.
        self.world_host = world_host
        self._world_capture = capture
        self.timeout = timeout
        self.insecure = insecure
        self.cafile = cafile  # --cafile: check a --connect server against this CA alone
        self.maildir = maildir
        self.persona = persona or Persona()
        self.server = server
        self._own_server = False
        self.client: SmtpClient | None = None
        self.state = SessionState()
        self.last_tap: list[TapRecord] = []
        self._record: SessionRecord | None = None
        self._seen = 0
        self._message = bytearray()  # message lines sent since the 354
        self._message_mark = TapMark()
        self._after_bare_lf = False  # the last message line ended in LF alone (/lf)
        self._auth_answers = 0

    # --- facts ------------------------------------------------------------------------

    @property
    def builtin(self) -> bool:
        return self.target.builtin

    @property
    def reads_mailbox(self) -> bool:
        """Whether /mailbox can show what the server stored: the built-in server's, or a
        world MTA's (its domain's Maildir root is `maildir`)."""
        return self.maildir is not None and (self.builtin or self.world_host is not None)

    @property
    def server_name(self) -> str:
        """The name the server's certificate should carry."""
        if self.builtin:
            return TUTOR_HOSTNAME
        return self.world_host or self.target.host.strip("[]")

    @property
    def tls_info(self) -> TlsInfo | None:
        return self.client.tls_info if self.connected and self.client is not None else None

    @property
    def verify(self) -> bool:
        """Check every server's certificate unless told not to (--insecure)."""
        return not self.insecure

    @property
    def ca_file(self) -> Path | None:
        """The built-in server is checked against the smtp-tutor local CA, nothing else;
        another server against --cafile if given, else the system's store."""
        if not self.verify:
            return None
        if not self.builtin:
            return self.cafile
        from tutor.server.tlsmaterial import trusted_ca

        return trusted_ca(self.server.tls_context if self.server is not None else None)

    @property
    def address(self) -> tuple[str, int]:
        """Where this session connects (the built-in server's port once it runs)."""
        if not self.builtin:
            return self.target.host, self.target.port
        assert self.server is not None, "open() starts the built-in server"
        if self.target.implicit_tls:
            listener = next(item for item in self.server.listeners if item.implicit_tls)
            return listener.host, listener.port
        return self.server.address

    @property
    def where(self) -> str:
        host, port = self.address
        return Target(host, port).where

    # --- opening and closing ------------------------------------------------------------

    def open(self, client: SmtpClient | None = None) -> Result:
        """Start the built-in server if needed, connect, read the greeting. With `client`
        (`sandbox --to`), the session is that connection, its greeting already read.

        UserError (one line) when the first connection fails: there is nothing to show.
        """
        if client is not None:
            return self._begin(client)
        if self.builtin and self.server is None:
            self.server = TeachingServer(
                self.maildir or _default_maildir(),
                self.persona,
                tls_port=0 if self.target.implicit_tls else None,
            )
            self._own_server = True
            try:
                self.server.start()
            except (BindError, MaildirError) as error:
                self.server = None
                raise UserError(f"cannot start the built-in server: {error.strerror}") from None
        result = self._connect()
        if result.error:
            raise UserError(result.error)
        return result

    def reset(self) -> Result:
        """A new connection: a new session, and the server remembers nothing of the old."""
        self._drop_client()
        return self._connect()

    def close(self) -> None:
        self._drop_client()
        if self._own_server and self.server is not None:
            self.server.stop()
            self.server = None

    def _drop_client(self) -> None:
        self._after_bare_lf = False
        self._message.clear()
        if self.client is not None:
            self.client.close()
            self.client = None

    def _connect(self) -> Result:
        self.state = SessionState()
        self._message.clear()
        host, port = self.address
        try:
            client = SmtpClient.connect(
                host,
                port,
                timeout=self.timeout,
                implicit_tls=self.target.implicit_tls,
                verify=self.verify,
                cafile=self.ca_file,
                server_hostname=self.server_name,
            )
        except SmtpClientError as error:
            return Result(error=self._opening_error(error), closed=True)
        return self._begin(client)

    def _begin(self, client: SmtpClient) -> Result:
        """A new session on a connection whose greeting the client has read."""
        self.state = SessionState()
        self._message.clear()
        self.client = client
        self.last_tap = list(client.tap)
        self._find_record()
        result = Result(tls=client.tls_info)
        self.state.tls = client.tls_active  # implicit TLS: encrypted before the greeting
        self._record_exchange(result, "greeting", b"", client.banner, tls=client.tls_active)
        if client.tls_info is not None:
            result.notes.append(
                "Implicit TLS (RFC 8314): the handshake came before the greeting, so not one "
                "byte of SMTP crossed the network in plaintext. No STARTTLS here."
            )
        self._collect(result)
        return result

    def _opening_error(self, error: SmtpClientError) -> str:
        where = self.where
        if isinstance(error, SmtpConnectError):
            if "nothing is listening" in str(error):
                return f"{error}: the connection was refused (no server on that port)"
            return str(error)
        implicit = self.target.implicit_tls
        if isinstance(error, SmtpTimeout):
            if str(error).startswith("no answer from"):
                return f"{error}: the host is unreachable, or a firewall drops the packets"
            hint = "" if implicit else "; a port with implicit TLS (465) waits for --implicit-tls"
            return (
                f"{where} accepted the connection but sent no greeting within "
                f"{self.timeout:g} s: a silent port, or a slow server{hint}"
            )
        if isinstance(error, SmtpTlsError):
            hint = ""
            if error.verify_message:
                hint = "; --insecure connects without checking (and says so)"
            elif implicit:
                hint = "; if this port starts in plaintext, leave out --implicit-tls"
            return f"{where}: {error}{hint}"
        if isinstance(error, SmtpProtocolError):
            return f"{where} does not speak SMTP: {error}"
        return f"{where}: {error}"

    @property
    def _capture(self) -> Capture | None:
        """The server's own record of its sessions: the built-in server's or a world MTA's."""
        if self.builtin:
            return self.server.capture if self.server is not None else None
        return self._world_capture

    def _find_record(self) -> None:
        self._record = None
        self._seen = 0
        capture = self._capture
        if capture is None or self.client is None:
            return
        host, port = self.client.local_address
        capture.wait_for(lambda: capture.find_peer(host, port) is not None, EVENT_WAIT)
        self._record = capture.find_peer(host, port)

    # --- the learner's lines ----------------------------------------------------------------

    def send(self, line: str) -> Result:
        """One line as typed: a command, an AUTH answer, or (after 354) a message line."""
        client = self._usable()
        if isinstance(client, Result):
            return client
        result = Result()
        if client.in_data:
            return self._data_line(client, line)
        mark = client.mark()
        self._take_unsolicited(client, result)
        if not self.connected:
            self.last_tap = client.tap_since(mark)
            return self._closed(result)
        kind: ExchangeKind = "auth" if self.state.auth_pending else "command"
        auth = self._auth_decoding(line, kind)
        tls_now = client.tls_active
        try:
            reply = client.send_line(line)
        except (SmtpClientError, ValueError) as error:
            self.last_tap = client.tap_since(mark)
            return self._failed(result, error)
        self._record_exchange(result, kind, _encoded(line) + CRLF, reply, tls=tls_now, auth=auth)
        if kind == "command" and _is_starttls(line) and reply.code == 220:
            self._upgrade(client, result, pipelined=[])
        self.last_tap = client.tap_since(mark)
        self._collect(result)
        return self._finish(result)

    def pipeline(self, lines: list[str]) -> Result:
        """Several commands in one write (RFC 2920), then their replies, in order.

        A STARTTLS among them that gets 220 starts TLS at once: the commands after it were
        sent in plaintext before the handshake, and a correct server throws them away
        (RFC 3207 §4.2).
        """
        client = self._usable()
        if isinstance(client, Result):
            return client
        result = Result()
        if client.in_data:
            result.error = "in DATA every line is message text: end the message with '.' first"
            return result
        mark = client.mark()
        self._take_unsolicited(client, result)
        if not self.connected:
            self.last_tap = client.tap_since(mark)
            return self._closed(result)
        tls_now = client.tls_active
        try:
            client.send_raw(b"".join(_encoded(line) + CRLF for line in lines))
            for index, line in enumerate(lines):
                kind: ExchangeKind = "auth" if self.state.auth_pending else "command"
                auth = self._auth_decoding(line, kind)
                reply = client.read_reply()
                self._record_exchange(
                    result, kind, _encoded(line) + CRLF, reply, tls=tls_now, auth=auth
                )
                if kind == "command" and _is_starttls(line) and reply.code == 220:
                    self._upgrade(client, result, pipelined=lines[index + 1 :])
                    break
                if self.state.closed:
                    break
        except SmtpClientError as error:
            self.last_tap = client.tap_since(mark)
            return self._failed(result, error)
        self.last_tap = client.tap_since(mark)
        self._collect(result)
        return self._finish(result)

    def _usable(self) -> SmtpClient | Result:
        if self.client is None or self.client.closed:
            return Result(error="not connected: /reset opens a new session", closed=True)
        return self.client

    def send_bare_lf(self, text: str) -> Result:
        """One line ended by LF alone, as plain nc sends it: a command is still answered;
        in DATA it is message text, and a dot on the next line does not end the message
        (only CRLF . CRLF does, RFC 5321 §4.1.1.4)."""
        client = self._usable()
        if isinstance(client, Result):
            return client
        data = _encoded(text) + b"\n"
        if b"\r" in data or b"\n" in data[:-1]:
            return Result(error="a line cannot hold CR or LF of its own")
        if client.in_data:
            if not self._message:
                self._message_mark = client.mark()
            try:
                client.send_raw(data)
            except SmtpClientError as error:
                self.last_tap = client.tap_since(self._message_mark)
                return self._failed(Result(), error)
            self._message += data
            self._after_bare_lf = True
            result = Result(data_line=text, data_ending=b"\n")
            self.last_tap = client.tap_since(self._message_mark)
            return self._finish(result)
        result = Result()
        mark = client.mark()
        self._take_unsolicited(client, result)
        tls_now = client.tls_active
        try:
            client.send_raw(data)
            reply = client.read_reply()
        except SmtpClientError as error:
            self.last_tap = client.tap_since(mark)
            return self._failed(result, error)
        self._record_exchange(result, "command", data, reply, tls=tls_now)
        self.last_tap = client.tap_since(mark)
        self._collect(result)
        return self._finish(result)

    def _data_line(self, client: SmtpClient, line: str) -> Result:
        result = Result()
        if not self._message:
            self._message_mark = client.mark()
        if line == "." and self._after_bare_lf:
            # LF . CRLF is message text, not the end: say so instead of waiting for a reply.
            try:
                client.send_raw(b"." + CRLF)
            except SmtpClientError as error:
                self.last_tap = client.tap_since(self._message_mark)
                return self._failed(result, error)
            self._message += b"." + CRLF
            self._after_bare_lf = False
            result.data_line = line
            result.notes.append(
                "that dot did not end the message: the line before it ended in LF alone, so "
                "the server has not seen CRLF . CRLF and keeps the dot as text. "
                "Type . again to end the message."
            )
            self.last_tap = client.tap_since(self._message_mark)
            return self._finish(result)
        self._after_bare_lf = False
        try:
            if line == ".":
                sent = bytes(self._message) + b"." + CRLF
                self._message.clear()
                reply = client.end_data()
                self._record_exchange(result, "data", sent, reply, tls=client.tls_active)
                if reply.code == 250:
                    self._wait_for_stored()
            else:
                client.send_data_line(line)
                self._message += _encoded(line) + CRLF
                result.data_line = line
        except SmtpClientError as error:
            self.last_tap = client.tap_since(self._message_mark)
            return self._failed(result, error)
        self.last_tap = client.tap_since(self._message_mark)
        if result.data_line is None:
            self._collect(result)
        return self._finish(result)

    def _take_unsolicited(self, client: SmtpClient, result: Result) -> None:
        """Replies nobody asked for (an idle-timeout 421, a late answer) come first."""
        taken = 0
        while client.pending():
            if taken == MAX_UNSOLICITED:
                client.close()
                result.error = (
                    f"the server sent more than {MAX_UNSOLICITED} replies nobody asked for: "
                    "the tutor closed the connection; /reset opens a new session"
                )
                result.closed = True
                return
            try:
                reply = self._next_unsolicited(client)
            except SmtpClientError as error:
                self._failed(result, error)
                return
            if reply is None:
                return
            taken += 1
            self._record_exchange(result, "notice", b"", reply, tls=client.tls_active)
            if self.state.closed:
                client.close()
                return

    @staticmethod
    def _next_unsolicited(client: SmtpClient) -> Reply | None:
        """The next reply nobody asked for; None when no whole reply comes in time."""
        try:
            return client.read_reply(timeout=0)
        except SmtpTimeout:
            if not client.partial_reply():
                return None  # TLS housekeeping (a session ticket), no reply in it
        try:
            return client.read_reply(timeout=PARTIAL_REPLY_WAIT)
        except SmtpTimeout:
            return None  # a torn line left unfinished: the next read reports it

    # --- STARTTLS ---------------------------------------------------------------------------

    def _upgrade(self, client: SmtpClient, result: Result, *, pipelined: list[str]) -> None:
        try:
            result.tls = client.starttls(
                verify=self.verify, cafile=self.ca_file, server_hostname=self.server_name
            )
        except SmtpClientError as error:
            self._tls_failed(client, result, error)
            return
        result.notes.append(
            "TLS is on, and the server has forgotten everything said before it, since an "
            "attacker could have tampered with the plaintext part: send EHLO again "
            "(RFC 3207 §4.2). Its reply may differ: AUTH is often offered only now."
        )
        if pipelined:
            self._pipelined_after_starttls(client, result, pipelined)

    def _tls_failed(self, client: SmtpClient, result: Result, error: SmtpClientError) -> None:
        """STARTTLS got its 220 but TLS did not start: the client closed the connection.

        The state said TLS from the 220 on; it must not outlive a handshake that never
        completed, or the next AUTH would look safe while nothing would carry it.
        """
        client.close()  # the client closed it on every TLS failure; this makes it certain
        self.state.tls = False
        self.state.greeting_forgotten = False
        self.state.closed = True
        hint = ""
        if isinstance(error, SmtpTlsError) and error.verify_message:
            hint = " (--insecure connects without checking, and says so)"
        result.error = (
            f"TLS did not start: {error}{hint}. The connection is closed: nothing more goes "
            "out on it, encrypted or not; /reset opens a new session"
        )
        result.closed = True

    def mitm_demo(self) -> MitmDemo:
        """Two of the tutor's clients through a man in the middle in front of the built-in
        server (tutor/client/mitm.py); this session is left as it was. UserError for other
        servers."""
        if not self.builtin or self.server is None:
            raise UserError(
                "/mitm works with the built-in server only: the middle needs the tutor's "
                "own CA and impostor certificate"
            )
        from tutor.client.mitm import run_demo
        from tutor.server.tlsmaterial import ensure_material, server_context

        hostname = self.persona.hostname
        ca = trusted_ca_dir(self.server)
        material = ensure_material(hostname, ca)
        return run_demo(
            self.server.address,
            ca_file=material.ca_file,
            genuine_cert=material.cert,
            impostor=server_context(hostname, ca, impostor=True),
            impostor_cert=material.impostor_cert,
            timeout=self.timeout,
        )

    def _pipelined_after_starttls(
        self, client: SmtpClient, result: Result, pipelined: list[str]
    ) -> None:
        size = sum(len(_encoded(line)) + 2 for line in pipelined)
        count = f"{len(pipelined)} command{'s' if len(pipelined) > 1 else ''}"
        sent = f"{count} ({size} bytes) you pipelined after STARTTLS went out in plaintext"
        capture = self._capture
        if self._record is not None and capture is not None:
            record = self._record
            capture.wait_for(
                lambda: any(isinstance(e, TlsStarted) for e in record.events[self._seen :]),
                EVENT_WAIT,
            )
            started = [e for e in record.events if isinstance(e, TlsStarted)]
            thrown = started[-1].discarded if started else 0
            result.notes.append(
                f"{sent}, before the handshake. The server threw away {thrown} bytes of "
                "them unread, as RFC 3207 §4.2 requires: no reply will ever come for them."
            )
            return
        try:
            late = client.read_reply(timeout=min(LATE_REPLY_WAIT, self.timeout))
        except SmtpTimeout:
            result.notes.append(
                f"{sent}, before the handshake. No reply came for them: the server threw "
                "them away, as RFC 3207 §4.2 requires."
            )
            return
        self._record_exchange(result, "command", _encoded(pipelined[0]) + CRLF, late, tls=True)
        result.notes.append(
            f"{sent}, and the server answered it inside TLS: it let plaintext commands "
            "into the encrypted session, the STARTTLS command-injection flaw (CVE-2011-0411)."
        )

    # --- bookkeeping --------------------------------------------------------------------------

    def _auth_decoding(self, line: str, kind: ExchangeKind) -> AuthDecoding | None:
        if kind == "auth":
            decoded = decode_auth(self.state.auth_mechanism or "", line, self._auth_answers)
            self._auth_answers += 1
            return decoded
        verb, argument = split_command(line)
        if verb != "AUTH":
            return None
        mechanism, _, initial = argument.partition(" ")
        self._auth_answers = 1 if initial.strip() else 0
        return decode_auth(mechanism, initial, 0) if initial.strip() else None

    def _record_exchange(
        self,
        result: Result,
        kind: ExchangeKind,
        sent: bytes,
        reply: Reply,
        *,
        tls: bool,
        auth: AuthDecoding | None = None,
    ) -> None:
        exchange = Exchange(0, kind, sent, tuple(reply.wire_lines()), tls)
        before = self.state.copy()
        self.state.feed_exchange(exchange)
        result.shown.append(Shown(exchange, before, auth))

    def _wait_for_stored(self) -> None:
        """A world MTA runs in a process of its own: its record of the message it just
        stored comes up a pipe a moment after its 250, so wait for it (the built-in
        server has recorded it before it replied)."""
        record, capture = self._record, self._capture
        if record is None or capture is None or self.builtin:
            return
        capture.wait_for(
            lambda: any(isinstance(e, MessageStored) for e in record.events[self._seen :]),
            EVENT_WAIT,
        )

    def _collect(self, result: Result) -> None:
        """The built-in server's own record: messages stored, bounces sent."""
        record = self._record
        if record is None:
            return
        new = record.events[self._seen :]
        self._seen += len(new)
        result.events += [e for e in new if not isinstance(e, Exchange)]

    def _failed(self, result: Result, error: Exception) -> Result:
        message = str(error)
        if isinstance(error, SmtpConnectionClosed):
            message += ": the session is over; /reset opens a new one"
            result.closed = True
        elif isinstance(error, SmtpTimeout):
            if self.client is not None and self.client.closed:
                message += ": the connection is closed; /reset opens a new session"
            else:
                message += (
                    "; the connection is still open and the reply may yet come "
                    "(NOOP checks; /reset starts over)"
                )
        elif isinstance(error, SmtpTlsError):
            if error.verify_message:
                message += "; --insecure connects without checking (and says so)"
            result.closed = True
        elif isinstance(error, SmtpProtocolError):
            if self.client is not None and self.client.closed:  # a reply over the limits
                message += ". This does not look like an SMTP server; /reset opens a new session"
            else:
                message += ": this does not look like an SMTP server"
        result.error = message
        if self.client is not None and self.client.closed:
            result.closed = True
        return result

    def _closed(self, result: Result) -> Result:
        result.closed = True
        self.state.closed = True
        if not result.error:
            result.error = "the server closed the connection: /reset opens a new session"
        return result

    def _finish(self, result: Result) -> Result:
        if self.state.closed or (self.client is not None and self.client.closed):
            result.closed = True
            self.state.closed = True  # the status says so, whoever closed it
            self._drop_client()
        return result


def _encoded(line: str) -> bytes:
    return line.encode("utf-8", "surrogateescape")


def _is_starttls(line: str) -> bool:
    return split_command(line)[0] == "STARTTLS"


def _default_maildir() -> Path:
    from tutor.paths import default_maildir

    return default_maildir()


def trusted_ca_dir(server: TeachingServer) -> Path:
    """The directory of the TLS material the built-in server is running with."""
    from tutor.server.tlsmaterial import trusted_ca

    return trusted_ca(server.tls_context).parent
