"""Drive one lesson against a private teaching server: the learner's lines in, events out.

The driver sends exactly what the learner typed (CRLF added) with the raw client, then
reads what the *server* recorded for that session from its capture — the truth the
runner judges. It knows nothing of the terminal: the UI renders the Turns it returns.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tutor.client.client import HoldsClient, SmtpClient, SmtpClientError, TapRecord, TlsInfo
from tutor.engine.model import Lesson, Step
from tutor.engine.runner import LessonRun, Outcome
from tutor.errors import UserError
from tutor.server.capture import Capture, SessionRecord
from tutor.server.persona import Persona
from tutor.server.process import lesson_server
from tutor.smtp.events import (
    Authenticated,
    BareLineFeed,
    BounceSent,
    Event,
    Exchange,
    MessageStored,
    SessionClosed,
    TlsStarted,
)
from tutor.smtp.wire import host_port

EVENT_WAIT = 5.0  # how long to wait for the server's record of a reply we already hold
# Sessions in a row that may fail to open (no connection, or no 220 greeting) before the
# lesson stops: a connect step retries at once, so without a limit it would loop for ever.
CONNECT_TRIES = 3


class ConnectFailed(UserError):
    """The lesson's server cannot be reached: the lesson stops with this line."""


@dataclass
class Turn:
    """What one action of the learner caused: bytes sent, events recorded, step outcomes."""

    sent: bytes = b""
    tap: list[TapRecord] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    tls: TlsInfo | None = None  # STARTTLS succeeded in this turn: what was negotiated
    error: str = ""  # the connection failed: one line saying how
    note: str = ""  # something the learner should know about how this turn was done
    closed: bool = False  # the session is over (QUIT, 421, or the connection dropped)
    # World lessons: the DNS server's answer to the learner's dig (a dns.message.Message),
    # and what the learner's own queue did (one line per attempt, the DSN it delivered).
    dns_reply: Any = None
    timeline: list[str] = field(default_factory=list)
    dsn_where: tuple[Path, str] | None = None  # (Maildir root, folder/key) of the DSN
    inbox: tuple[Path, str] | None = None  # (Maildir root, folder/N) of a message read

    @property
    def exchanges(self) -> list[Exchange]:
        return [e for e in self.events if isinstance(e, Exchange)]

    @property
    def stored(self) -> list[MessageStored]:
        return [e for e in self.events if isinstance(e, MessageStored)]


def persona_for(lesson: Lesson) -> Persona:
    return Persona().with_changes(**lesson.persona)


class LessonServer(Protocol):
    """What the driver needs of a teaching server: in this process (TeachingServer,
    validate's) or in its own (ServerProcess with mirror=True, a learner's lesson)."""

    @property
    def persona(self) -> Persona: ...

    @property
    def tls_context(self) -> ssl.SSLContext | None: ...

    @property
    def address(self) -> tuple[str, int]: ...

    @property
    def capture(self) -> Capture: ...

    def start(self) -> Any: ...

    def stop(self) -> None: ...

    def update_persona(self, **changes: Any) -> None: ...


class LessonDriver(HoldsClient):
    def __init__(
        self, lesson: Lesson, run: LessonRun, maildir: Path, server: LessonServer | None = None
    ) -> None:
        self.lesson = lesson
        self.run = run
        # A lesson's own server runs in its own process (the prelaunched one, if any).
        self.server: LessonServer = server or self._own(maildir)
        self._own_server = server is None
        self.client: SmtpClient | None = None
        self.record: SessionRecord | None = None
        self._seen = 0
        self.sessions = 0
        self.history: list[Event] = []  # every event of every session, for the questions
        self._after_bare_lf = False  # the last message line ended in LF alone (/lf)
        self._failed_connects = 0  # in a row: see CONNECT_TRIES

    def _own(self, maildir: Path) -> LessonServer:
        return lesson_server(maildir, persona_for(self.lesson))

    # --- connection ---------------------------------------------------------------------

    def start(self, first: Step | None = None) -> Turn:
        """Start the server (if it is ours) and open the first session."""
        if self._own_server:
            self.server.start()
        if first is not None and first.kind == "connect":
            return self.connect_for(first)
        return self.connect()

    def connect(self, source: str = "") -> Turn:
        """Open a new session: the server greets it and the runner judges the greeting.

        `source` is a local address to connect from (127.0.0.2, say); where the system
        cannot use it, the driver connects normally and the Turn says so in `note`.
        """
        self.close_client()
        host, port = self.server.address
        note = ""
        try:
            try:
                self.client = SmtpClient.connect(host, port, source_address=source or None)
            except SmtpClientError:
                if not source:
                    raise
                note = (
                    f"this system cannot connect from {source}, so the tutor connected "
                    "from the usual loopback address instead"
                )
                self.client = SmtpClient.connect(host, port)
        except SmtpClientError as error:
            return self._failed(Turn(error=str(error), closed=True))
        self.sessions += 1
        local = self.client.local_address
        capture = self.server.capture
        capture.wait_for(lambda: capture.find_peer(local[0], local[1]) is not None, EVENT_WAIT)
        self.record = capture.find_peer(local[0], local[1])
        self._seen = 0
        turn = Turn(note=note)
        self._collect(turn, lambda events: any(isinstance(e, Exchange) for e in events))
        if self.client.banner.code != 220:  # 421, 554: the server is not taking this session
            return self._failed(turn)
        self._failed_connects = 0
        return turn

    def _failed(self, turn: Turn) -> Turn:
        """One more session that did not open; past CONNECT_TRIES in a row, stop."""
        banner = self.client.banner if self.client is not None else None
        turn.closed = True
        self.close_client()
        self._failed_connects += 1
        if self._failed_connects < CONNECT_TRIES:
            return turn
        why = turn.error or (f"it greeted with {banner.code}" if banner else "no greeting")
        raise ConnectFailed(
            f"could not open a session with the lesson's server at "
            f"{host_port(*self.server.address)}, "
            f"{CONNECT_TRIES} tries in a row ({why}); the lesson stops here"
        )

    def connect_for(self, step: Step) -> Turn:
        """A connect step: switch the relay setting if it says so, then connect."""
        if step.open_relay is not None:
            self.set_relay(step.open_relay)
        return self.connect(step.source)

    def set_relay(self, open_relay: bool) -> None:
        """Switch the server's relay setting (a lesson compares closed and open)."""
        self.server.update_persona(open_relay=open_relay)

    def send_pipeline(self, lines: tuple[str, ...]) -> Turn:
        """PIPELINING (RFC 2920): every line in one write, then the replies, in order."""
        if self.client is None or self.client.closed:
            return Turn(error="not connected", closed=True)
        client = self.client
        mark = client.mark()
        data = b"".join(line.encode("utf-8", "surrogateescape") + b"\r\n" for line in lines)
        turn = Turn(sent=data)
        try:
            client.send_raw(data)
            for _ in lines:
                client.read_reply()
        except SmtpClientError as error:
            turn.error = str(error)
        turn.tap = client.tap_since(mark)
        count = len(lines)
        self._collect(
            turn,
            lambda events: (
                sum(
                    1
                    for e in events
                    if isinstance(e, Exchange) and e.answered and e.kind == "command"
                )
                >= count
            ),
        )
        if turn.error or client.closed:
            turn.closed = True
            self.close_client()
        return turn

    def close_client(self) -> None:
        self._after_bare_lf = False
        if self.client is not None:
            self.client.close()
            self.client = None

    def close(self) -> None:
        self.close_client()
        if self._own_server:
            self.server.stop()

    # --- the learner's lines ------------------------------------------------------------

    def send(self, line: str) -> Turn:
        """Send one line as typed: a command, or a message line while in DATA."""
        if self.client is None or self.client.closed:
            return Turn(error="not connected", closed=True)
        client = self.client
        mark = client.mark()
        turn = Turn(sent=line.encode("utf-8", "surrogateescape") + b"\r\n")
        try:
            if client.in_data:
                if line == "." and self._after_bare_lf:
                    # The line before ended in LF alone, so this is LF . CRLF, not
                    # CRLF . CRLF: message text, not the end (RFC 5321 §4.1.1.4).
                    client.send_raw(b".\r\n")
                    self._after_bare_lf = False
                    turn.tap = client.tap_since(mark)
                    turn.note = (
                        "that dot did not end the message: the line before it ended in LF "
                        "alone, so the server has not seen CRLF . CRLF and keeps the dot as "
                        "message text. Type . again to end the message."
                    )
                    return turn
                if line == ".":
                    client.end_data()
                else:
                    client.send_data_line(line)
                    self._after_bare_lf = False
                    turn.tap = client.tap_since(mark)
                    return turn  # no reply inside DATA: nothing to judge yet
            else:
                reply = client.send_line(line)
                if reply.code == 220 and line.split(" ", 1)[0].upper() == "STARTTLS":
                    # The server said "go ahead": the handshake happens on this socket now,
                    # checked against the smtp-tutor local CA, as a mail client must.
                    # The name checked is the host's own: smtp.tutor.test in the world.
                    turn.tls = client.starttls(
                        server_hostname=self.server.persona.hostname,
                        cafile=self._trusted_ca(),
                    )
        except SmtpClientError as error:
            turn.error = str(error)
        except ValueError as error:  # a line holding CR or LF: the client refuses it
            turn.error = str(error)
            return turn
        turn.tap = client.tap_since(mark)
        ready = self._tls_recorded if turn.tls is not None else self._reply_recorded
        self._collect(turn, ready)
        last = client.last_reply
        # 221 (QUIT) and 421 always come with the server hanging up (RFC 5321 §3.8).
        if turn.error or client.closed or (last is not None and last.code in (221, 421)):
            turn.closed = True
            self.close_client()
        return turn

    def _trusted_ca(self) -> Path:
        from tutor.server.tlsmaterial import trusted_ca

        return trusted_ca(self.server.tls_context, self.server.persona.hostname)

    def send_bare_lf(self, line: str) -> Turn:
        """Send one line ended by LF alone, as plain `nc` does, to see what the server makes
        of it: a command is still answered; in DATA no reply comes, and a lone dot with a
        bare LF does not end the message (RFC 5321 §4.1.1.4)."""
        if self.client is None or self.client.closed:
            return Turn(error="not connected", closed=True)
        client = self.client
        data = line.encode("utf-8", "surrogateescape") + b"\n"
        if b"\r" in data or b"\n" in data[:-1]:
            return Turn(error="a line cannot hold CR or LF of its own")
        mark = client.mark()
        turn = Turn(sent=data)
        try:
            client.send_raw(data)
            if client.in_data:  # no reply: the server notes the first bare LF of a session
                self._after_bare_lf = True
                turn.tap = client.tap_since(mark)
                if not self._bare_lf_noted(in_data=True):
                    self._collect(turn, lambda events: any(_bare_lf(e, True) for e in events))
                return turn
            client.read_reply()
        except SmtpClientError as error:
            turn.error = str(error)
        turn.tap = client.tap_since(mark)
        self._collect(turn, self._reply_recorded)
        if turn.error or client.closed:
            turn.closed = True
            self.close_client()
        return turn

    def _bare_lf_noted(self, *, in_data: bool) -> bool:
        record = self.record
        return record is not None and any(_bare_lf(e, in_data) for e in record.events)

    def _tls_recorded(self, events: list[Event]) -> bool:
        return any(isinstance(e, (TlsStarted, SessionClosed)) for e in events)

    def _reply_recorded(self, events: list[Event]) -> bool:
        """The reply is in the capture, with the event it brings about (a stored message,
        the AUTH result), which the server publishes right after it."""
        for index, event in enumerate(events):
            if isinstance(event, SessionClosed):
                return True
            if isinstance(event, Exchange) and event.answered:
                promised = promised_event(event)
                return promised is None or any(isinstance(e, promised) for e in events[index:])
        return False

    def _collect(self, turn: Turn, ready: object) -> None:
        """Take the session's new events from the capture and let the runner judge them."""
        record = self.record
        if record is None:
            return
        capture = self.server.capture
        assert callable(ready)
        capture.wait_for(lambda: bool(ready(record.events[self._seen :])), EVENT_WAIT)
        self._wait_for_bounces(record)
        new = record.events[self._seen :]
        self._seen += len(new)
        self._observe(turn, new)
        recheck = self.run.recheck()
        if recheck is not None:
            turn.outcomes.append(recheck)

    def _observe(self, turn: Turn, events: list[Event]) -> None:
        """Events into the turn and the history, each judged by the runner."""
        turn.events += events
        self.history += events
        for event in events:
            outcome = self.run.observe(event)
            if outcome is not None:
                turn.outcomes.append(outcome)

    def _wait_for_bounces(self, record: SessionRecord) -> None:
        """A relayed message that will fail sends its bounce just after the 250: wait for it."""
        stored = [e for e in record.events[self._seen :] if isinstance(e, MessageStored)]
        if not stored:
            return
        # Here, not at the top: the delivery code it lives with is not needed before a
        # message is stored (a lesson's first screen comes sooner without it).
        from tutor.server.bounce import delivery_failures

        expected = {m.queue_id for m in stored if delivery_failures(list(m.relayed))}
        if expected:
            self.server.capture.wait_for(
                lambda: (
                    expected
                    <= {e.original_queue_id for e in record.events if isinstance(e, BounceSent)}
                ),
                EVENT_WAIT,
            )

    def refresh(self) -> Turn:
        """Events that arrived since the last turn (a bounce, an idle-timeout 421)."""
        turn = Turn()
        if self.record is not None and len(self.record.events) > self._seen:
            self._collect(turn, lambda events: True)
        return turn

    # --- a real client library -------------------------------------------------------------

    def send_with_library(self, lines: tuple[str, ...]) -> Turn:
        """Let stdlib smtplib send the message: it derives RCPT TO from To/Cc/Bcc itself."""
        import smtplib  # a library step's only: not imported before one comes
        from email import message_from_string
        from email.policy import default as default_policy

        message = message_from_string("\n".join(lines) + "\n", policy=default_policy)
        host, port = self.server.address
        turn = Turn()
        with smtplib.SMTP(host, port, local_hostname="library.example.test", timeout=10) as smtp:
            local = smtp.sock.getsockname() if smtp.sock else ("", 0)
            smtp.send_message(message)
        capture = self.server.capture
        capture.wait_for(lambda: capture.find_peer(local[0], local[1]) is not None, EVENT_WAIT)
        record = capture.find_peer(local[0], local[1])
        if record is not None:
            capture.wait_for(lambda: record.closed is not None, EVENT_WAIT)
            turn.events = list(record.events)
            self.history += turn.events
            for event in turn.events:
                outcome = self.run.observe(event)
                if outcome is not None:
                    turn.outcomes.append(outcome)
        return turn


def promised_event(exchange: Exchange) -> type[Event] | None:
    """The event the server publishes right after this exchange, before its reply leaves
    (docs/architecture.md, "How a session is captured"): the stored message after a 2xx to
    a message, the AUTH result after 235 or 535. Whoever judges the exchange waits for it."""
    code = exchange.code
    if code is None:
        return None
    if exchange.kind == "data" and 200 <= code < 300:
        return MessageStored
    if code in (235, 535) and (exchange.kind == "auth" or exchange.verb == "AUTH"):
        return Authenticated
    return None


def _bare_lf(event: Event, in_data: bool) -> bool:
    return isinstance(event, BareLineFeed) and event.in_data == in_data
