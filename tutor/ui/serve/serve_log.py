"""`serve`'s line log: every session's exchanges, line by line, each reply explained.

One line per event, tagged with the session number, so thirty interleaved telnet
sessions stay readable. Client text is shown literally (ui.safe); colour only adds to
what the words already say, so the log reads the same in a pipe or on a projector.

Under load this runs for every line the server logs (docs/performance.md), so a line is
built as plain strings, each already safe: a `Line` alternates text and style,
(text, style, text, style, …). In a pipe without colour that text is written as it is;
anywhere else it becomes one rich Text with one span per styled piece, exactly the Text
that joining a Text per piece would give (tests/test_serve_log_output.py).
"""

from __future__ import annotations

import time
from typing import TypeVar

from rich.console import Console
from rich.control import strip_control_codes
from rich.text import Span, Text

from tutor.explain.annotate import annotate
from tutor.sandbox.dashboard_model import connected_to, refuses_certificate, tls_close_explained
from tutor.server.capture import EventsOmitted, summary_lines
from tutor.smtp.envelope import Comparison
from tutor.smtp.events import (
    Authenticated,
    BareLineFeed,
    BounceSent,
    Event,
    Exchange,
    MessageStored,
    SessionClosed,
    SessionOpened,
    TlsStarted,
)
from tutor.smtp.headers import one_line
from tutor.smtp.session_state import SessionState
from tutor.smtp.textsafe import visible, visible_line, wire_lines
from tutor.smtp.wire import Reply, parse_reply_line

DATA_PREVIEW_LINES = 12
BARE_LF_ADVICE = {
    False: "client ends lines with LF only. Commands still work, but a message will never end: "
    "only CRLF.CRLF ends DATA. Use `nc -C`, `telnet`, or `openssl s_client -crlf`.",
    True: "client sends LF only inside DATA: this message cannot end, because only CRLF.CRLF "
    "ends DATA (RFC 5321 §4.1.1.4). Use `nc -C`, `telnet`, or `openssl s_client -crlf`.",
}
CLOSE_REASONS = {
    "quit": "closed after QUIT",
    "client": "client closed the connection",
    "idle": "closed: idle timeout (421 4.4.2)",
    "unknown-commands": "closed: too many unknown commands (421 4.7.0)",
    "cap": "refused: connection cap reached (421 4.7.0)",
    "network": "refused: not on this class's network (554 5.7.1, serve --lan)",
    "server": "closed: server stopping",
    "tls": "closed: TLS handshake failed",
}
NO_REPLY = "   (no reply: the session ended first; nothing was stored)"
AUTH_HIDDEN = "(AUTH answer, base64, hidden)"
DISAGREE = "  ! headers and envelope disagree"

# (text, style, text, style, …): every text already safe to show (see the module's doc).
Line = tuple[str, ...]

# Memos of what is the same for every message of a flood (a reply's lines, its meaning in
# the same state, a line of message text, the comparison of the same envelope and headers):
# each is emptied when it holds MEMO_ENTRIES, and a text longer than MEMO_TEXT_LIMIT is
# never kept, so ever-different or huge texts cost a bounded amount of memory.
MEMO_ENTRIES = 1024
MEMO_TEXT_LIMIT = 1024

# A reply as shown: each line (made visible) with its style, the parsed reply (None when
# no line parses) and whether its last line parses (only then is the meaning appended).
_ShownReply = tuple[tuple[tuple[str, str], ...], Reply | None, bool]
_K = TypeVar("_K")
_V = TypeVar("_V")


def _tag(session: int) -> str:
    return f"#{session:<3} "


class _Clock:
    """HH:MM:SS in local time, made once per second of events, not once per line."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def stamp(self, at: float) -> str:
        second = int(at)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%H:%M:%S", time.localtime(second))
        return self._text


def _reply_style(code: int) -> str:
    return {2: "green", 3: "cyan", 4: "yellow", 5: "red"}.get(code // 100, "")


def _ours(text: str) -> str:
    """Text of ours with a field the server chose in it (a queue id, a folder, a cipher),
    as a rich Text keeps it: without BEL, BS, VT, FF and CR, so its plain text stays the
    Text's. Text from a client goes through visible() instead."""
    return strip_control_codes(text)


def _visible_text(text: str) -> str:
    # ASCII has no bidi marks, so a printable ASCII text is already what visible() returns.
    return text if text.isascii() and text.isprintable() else visible(text)


def _visible_line(raw: bytes) -> str:
    """visible_line(raw), without decoding and scanning a plain ASCII line character by
    character: its printable body plus the ending as visible_line() shows it."""
    if raw.endswith(b"\r\n"):
        body, ending = raw[:-2], "␍␊"
    elif raw.endswith(b"\n"):
        body, ending = raw[:-1], "␊"
    else:
        body, ending = raw, ""
    if body.isascii():
        text = body.decode("ascii")
        if text.isprintable():
            return text + ending
    return visible_line(raw)


def to_text(line: Line) -> Text:
    """The rich Text of a line: its pieces' text, one span for each styled piece."""
    spans = []
    offset = 0
    for index in range(0, len(line), 2):
        end = offset + len(line[index])
        style = line[index + 1]
        if style:
            spans.append(Span(offset, end, style))
        offset = end
    return Text("".join(line[0::2]), spans=spans)


class ServeLog:
    def __init__(self, console: Console, *, clock: bool = False) -> None:
        """clock: each line starts with the event's time (HH:MM:SS, local), as the line
        log prints it; the dashboard's and the handouts' transcripts go without."""
        self.console = console
        self.sessions = 0
        self.messages = 0
        self.states: dict[int, SessionState] = {}  # what each session's server knows
        self._opened: dict[int, SessionOpened] = {}  # open sessions: where each connected
        self._clock = _Clock() if clock else None
        # Asked once: rich's is_terminal re-reads the environment on every call.
        self._soft = not console.is_terminal
        # A pipe or a file without colour: a rendered Text is exactly its plain text, so
        # write that and skip rich's render pipeline. Under load (docs/performance.md)
        # that pipeline, run for every log line, took most of serve's CPU.
        self._direct = self._soft and console.color_system is None and not console.record
        self._replies: dict[tuple[str, ...], _ShownReply] = {}
        self._meanings: dict[tuple[object, ...], str] = {}
        self._mismatches: dict[Comparison, bool] = {}
        self._message_lines: dict[bytes, str] = {}

    def show(self, event: Event) -> None:
        # In a pipe, one event is one line (for grep); on a screen, lines wrap.
        lines = self.lines(event)
        if not lines:
            return
        if not self._direct:
            for line in lines:
                self.console.print(to_text(line), soft_wrap=self._soft)
            return
        plain = ["".join(line[0::2]) for line in lines]
        plain.append("")  # each line ends with a line feed
        text = "\n".join(plain)
        if "\t" not in text:
            self.console.file.write(text)
            return
        for line in lines:  # rich would expand a tab: it prints those lines
            if "\t" in (text := "".join(line[0::2])):
                self.console.print(to_text(line), soft_wrap=self._soft)
            else:
                self.console.file.write(text + "\n")

    def render(self, event: Event) -> list[Text]:
        return [to_text(line) for line in self.lines(event)]

    def lines(self, event: Event) -> list[Line]:
        """The event's log lines; the log's counts and session states move on with it."""
        tag = _tag(event.session)
        if self._clock is not None:
            tag = f"{self._clock.stamp(event.at)} {tag}"
        if isinstance(event, Exchange):
            return self._exchange(tag, event)
        if isinstance(event, MessageStored):
            self.messages += 1
            return [self._stored(tag, event)]
        if isinstance(event, SessionOpened):
            self.sessions += 1
            self._opened[event.session] = event
            where = visible(f"{event.peer_host} port {event.peer_port}")
            return [(tag, "dim", "connected from ", "bold", where, "")]
        if isinstance(event, BareLineFeed):
            return [(tag, "dim", f"! bare LF: {BARE_LF_ADVICE[event.in_data]}", "bold yellow")]
        if isinstance(event, TlsStarted):
            note = (
                f" ({event.discarded} plaintext bytes sent after STARTTLS were discarded)"
                if event.discarded
                else ""
            )
            return [
                (
                    tag,
                    "dim",
                    _ours(f"TLS started: {event.version}, {event.cipher}{note}"),
                    "magenta",
                )
            ]
        if isinstance(event, Authenticated):
            verdict = "authenticated" if event.success else "authentication failed"
            said = _ours(f"AUTH {event.mechanism}: {verdict} as ")
            return [(tag, "dim", said, "magenta", visible(event.user), "")]
        if isinstance(event, BounceSent):
            return [self._bounce(tag, event)]
        if isinstance(event, EventsOmitted):
            return self._omitted(tag, event)
        if isinstance(event, SessionClosed):
            self.states.pop(event.session, None)
            opened = self._opened.pop(event.session, None)
            if event.reason == "tls":
                return [(tag, "dim", self._tls_closed(event, opened), "bold yellow")]
            return [(tag, "dim", _ours(CLOSE_REASONS.get(event.reason, event.reason)), "dim")]
        return []

    @staticmethod
    def _tls_closed(event: SessionClosed, opened: SessionOpened | None) -> str:
        """What came instead of a TLS handshake, and what to do (docs/server.md,
        "STARTTLS from telnet"); the line the client sent is shown, never obeyed."""
        where = connected_to(opened) if opened is not None else "HOST:PORT"
        ca_file = "tls/smtp-tutor-ca.pem in smtp-tutor's data folder"
        if refuses_certificate(event.tls_detail):
            from tutor.paths import tls_dir
            from tutor.server.tlsmaterial import CA_FILE

            ca_file = str(tls_dir() / CA_FILE)
        return visible(tls_close_explained(event, where, ca_file))

    def _exchange(self, tag: str, event: Exchange) -> list[Line]:
        lines: list[Line] = []
        lock = "TLS " if event.tls else ""
        kind = event.kind
        if kind == "data":
            lines += self._data_lines(tag, event.sent)
        elif kind == "auth":
            lines.append((tag, "dim", f"{lock}C: ", "bold", AUTH_HIDDEN, "dim"))
        elif event.sent:
            lines.append((tag, "dim", f"{lock}C: ", "bold", _visible_line(event.sent), ""))
        replies = event.replies
        if not replies and kind != "notice":
            lines.append((tag, "dim", NO_REPLY, "dim"))
        shown, reply, explained = self._shown_reply(replies)
        state = self._state(event.session)
        command = self._command(event, state)
        said = f"{lock}S: "
        for text, style in shown:
            lines.append((tag, "dim", said, "", text, style))
        if explained:
            assert reply is not None  # the last line parses, so the reply does
            lines[-1] += (self._meaning(command, replies, reply, state), "dim italic")
        state.feed(command, reply, kind=kind)
        return lines

    @staticmethod
    def _command(event: Exchange, state: SessionState) -> str | None:
        """The command as annotate() and SessionState.feed() take it, as feed_exchange()
        gives it: None for the greeting and a notice. In DATA both read the state alone (the
        reply answers the message text), so "" stands for a text that need not be decoded."""
        if event.kind in ("greeting", "notice"):
            return None
        if state.in_data:
            return ""
        return event.command

    def _shown_reply(self, replies: tuple[str, ...]) -> _ShownReply:
        known = self._replies.get(replies)
        if known is not None:
            return known
        parsed = [parse_reply_line(raw) for raw in replies]
        shown = tuple(
            (visible(raw), _reply_style(line.code) if line else "")
            for raw, line in zip(replies, parsed, strict=True)
        )
        lines = tuple(line for line in parsed if line is not None)
        result = (shown, Reply(lines) if lines else None, bool(parsed) and parsed[-1] is not None)
        _remember(self._replies, replies, result)
        return result

    def _state(self, session: int) -> SessionState:
        state = self.states.get(session)
        if state is None:
            state = self.states[session] = SessionState()
        return state

    def _meaning(
        self, command: str | None, replies: tuple[str, ...], reply: Reply, state: SessionState
    ) -> str:
        """What the reply means here: a 250 after RCPT is not a 250 after the dot. The same
        command, reply and state always mean the same, so a flood explains each once."""
        if command is not None and len(command) > MEMO_TEXT_LIMIT:
            return _meaning(command, reply, state)
        key = (command, replies, state.facts())
        meaning = self._meanings.get(key)
        if meaning is None:
            meaning = _meaning(command, reply, state)
            _remember(self._meanings, key, meaning)
        return meaning

    def _data_lines(self, tag: str, sent: bytes) -> list[Line]:
        raw_lines = wire_lines(sent, keepends=True)
        shown = raw_lines[:DATA_PREVIEW_LINES]
        out: list[Line] = [
            (tag, "dim", "C| ", "bold", self._message_line(line), "") for line in shown
        ]
        hidden = len(raw_lines) - len(shown)
        if hidden > 0:
            out.append((tag, "dim", f"C| … {hidden} more lines ({len(sent)} bytes in all)", "dim"))
        return out

    def _message_line(self, raw: bytes) -> str:
        if len(raw) > MEMO_TEXT_LIMIT:
            return _visible_line(raw)
        shown = self._message_lines.get(raw)
        if shown is None:
            shown = _visible_line(raw)
            _remember(self._message_lines, raw, shown)
        return shown

    def _omitted(self, tag: str, event: EventsOmitted) -> list[Line]:
        """A long session (or a log that fell behind) is counted, not shown line by line."""
        if not event.ended:
            note = (
                "… a long session: its next events are counted, not shown; the count and "
                "its last lines follow when it ends"
            )
            return [(tag, "dim", note, "dim")]
        return [(tag, "dim", _ours(line), "dim") for line in summary_lines(event.counts)]

    def _bounce(self, tag: str, event: BounceSent) -> Line:
        if event.copy is None:
            dropped = (
                f"bounce for {event.original_queue_id} dropped: the sender was <>"
                " (a bounce is never bounced)"
            )
            return (tag, "dim", _ours(dropped), "yellow")
        sent = (
            f"bounce (DSN {event.status}) for {event.original_queue_id} sent with "
            "MAIL FROM:<> to the envelope sender "
        )
        return (
            tag,
            "dim",
            _ours(sent),
            "yellow",
            visible(f"<{event.to}>"),
            "",
            _ours(f" -> {event.copy.folder}"),
            "",
        )

    def _stored(self, tag: str, event: MessageStored) -> Line:
        folders = ", ".join(sorted({c.folder for c in event.copies}))
        envelope = f"<{event.sender}> -> " + ", ".join(f"<{r}>" for r in event.recipients)
        headers = (
            f"From: {one_line(event.header_from) or '(none)'} -> "
            f"To: {one_line(event.header_to) or '(none)'}"
        )
        line: Line = (
            tag,
            "dim",
            _ours(f"stored id={event.queue_id} in {folders}: "),
            "bold green",
            "envelope ",
            "",
            _visible_text(envelope),
            "",
            " | headers ",
            "",
            _visible_text(headers),
            "",
        )
        if event.header_cc:
            line += (_visible_text(f" Cc: {one_line(event.header_cc)}"), "")
        if self._mismatch(event):
            line += (DISAGREE, "bold yellow")
        return line

    def _mismatch(self, event: MessageStored) -> bool:
        """Whether the headers disagree with the envelope: the same envelope and headers
        (equal Comparisons) always do or always do not, so a flood parses them once."""
        comparison = event.comparison
        if len(event.header_from) + len(event.header_to) + len(event.header_cc) > MEMO_TEXT_LIMIT:
            return comparison.mismatch
        known = self._mismatches.get(comparison)
        if known is None:
            known = comparison.mismatch
            _remember(self._mismatches, comparison, known)
        return known


def _meaning(command: str | None, reply: Reply, state: SessionState) -> str:
    note = annotate(command, reply, state)
    enhanced = note.enhanced
    shown = f" ({enhanced})" if enhanced and not enhanced.endswith(".0.0") else ""
    return visible("  — " + note.headline + shown)


def _remember(memo: dict[_K, _V], key: _K, value: _V) -> None:
    if len(memo) >= MEMO_ENTRIES:
        memo.clear()
    memo[key] = value
