"""What `serve`'s live dashboard shows, without a screen: rows, sessions, messages, keys.

The model consumes the capture's events (tutor.smtp.events) in order and keeps one Row per
session (client, HELO/EHLO name, how far the transaction got, TLS/AUTH, the last reply
and what it means, a bare-LF warning), the stored messages with their envelope compared
to their headers, and the view's own state: which session is selected, whether the view
is paused. Pausing freezes what is shown; the events that arrive meanwhile are held, in
order, and applied on resume, so nothing is lost. Stdlib only: the UI decides how it looks.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from functools import cached_property

from tutor.explain.annotate import annotate
from tutor.smtp.envelope import Comparison
from tutor.smtp.events import (
    TLS_HANDSHAKE,
    TLS_PLAINTEXT,
    TLS_SILENT,
    Authenticated,
    BareLineFeed,
    Event,
    Exchange,
    MessageStored,
    SessionClosed,
    SessionOpened,
    TlsStarted,
)
from tutor.smtp.headers import one_line
from tutor.smtp.session_state import SessionState
from tutor.smtp.wire import host_port, is_loopback, split_command

BARE_LF_WARNING = "LF only: use nc -C / telnet"
STUCK_IN_DATA = "in DATA: stuck"  # bare LFs: the lone dot never ends the message
CLOSED_LABELS = {
    "quit": "closed: QUIT",
    "client": "closed by client",
    "idle": "closed: idle",
    "unknown-commands": "closed: 20 errors",
    "cap": "refused: cap",
    "network": "refused: not on LAN",  # serve --lan: 554 5.7.1, however it ended
    "server": "closed: stop",
    "tls": "closed: TLS failed",
}
# A session that ended in STARTTLS, by what came instead of a handshake (and the line,
# under the row, that says what to do: the transcript's last line says it in full).
TLS_CLOSED_LABELS = {
    TLS_PLAINTEXT: "closed: no TLS",
    TLS_HANDSHAKE: "closed: TLS failed",
    TLS_SILENT: "closed: no TLS",
}
TLS_PLAINTEXT_WARNING = "text, not TLS: use openssl s_client"
STARTTLS_CLIENT = "openssl s_client -starttls smtp -crlf -quiet -connect {}"
CERTIFICATE_REFUSED = ("UNKNOWN_CA", "CERTIFICATE")  # in the TLS library's reason


def connected_to(opened: SessionOpened) -> str:
    """host:port the client connected to, for a command line that reaches the same server.

    A session stored before SessionOpened had local_host: a loopback client reached the
    loopback address of its own family; otherwise the host is not known."""
    host = opened.local_host or (opened.peer_host if is_loopback(opened.peer_host) else "HOST")
    return host_port(host, opened.local_port)


def refuses_certificate(reason: str) -> bool:
    """The TLS library's reason says the client did not trust the server's certificate."""
    return any(word in reason.upper() for word in CERTIFICATE_REFUSED)


def tls_close_explained(closed: SessionClosed, where: str, ca_file: str) -> str:
    """What ended a session in STARTTLS, and what to do, in one line of the log.

    `where`: host:port as the client reached the server; `ca_file`: the CA certificate a
    client must trust. Client text in it (the line sent after STARTTLS) is not made
    visible here: the screen does that."""
    detail = closed.tls_detail
    if closed.tls_failure == TLS_PLAINTEXT:
        sent = f' ("{detail}")' if detail else " (an empty line)"
        return (
            f"closed: the client sent plain text after STARTTLS{sent}, not a TLS handshake — "
            f"telnet and nc cannot speak TLS: use {STARTTLS_CLIENT.format(where)}"
        )
    if closed.tls_failure == TLS_HANDSHAKE:
        if detail == "closed":
            return "closed: the client hung up during the TLS handshake"
        said = f"closed: the TLS handshake failed ({detail})"
        if refuses_certificate(detail):
            said += (
                " — the client does not trust the server's certificate: give it the "
                f"tutor's CA file, {ca_file} (openssl s_client -CAfile FILE)"
            )
        return said
    if closed.tls_failure == TLS_SILENT:
        if detail == "timeout":
            return "closed: no TLS handshake came after the 220 to STARTTLS (timed out)"
        return "closed: the client hung up after STARTTLS without starting TLS"
    return "closed: TLS handshake failed"  # a session stored before the server said why


def short_meaning(code: int, headline: str) -> str:
    """A positive reply's headline up to its colon ("Recipient accepted"); an error's whole
    headline, because its second half says what to do ("Bad sequence: MAIL FROM first")."""
    return headline.split(": ", 1)[0] if code < 400 else headline


@dataclass
class Row:
    """One connection as the dashboard shows it."""

    session: int
    client: str
    state: SessionState = field(default_factory=SessionState)
    helo: str = ""  # "EHLO student.example": the last greeting the server accepted
    last_code: int | None = None
    last_reply: str = ""  # "250 Recipient accepted": the code and what it means here
    bare_lf_commands: bool = False  # a command line ended with LF alone
    bare_lf_in_data: bool = False  # a message line did
    tls: bool = False
    auth_user: str | None = None
    messages: list[MessageStored] = field(default_factory=list)
    closed: str | None = None  # the reason (SessionClosed.reason) once closed
    tls_failure: str = ""  # SessionClosed.tls_failure: what came instead of a handshake
    tls_detail: str = ""
    refused: bool = False
    last_at: float = 0.0

    @property
    def active(self) -> bool:
        return self.closed is None

    @property
    def stage(self) -> str:
        """How far the session got: connected, greeted, sender, recipients, in DATA, closed."""
        if self.closed is not None:
            if self.tls_failure in TLS_CLOSED_LABELS:
                return TLS_CLOSED_LABELS[self.tls_failure]
            return CLOSED_LABELS.get(self.closed, f"closed: {self.closed}")
        state = self.state
        if state.in_data:
            return STUCK_IN_DATA if self.stuck else "in DATA"
        if state.accepted:
            return f"recipients: {len(state.accepted)}"
        if state.sender is not None:
            return "sender"
        if state.greeted:
            return "greeted"
        if state.greeting_forgotten:
            return "TLS: EHLO again"
        return "refused" if self.refused else "connected"

    @property
    def security(self) -> str:
        """TLS/AUTH in words: "plain", "TLS", "TLS AUTH you"."""
        parts = []
        if self.tls:
            parts.append("TLS")
        if self.auth_user is not None:
            parts.append(f"AUTH {self.auth_user}".rstrip())
        return " ".join(parts) or "plain"

    @property
    def bare_lf(self) -> bool:
        return self.bare_lf_commands or self.bare_lf_in_data

    @property
    def warning(self) -> str:
        if self.tls_failure == TLS_PLAINTEXT:
            return TLS_PLAINTEXT_WARNING
        if self.tls_failure == TLS_HANDSHAKE and self.tls_detail != "closed":
            if refuses_certificate(self.tls_detail):
                return "certificate refused: give the CA"
            return f"TLS failed: {self.tls_detail}"
        return BARE_LF_WARNING if self.bare_lf else ""

    @property
    def stuck(self) -> bool:
        """In DATA with a client that ends its lines with LF alone: it never sends CRLF.CRLF.

        Judged from its commands, because a client that sends `data` and the message in one
        burst is reported for DATA only when more bytes arrive."""
        return self.active and self.state.in_data and self.bare_lf_commands


@dataclass(frozen=True)
class StoredInfo:
    """A stored message with its envelope compared to its headers. Each fact is worked out
    once (the screen asks for them at every redraw) and every header shown is cut short
    (headers.one_line): a 9 MB header costs the dashboard no more than a short one."""

    event: MessageStored

    @cached_property
    def comparison(self) -> Comparison:
        return self.event.comparison  # reads addresses from the first 32 KiB of a field

    @cached_property
    def differences(self) -> list[str]:
        """Where the headers disagree with the envelope, one sentence each."""
        comparison = self.comparison
        found = []
        if not comparison.sender_matches:
            found.append("From: does not name the envelope sender (MAIL FROM)")
        if comparison.unnamed_recipients:
            found.append("an envelope recipient (RCPT TO) is not named in To:/Cc:")
        if comparison.named_not_recipients:
            found.append("To:/Cc: name an address that was not an envelope recipient")
        return found

    @cached_property
    def badge(self) -> str:
        """Short enough for a table cell: "! differ: From, To" or "= match"."""
        comparison = self.comparison
        fields = []
        if not comparison.sender_matches:
            fields.append("From")
        if comparison.unnamed_recipients or comparison.named_not_recipients:
            fields.append("To")
        return "! differ: " + ", ".join(fields) if fields else "= match"

    @cached_property
    def claimed(self) -> str:
        """What the headers claim, on one line: "From -> To", each cut short."""
        sender = one_line(self.event.header_from) or "(none)"
        return f"{sender} -> {one_line(self.event.header_to) or '(none)'}"

    @cached_property
    def subject(self) -> str:
        """The Subject, encoded-words decoded, cut short."""
        return one_line(self.event.subject) or "(none)"


class DashboardModel:
    """Rows, transcripts' sessions and messages, fed by events; selection and pause."""

    def __init__(
        self, *, keep_closed: int = 8, keep_sessions: int = 500, keep_messages: int = 200
    ) -> None:
        self.keep_closed = keep_closed
        self.keep_sessions = keep_sessions
        self.sessions: OrderedDict[int, Row] = OrderedDict()
        self.messages: deque[StoredInfo] = deque(maxlen=keep_messages)
        self.selected: int | None = None  # None: follow the newest session
        self.paused = False
        self.held: list[Event] = []
        self.total_sessions = 0
        self.total_messages = 0
        self.applied = 0  # events applied so far (what the screen reflects)

    # --- feeding ------------------------------------------------------------------------

    def feed(self, event: Event) -> list[Event]:
        """Take one event; returns the events applied now (none while paused)."""
        if self.paused:
            self.held.append(event)
            return []
        self._apply(event)
        return [event]

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> list[Event]:
        """Apply everything held during the pause, in order; returns those events."""
        self.paused = False
        held, self.held = self.held, []
        for event in held:
            self._apply(event)
        return held

    def toggle_pause(self) -> list[Event]:
        if self.paused:
            return self.resume()
        self.pause()
        return []

    def _apply(self, event: Event) -> None:
        self.applied += 1
        if isinstance(event, SessionOpened):
            self.total_sessions += 1
            self.sessions[event.session] = Row(
                event.session,
                host_port(event.peer_host, event.peer_port),
                refused=event.refused,
                last_at=event.at,
            )
            self._forget_old()
            return
        if isinstance(event, MessageStored):
            self.total_messages += 1
            self.messages.append(StoredInfo(event))
        row = self.sessions.get(event.session)
        if row is None:
            return  # a session opened before we started listening, or long forgotten
        row.last_at = event.at
        if isinstance(event, Exchange):
            self._exchange(row, event)
        elif isinstance(event, BareLineFeed):
            if event.in_data:
                row.bare_lf_in_data = True
            else:
                row.bare_lf_commands = True
        elif isinstance(event, TlsStarted):
            row.tls = True
        elif isinstance(event, Authenticated):
            if event.success:
                row.auth_user = event.user
        elif isinstance(event, MessageStored):
            row.messages.append(event)
        elif isinstance(event, SessionClosed):
            row.closed = event.reason
            row.tls_failure = event.tls_failure
            row.tls_detail = event.tls_detail

    def _exchange(self, row: Row, event: Exchange) -> None:
        reply = event.reply
        command = None if event.kind in ("greeting", "notice") else event.command
        if reply is not None:
            row.last_code = reply.code
            note = annotate(command, reply, row.state)
            row.last_reply = f"{reply.code} {short_meaning(reply.code, note.headline)}"
        row.state.feed_exchange(event)
        if event.kind == "command" and reply is not None and reply.code == 250:
            verb, argument = split_command(event.command)
            if verb in ("HELO", "EHLO"):
                row.helo = f"{verb} {argument}"
        if event.tls:
            row.tls = True

    def _forget_old(self) -> None:
        """Keep at most keep_sessions rows: the oldest closed ones go first."""
        excess = len(self.sessions) - self.keep_sessions
        if excess <= 0:
            return
        for session in [
            s for s, row in self.sessions.items() if not row.active and s != self.selected
        ][:excess]:
            del self.sessions[session]

    # --- reading ------------------------------------------------------------------------

    def rows(self) -> list[Row]:
        """Active connections by number, then the most recently closed ones, newest first;
        the picked session stays listed (last) however long ago it closed: it never
        disappears from under the teacher's eyes."""
        active = [row for row in self.sessions.values() if row.active]
        closed = [row for row in self.sessions.values() if not row.active]
        closed.sort(key=lambda row: row.last_at, reverse=True)
        shown = closed[: self.keep_closed]
        picked = self.sessions.get(self.selected) if self.selected is not None else None
        if picked is not None and not picked.active and all(row is not picked for row in shown):
            shown.append(picked)
        return active + shown

    def _shown_ids(self) -> list[int]:
        return [row.session for row in self.rows()]

    @property
    def active_count(self) -> int:
        return sum(1 for row in self.sessions.values() if row.active)

    @property
    def latest(self) -> int | None:
        """The newest session (the one the transcript follows until one is picked)."""
        return next(reversed(self.sessions), None) if self.sessions else None

    def focus(self) -> int | None:
        """The session whose transcript is shown: the selected one, else the newest."""
        if self.selected is not None and self.selected in self.sessions:
            return self.selected
        return self.latest

    def row(self, session: int | None) -> Row | None:
        return self.sessions.get(session) if session is not None else None

    def move(self, delta: int) -> None:
        """Select the row `delta` places below (negative: above) the focused one."""
        ids = self._shown_ids()
        if not ids:
            return
        focus = self.focus()
        start = 0 if delta > 0 else len(ids) - 1  # from outside the list: the first step in
        index = ids.index(focus) + delta if focus in ids else start
        self.selected = ids[max(0, min(len(ids) - 1, index))]

    def follow_latest(self) -> None:
        self.selected = None

    def last_message(self, session: int | None) -> MessageStored | None:
        row = self.row(session)
        return row.messages[-1] if row is not None and row.messages else None
