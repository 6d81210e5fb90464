"""What `serve`'s dashboard draws: the title, the connections, one session's transcript, the
stored messages and a message opened in full — one frame for a given size and time.

The loop that feeds it events and keys and decides when to draw is ui/serve/dashboard.py.
Every client-supplied string reaches the screen through ui/common/safe.py; every coloured mark
also carries a word or a symbol (▶ selected, ! warning, = match), so the screen reads the
same with NO_COLOR, in a monochrome terminal or on a washed-out projector.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.console import Console, Group, RenderableType
from rich.segment import Segment, SegmentLines
from rich.text import Text

from tutor.maildir import mailview
from tutor.sandbox import serve
from tutor.sandbox.dashboard_model import DashboardModel, Row, StoredInfo
from tutor.smtp.events import Event
from tutor.smtp.wire import host_port, is_loopback
from tutor.ui.common.message_view import message_view
from tutor.ui.common.safe import join, untrusted
from tutor.ui.serve.fit import (
    Column,
    FittedLine,
    FittedTable,
    Heading,
    KeyHints,
    Part,
    key_parts,
)
from tutor.ui.serve.serve_log import ServeLog
from tutor.ui.serve.students import students_header

if TYPE_CHECKING:
    from tutor.server.process import ServerProcess
    from tutor.server.runner import TeachingServer

TRANSCRIPT_KEEP = 400  # rendered lines kept per session
# The server's events not drawn yet, shown from this many on: a busy second is normal,
# a backlog this deep means the screen lags (the server, in its own process, does not).
BEHIND_SHOWN = 1000
NOTICE_SECONDS = 6.0
ROOMY_HEIGHT = 30  # from this many rows, the students' box has blank lines inside

# Narrow terminals drop the columns with the highest `drop` first (fit.py): at 80
# columns a row keeps its student, HELO name, state and last reply; at 120, every column.
CONNECTION_COLUMNS = (
    Column("", 0),
    Column("#", 6, justify="right"),
    Column("student", 0, flexible=True, min_width=10),
    Column("client", 4),
    Column("HELO/EHLO", 2, flexible=True, min_width=12),
    Column("state", 0),
    Column("TLS/AUTH", 5, flexible=True, min_width=8, max_width=16),
    Column("last reply", 0, flexible=True, min_width=20, comfort=24),
    Column("mail", 3, justify="right"),
)
WARNING_WIDTH = 60  # a longer warning under a row (TLS's reason) may be shortened
MESSAGE_COLUMNS = (
    Column("id", 5),
    Column("#", 4, justify="right"),
    Column("envelope vs headers", 0),
    Column("envelope: MAIL FROM -> RCPT TO", 0, flexible=True, min_width=16, comfort=24),
    Column("headers: From: -> To:", 2, flexible=True, min_width=12),
    Column("Subject", 1, flexible=True, min_width=10, max_width=30, comfort=12),
)


def _connection_columns(rows: list[Row]) -> tuple[Column, ...]:
    """A warning under a row must be read in full: the reply column is never narrower."""
    warning = max((len(row.warning) + 2 for row in rows if row.warning), default=0)
    warning = min(warning, WARNING_WIDTH)
    return tuple(
        replace(column, min_width=max(column.min_width, warning))
        if column.header == "last reply"
        else column
        for column in CONNECTION_COLUMNS
    )


class Page(Protocol):
    """A view in place of the three sections: the roster, a student's history
    (ui/serve/class_views.py)."""

    def body(self, console: Console, width: int, room: int) -> list[RenderableType]: ...

    def keys(self) -> KeyHints: ...


def _reply_style(code: int | None) -> str:
    return {2: "green", 3: "cyan", 4: "yellow", 5: "red"}.get((code or 0) // 100, "")


def _heading(title: Text) -> Heading:
    return Heading(title)


def _title_text(*parts: Text | str) -> Text:
    text = join(" ", *parts, " ")
    text.stylize("bold")
    return text


@dataclass(frozen=True)
class Header:
    """What the title bar says about the server, fixed for the whole run."""

    hostname: str
    places: str  # "127.0.0.1:2525, [::1]:2525"
    relay: str
    connect: tuple[str, ...]  # how a student connects
    maildir: Path
    warning: str = ""  # listening beyond loopback
    for_students: bool = False  # other machines connect: the connect line is drawn big

    @classmethod
    def for_server(
        cls, server: TeachingServer | ServerProcess, options: serve.ServeOptions
    ) -> Header:
        places = ", ".join(
            host_port(item.host, item.port) + (" (implicit TLS)" if item.implicit_tls else "")
            for item in server.listeners
        )
        relay = (
            "OPEN RELAY: other domains captured, never sent"
            if server.persona.open_relay
            else "closed relay"
        )
        warning = ""
        if options.host and not is_loopback(options.host):
            warning = f"! NOT loopback: {options.host} is reachable from other machines"
        host, port = server.address
        return cls(
            server.persona.hostname,
            places,
            relay,
            tuple(serve.client_hints(host, port)[:2]),
            options.maildir,
            warning,
            for_students=bool(warning),
        )


class Transcripts:
    """Each session's transcript, rendered by serve's line log.

    ServeLog explains a reply with the session state as it was before that reply, so it
    must see each session's events once, in order. Rendering is the costly part of an
    event, so it waits until a session's transcript is shown: under a flood, only the
    session on screen is rendered, and the cost of an event is a list append.
    """

    RENDER_AT = 2000  # pending events of one session rendered anyway beyond this

    def __init__(self, console: Console, keep: int = TRANSCRIPT_KEEP) -> None:
        self._log = ServeLog(console)
        self._keep = keep
        self._pending: dict[int, list[Event]] = {}
        self._lines: dict[int, deque[Text]] = {}

    def add(self, event: Event) -> None:
        pending = self._pending.setdefault(event.session, [])
        pending.append(event)
        if len(pending) >= self.RENDER_AT:
            self.lines(event.session)

    def lines(self, session: int) -> deque[Text]:
        """The session's rendered lines, the newest last (at most `keep`)."""
        store = self._lines.get(session)
        if store is None:
            store = self._lines[session] = deque(maxlen=self._keep)
        tag = f"#{session:<3} "  # the log's session tag: redundant under a heading
        for event in self._pending.pop(session, ()):
            for line in self._log.render(event):
                store.append(line[len(tag) :] if line.plain.startswith(tag) else line)
        return store

    @property
    def sessions(self) -> set[int]:
        return set(self._pending) | set(self._lines)

    def forget_all_but(self, sessions: set[int]) -> None:
        for store in (self._pending, self._lines):
            for session in [s for s in store if s not in sessions]:
                del store[session]


class MessageDetail:
    """A stored message opened from the dashboard: the one message view (envelope beside
    headers, the copy as stored), scrollable. `recipients`: the event's whole envelope."""

    def __init__(
        self,
        message: mailview.StoredMessage,
        session: int,
        others: list[str],
        recipients: tuple[str, ...] | None = None,
    ) -> None:
        self.message = message
        self.session = session
        self.others = others
        self.recipients = recipients
        self.offset = 0
        self._cache: tuple[int, list[list[Segment]]] | None = None

    def lines(self, console: Console, width: int) -> list[list[Segment]]:
        if self._cache is None or self._cache[0] != width:
            view = message_view(self.message, plain=False, recipients=self.recipients)
            parts: list[RenderableType] = [view]
            if self.others:
                parts.append(untrusted(f"other copies: {', '.join(self.others)}", "dim"))
            rendered = console.render_lines(
                Group(*parts), console.options.update_width(width), pad=False
            )
            self._cache = (width, rendered)
        return self._cache[1]


class DashboardView:
    """Model + transcripts -> one screenful, sized to the terminal. No I/O."""

    def __init__(self, model: DashboardModel, transcripts: Transcripts, header: Header) -> None:
        self.model = model
        self.transcripts = transcripts
        self.header = header
        self.detail: MessageDetail | None = None
        self.notice: tuple[str, float] | None = None  # text, until when
        self.behind = 0  # the server's events this view has not taken yet
        self.page: Page | None = None  # the roster or a history instead of the sections
        # the name a session's student gave (NOOP student=NAME, AUTH), for its row
        self.given_name: Callable[[int], str] = lambda session: ""

    def say(self, text: str, now: float) -> None:
        self.notice = (text, now + NOTICE_SECONDS)

    def render(self, console: Console, width: int, height: int, now: float) -> RenderableType:
        students = self._students(console, width, height)
        top: list[RenderableType] = [self._title(), *students, self._connect_line()]
        bottom = self._footer(now)
        room = max(3, height - len(top) - len(bottom))
        if self.detail is not None:
            body = self._detail(console, width, room)
        elif self.page is not None:
            body = self.page.body(console, width, room)
        else:
            body = self._sections(console, width, room)
        return Group(*top, *body, *bottom)

    # --- title and footer -----------------------------------------------------------------

    def _title(self) -> FittedLine:
        h = self.header
        first, _, others = h.places.partition(", ")
        relay, _, more = h.relay.partition(": ")
        left = [
            Part(Text(" SMTP-TUTOR SERVE ", style="bold reverse")),
            Part(Text(f"  {h.hostname} on {first}", style="bold")),
            Part(Text(f", {others}" if others else "", style="bold"), 4),
            Part(Text(f"  ·  {relay}", style="bold"), 0 if relay.startswith("OPEN") else 2),
            Part(Text(f": {more}" if more else "", style="bold"), 3),
        ]
        if h.warning:
            left.append(Part(Text("  " + h.warning, style="bold yellow")))
        model = self.model
        if model.paused:
            held = len(model.held)
            status = Text(
                f" ‖ PAUSED: {held} new event{'' if held == 1 else 's'} held, p resumes ",
                style="bold black on yellow",
            )
        else:
            status = Text(" ● LIVE ", style="bold green")
        if self.behind >= BEHIND_SHOWN:
            status = Text(f" {self.behind:,} events behind ", style="bold black on yellow")
        return FittedLine(left, status)

    def _students(self, console: Console, width: int, height: int) -> list[SegmentLines]:
        """What students type, big for a projector (blank lines around it from 30 rows),
        one renderable per screen row, so that `top` counts the rows it takes."""
        if not self.header.for_students:
            return []
        box = students_header(self.header.connect, roomy=height >= ROOMY_HEIGHT)
        rows = console.render_lines(box, console.options.update_width(width), pad=False)
        return [SegmentLines([row], new_lines=True) for row in rows]

    def _connect_line(self) -> FittedLine:
        connect = self.header.connect
        maildir = Text("    Maildir: ", style="bold")
        maildir.append_text(untrusted(str(self.header.maildir)))
        return FittedLine(
            [
                Part(Text("connect: ", style="bold")),
                Part(Text(connect[0], style="cyan")),
                *[Part(Text(f"   or   {hint}", style="cyan"), 2) for hint in connect[1:]],
                Part(maildir, 1),
            ]
        )

    def _footer(self, now: float) -> list[RenderableType]:
        lines: list[RenderableType] = []
        if self.notice is not None and now < self.notice[1]:
            lines.append(FittedLine([Part(Text("! " + self.notice[0], style="bold yellow"))]))
        lines.append(FittedLine(key_parts(self._keys())))
        return lines

    def _keys(self) -> KeyHints:
        if self.detail is not None:
            return [("↑/↓ j/k", "scroll", 0), ("Esc, Enter or o", "back", 0), ("q", "quit", 0)]
        if self.page is not None:
            return self.page.keys()
        return [
            ("↑/↓", "pick a session", 0),
            ("Enter", "its last message", 2),
            ("h", "its student's history", 1),
            ("r", "roster", 0),
            ("l", "follow newest", 3),
            ("p", "pause", 4),
            ("q", "quit", 0),
        ]

    # --- the three sections -----------------------------------------------------------------

    def _sections(self, console: Console, width: int, room: int) -> list[RenderableType]:
        model = self.model
        rows = model.rows()
        messages = list(reversed(model.messages))
        rest = max(3, room - 3)  # three headings
        rows_h = sum(_row_height(row) for row in rows)
        conn_h = min(1 + rows_h if rows else 1, max(4, rest * 2 // 5))
        msg_h = min(1 + len(messages) if messages else 1, max(3, rest // 4))
        transcript_h = max(1, rest - conn_h - msg_h)
        return [
            *self._connections(rows, conn_h - 1),
            *self._transcript(console, width, transcript_h),
            *self._messages(messages, msg_h - 1),
        ]

    def _connections(self, rows: list[Row], room: int) -> list[RenderableType]:
        model = self.model
        closed = sum(1 for row in rows if not row.active)
        title = _title_text(
            "CONNECTIONS", f"  {model.active_count} active", f", {closed} recently closed"
        )
        if not rows:
            return [
                _heading(title),
                Text("  no connection yet: a student connects with " + self.header.connect[0]),
            ]
        focus = model.focus()
        start, end = _window(rows, focus, room)
        if (start, end) != (0, len(rows)):
            title.append(f" (rows {start + 1}-{end} of {len(rows)}) ")
        cells: list[list[Text]] = []
        styles: list[str] = []
        for row in rows[start:end]:
            chosen = row.session == focus
            reply = untrusted(row.last_reply or "-", _reply_style(row.last_code))
            if row.warning:  # a line of its own under the reply: it must be read in full
                reply.append("\n")
                reply.append_text(untrusted("! " + row.warning, "bold yellow"))
            cells.append(
                [
                    Text("▶" if chosen else " ", style="bold"),
                    Text(str(row.session)),
                    untrusted(self.given_name(row.session) or "-", "bold"),
                    untrusted(row.client),
                    untrusted(row.helo or "-"),
                    Text(row.stage, style="" if row.active else "dim"),
                    untrusted(row.security, "magenta" if row.tls else ""),
                    reply,
                    Text(str(len(row.messages)) if row.messages else "-"),
                ]
            )
            styles.append("reverse" if chosen else ("dim" if not row.active else ""))
        columns = _connection_columns(rows[start:end])
        return [_heading(title), FittedTable(columns, cells, styles=styles)]

    def _transcript(self, console: Console, width: int, room: int) -> list[RenderableType]:
        model = self.model
        focus = model.focus()
        row = model.row(focus)
        if row is None:
            hint = Text("  the newest session's transcript appears here, every reply explained")
            return [_heading(_title_text("TRANSCRIPT")), hint, *[Text("")] * (room - 1)]
        how = (
            "selected; l follows the newest"
            if model.selected == focus
            else "the newest session; ↑/↓ picks another"
        )
        name = join("  ", untrusted(row.helo)) if row.helo else ""
        title = _title_text(f"TRANSCRIPT #{row.session}  ", untrusted(row.client), name)
        title.append(f" ({how}) ")
        out: list[Text] = []
        for line in reversed(self.transcripts.lines(row.session)):
            out[:0] = list(line.wrap(console, width))
            if len(out) >= room:
                break
        out = out[-room:] if room else []
        out += [Text("")] * (room - len(out))
        return [_heading(title), *out]

    def _messages(self, messages: list[StoredInfo], shown: int) -> list[RenderableType]:
        title = _title_text("STORED MESSAGES", f"  {self.model.total_messages}")
        if not messages:
            return [
                _heading(title),
                Text("  none yet: a message is stored when the server answers 250 to the dot"),
            ]
        title.append(" newest first; ! marks headers that differ from the envelope ")
        cells = []
        for info in messages[:shown]:
            e = info.event
            differs = bool(info.differences)
            cells.append(
                [
                    Text(e.queue_id),
                    Text(str(e.session)),
                    Text(info.badge, style="bold yellow" if differs else "green"),
                    untrusted(f"<{e.sender}> -> " + ", ".join(f"<{r}>" for r in e.recipients)),
                    untrusted(info.claimed),
                    untrusted(info.subject),
                ]
            )
        return [_heading(title), FittedTable(MESSAGE_COLUMNS, cells)]

    # --- an opened message ----------------------------------------------------------------

    def _detail(self, console: Console, width: int, room: int) -> list[RenderableType]:
        detail = self.detail
        assert detail is not None
        message = detail.message
        title = _title_text(
            f"MESSAGE {message.ref}  id {message.queue_id}  from session #{detail.session}",
            "  (envelope beside headers)",
        )
        lines = detail.lines(console, width)
        shown = max(1, room - 1)
        detail.offset = max(0, min(detail.offset, len(lines) - shown))
        window = lines[detail.offset : detail.offset + shown]
        below = len(lines) - detail.offset - len(window)
        out: list[RenderableType] = [_heading(title), SegmentLines(window, new_lines=True)]
        filler = shown - len(window)
        if below > 0:
            out[-1] = SegmentLines(window[:-1], new_lines=True)
            out.append(Text(f"… {below + 1} more lines below (↓ scrolls)", style="dim"))
        out += [Text("")] * filler
        return out


def _row_height(row: Row) -> int:
    return 2 if row.warning else 1


def _window(rows: list[Row], focus: int | None, room: int) -> tuple[int, int]:
    """rows[start:end] that fit in `room` lines and show the focused row, near the middle."""
    index = next((i for i, row in enumerate(rows) if row.session == focus), 0)
    start, end = index, index + 1
    used = _row_height(rows[index])
    grown = True
    while grown:
        grown = False
        if end < len(rows) and used + _row_height(rows[end]) <= room:
            used += _row_height(rows[end])
            end += 1
            grown = True
        if start > 0 and used + _row_height(rows[start - 1]) <= room:
            start -= 1
            used += _row_height(rows[start])
            grown = True
    return start, end
