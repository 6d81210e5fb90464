"""`serve`'s line log: every session's exchanges, line by line, each reply explained.

One line per event, tagged with the session number, so thirty interleaved telnet
sessions stay readable. Client text is shown literally (ui.safe); colour only adds to
what the words already say, so the log reads the same in a pipe or on a projector.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from tutor.explain.annotate import annotate
from tutor.server.capture import EventsOmitted, summary_lines
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
from tutor.smtp.textsafe import wire_lines
from tutor.smtp.wire import Reply, parse_reply_line
from tutor.ui.common.safe import join, untrusted, untrusted_line

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
    "server": "closed: server stopping",
    "tls": "closed: TLS handshake failed",
}


def _tag(session: int) -> Text:
    return Text(f"#{session:<3} ", style="dim")


def _reply_style(code: int) -> str:
    return {2: "green", 3: "cyan", 4: "yellow", 5: "red"}.get(code // 100, "")


class ServeLog:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.sessions = 0
        self.messages = 0
        self.states: dict[int, SessionState] = {}  # what each session's server knows
        # Asked once: rich's is_terminal re-reads the environment on every call.
        self._soft = not console.is_terminal
        # A pipe or a file without colour: a rendered Text is exactly its plain text, so
        # write that and skip rich's render pipeline. Under load (docs/performance.md)
        # that pipeline, run for every log line, took most of serve's CPU and slowed the
        # server thread through the shared GIL.
        self._direct = self._soft and console.color_system is None and not console.record

    def show(self, event: Event) -> None:
        # In a pipe, one event is one line (for grep); on a screen, lines wrap.
        for line in self.render(event):
            plain = line.plain
            if self._direct and "\t" not in plain:  # rich would expand a tab
                self.console.file.write(plain + "\n")
            else:
                self.console.print(line, soft_wrap=self._soft)

    def render(self, event: Event) -> list[Text]:
        tag = _tag(event.session)
        if isinstance(event, SessionOpened):
            self.sessions += 1
            return [
                join(
                    tag,
                    Text("connected from ", style="bold"),
                    untrusted(f"{event.peer_host} port {event.peer_port}"),
                )
            ]
        if isinstance(event, Exchange):
            return self._exchange(tag, event)
        if isinstance(event, BareLineFeed):
            return [
                join(tag, Text(f"! bare LF: {BARE_LF_ADVICE[event.in_data]}", style="bold yellow"))
            ]
        if isinstance(event, TlsStarted):
            note = (
                f" ({event.discarded} plaintext bytes sent after STARTTLS were discarded)"
                if event.discarded
                else ""
            )
            return [
                join(
                    tag,
                    Text(f"TLS started: {event.version}, {event.cipher}{note}", style="magenta"),
                )
            ]
        if isinstance(event, Authenticated):
            verdict = "authenticated" if event.success else "authentication failed"
            return [
                join(
                    tag,
                    Text(f"AUTH {event.mechanism}: {verdict} as ", style="magenta"),
                    untrusted(event.user),
                )
            ]
        if isinstance(event, MessageStored):
            self.messages += 1
            return self._stored(tag, event)
        if isinstance(event, BounceSent):
            if event.copy is None:
                return [
                    join(
                        tag,
                        Text(
                            f"bounce for {event.original_queue_id} dropped: the sender was <>"
                            " (a bounce is never bounced)",
                            style="yellow",
                        ),
                    )
                ]
            return [
                join(
                    tag,
                    Text(
                        f"bounce (DSN {event.status}) for {event.original_queue_id} sent with "
                        "MAIL FROM:<> to the envelope sender ",
                        style="yellow",
                    ),
                    untrusted(f"<{event.to}>"),
                    Text(f" -> {event.copy.folder}"),
                )
            ]
        if isinstance(event, EventsOmitted):
            return self._omitted(tag, event)
        if isinstance(event, SessionClosed):
            self.states.pop(event.session, None)
            return [join(tag, Text(CLOSE_REASONS.get(event.reason, event.reason), style="dim"))]
        return []

    def _exchange(self, tag: Text, event: Exchange) -> list[Text]:
        lines: list[Text] = []
        lock = "TLS " if event.tls else ""
        if event.kind == "data":
            lines += self._data_lines(tag, event.sent)
        elif event.kind == "auth":
            lines.append(
                join(
                    tag,
                    Text(f"{lock}C: ", style="bold"),
                    Text("(AUTH answer, base64, hidden)", style="dim"),
                )
            )
        elif event.sent:
            lines.append(join(tag, Text(f"{lock}C: ", style="bold"), untrusted_line(event.sent)))
        if not event.answered and event.kind != "notice":
            lines.append(
                join(
                    tag,
                    Text("   (no reply: the session ended first; nothing was stored)", style="dim"),
                )
            )
        for index, raw in enumerate(event.replies):
            parsed = parse_reply_line(raw)
            line = join(
                tag, Text(f"{lock}S: "), untrusted(raw, _reply_style(parsed.code) if parsed else "")
            )
            if parsed is not None and index == len(event.replies) - 1 and event.reply is not None:
                line.append(untrusted("  — " + self._meaning(event, event.reply), "dim italic"))
            lines.append(line)
        self._state(event.session).feed_exchange(event)
        return lines

    def _state(self, session: int) -> SessionState:
        state = self.states.get(session)
        if state is None:
            state = self.states[session] = SessionState()
        return state

    def _meaning(self, event: Exchange, reply: Reply) -> str:
        """What the reply means here: a 250 after RCPT is not a 250 after the dot."""
        command = None if event.kind in ("greeting", "notice") else event.command
        note = annotate(command, reply, self._state(event.session))
        enhanced = (
            f" ({note.enhanced})" if note.enhanced and not note.enhanced.endswith(".0.0") else ""
        )
        return note.headline + enhanced

    def _data_lines(self, tag: Text, sent: bytes) -> list[Text]:
        raw_lines = wire_lines(sent, keepends=True)
        shown = raw_lines[:DATA_PREVIEW_LINES]
        out = [join(tag, Text("C| ", style="bold"), untrusted_line(line)) for line in shown]
        hidden = len(raw_lines) - len(shown)
        if hidden > 0:
            out.append(
                join(tag, Text(f"C| … {hidden} more lines ({len(sent)} bytes in all)", style="dim"))
            )
        return out

    def _omitted(self, tag: Text, event: EventsOmitted) -> list[Text]:
        """A long session (or a log that fell behind) is counted, not shown line by line."""
        if not event.ended:
            note = (
                "… a long session: its next events are counted, not shown; the count and "
                "its last lines follow when it ends"
            )
            return [join(tag, Text(note, style="dim"))]
        return [join(tag, Text(line, style="dim")) for line in summary_lines(event.counts)]

    def _stored(self, tag: Text, event: MessageStored) -> list[Text]:
        comparison = event.comparison
        folders = ", ".join(sorted({c.folder for c in event.copies}))
        line = join(
            tag,
            Text(f"stored id={event.queue_id} in {folders}: ", style="bold green"),
            Text("envelope "),
            untrusted(f"<{event.sender}> -> " + ", ".join(f"<{r}>" for r in event.recipients)),
            Text(" | headers "),
            untrusted(
                f"From: {one_line(event.header_from) or '(none)'} -> "
                f"To: {one_line(event.header_to) or '(none)'}"
            ),
        )
        if event.header_cc:
            line.append(untrusted(f" Cc: {one_line(event.header_cc)}"))
        if comparison.mismatch:
            line.append(Text("  ! headers and envelope disagree", style="bold yellow"))
        return [line]
