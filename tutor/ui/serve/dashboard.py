"""`serve`'s live dashboard: the connections, one session's transcript, the stored messages.

Used when stdout and stdin are a terminal (the line log of ui/serve/serve_log.py otherwise, and
with --log or --plain). The server keeps its own thread; this loop keeps the main thread,
drains the capture's queue into a DashboardModel (tutor/sandbox/dashboard_model.py) and redraws
with rich's Live at most MAX_FRAMES_PER_SECOND times a second, however fast events come:
a flood of clients costs the screen nothing more than a busy class does. Keys come from
prompt_toolkit's input in raw mode (ui/common/keys.py), read by the same asyncio loop.

Every client-supplied string reaches the screen through ui/common/safe.py; every coloured mark
also carries a word or a symbol (▶ selected, ! warning, = match), so the screen reads the
same with NO_COLOR, in a monochrome terminal or on a washed-out projector.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.rule import Rule
from rich.segment import Segment, SegmentLines
from rich.table import Table
from rich.text import Text

from tutor.maildir import mailview
from tutor.sandbox import serve
from tutor.sandbox.dashboard_model import DashboardModel, Row, StoredInfo
from tutor.smtp.events import Event
from tutor.smtp.wire import host_port, is_loopback
from tutor.ui.common.message_view import message_view
from tutor.ui.common.safe import join, untrusted
from tutor.ui.serve.serve_log import ServeLog

if TYPE_CHECKING:
    from tutor.server.runner import TeachingServer
    from tutor.ui.common.keys import TerminalKeys

MAX_FRAMES_PER_SECOND = 8.0
HEARTBEAT_SECONDS = 1.0  # redraw this often even when idle (a resized terminal, a notice)
DRAIN_BUDGET = 5000  # events taken per tick before drawing and reading keys again
TRANSCRIPT_KEEP = 400  # rendered lines kept per session
NOTICE_SECONDS = 6.0
ESCAPE_DELAY = 0.1  # a lone Escape is let out of the key parser after this pause


def _reply_style(code: int | None) -> str:
    return {2: "green", 3: "cyan", 4: "yellow", 5: "red"}.get((code or 0) // 100, "")


def _heading(title: Text) -> Rule:
    return Rule(title, align="left", characters="━", style="bold")


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

    @classmethod
    def for_server(cls, server: TeachingServer, options: serve.ServeOptions) -> Header:
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


class _Detail:
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
        self.detail: _Detail | None = None
        self.notice: tuple[str, float] | None = None  # text, until when

    def say(self, text: str, now: float) -> None:
        self.notice = (text, now + NOTICE_SECONDS)

    def render(self, console: Console, width: int, height: int, now: float) -> RenderableType:
        top: list[RenderableType] = [self._title(), self._connect_line()]
        bottom = self._footer(now)
        room = max(3, height - len(top) - len(bottom))
        if self.detail is not None:
            body = self._detail(console, width, room)
        else:
            body = self._sections(console, width, room)
        return Group(*top, *body, *bottom)

    # --- title and footer -----------------------------------------------------------------

    def _title(self) -> Table:
        h = self.header
        left = Text()
        left.append(" SMTP-TUTOR SERVE ", style="bold reverse")
        left.append(f"  {h.hostname} on {h.places}  ·  {h.relay}", style="bold")
        if h.warning:
            left.append("  " + h.warning, style="bold yellow")
        model = self.model
        if model.paused:
            held = len(model.held)
            status = Text(
                f" ‖ PAUSED: {held} new event{'' if held == 1 else 's'} held, p resumes ",
                style="bold black on yellow",
            )
        else:
            status = Text(" ● LIVE ", style="bold green")
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(no_wrap=True, justify="right")
        grid.add_row(left, status)
        return grid

    def _connect_line(self) -> Text:
        line = Text()
        line.append("connect: ", style="bold")
        line.append("   or   ".join(self.header.connect), style="cyan")
        line.append("    Maildir: ", style="bold")
        line.append(untrusted(str(self.header.maildir)))
        line.no_wrap = True
        line.overflow = "ellipsis"
        return line

    def _footer(self, now: float) -> list[Text]:
        lines = []
        if self.notice is not None and now < self.notice[1]:
            lines.append(Text("! " + self.notice[0], style="bold yellow", no_wrap=True))
        if self.detail is not None:
            keys = "↑/↓ j/k scroll · Esc, Enter or o: back · p pause · q quit"
        else:
            keys = "↑/↓ j/k pick a session · Enter/o open its last message · l follow newest"
            keys += " · p pause · q quit"
        line = Text()
        line.append(" KEYS ", style="bold reverse")
        line.append("  " + keys, style="bold")
        line.no_wrap = True
        line.overflow = "ellipsis"
        lines.append(line)
        return lines

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
        table = Table(
            box=None,
            padding=(0, 1, 0, 0),
            pad_edge=False,
            expand=True,
            show_edge=False,
            header_style="bold",
        )
        table.add_column("", width=1, no_wrap=True)
        table.add_column("#", justify="right", no_wrap=True)
        table.add_column("client", no_wrap=True)
        table.add_column("HELO/EHLO", no_wrap=True, overflow="ellipsis", ratio=2, min_width=12)
        table.add_column("state", no_wrap=True)
        table.add_column("TLS/AUTH", no_wrap=True, overflow="ellipsis", max_width=16)
        table.add_column("last reply", no_wrap=True, overflow="ellipsis", ratio=3, min_width=30)
        table.add_column("mail", justify="right", no_wrap=True)
        for row in rows[start:end]:
            chosen = row.session == focus
            reply = untrusted(row.last_reply or "-", _reply_style(row.last_code))
            if row.warning:  # a line of its own under the reply: it must be read in full
                reply.append("\n")
                reply.append("! " + row.warning, style="bold yellow")
            table.add_row(
                Text("▶" if chosen else " ", style="bold"),
                Text(str(row.session)),
                untrusted(row.client),
                untrusted(row.helo or "-"),
                Text(row.stage, style="" if row.active else "dim"),
                untrusted(row.security, "magenta" if row.tls else ""),
                reply,
                Text(str(len(row.messages)) if row.messages else "-"),
                style="reverse" if chosen else ("dim" if not row.active else ""),
            )
        return [_heading(title), table]

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
        table = Table(
            box=None,
            padding=(0, 1, 0, 0),
            pad_edge=False,
            expand=True,
            show_edge=False,
            header_style="bold",
        )
        table.add_column("id", no_wrap=True)
        table.add_column("#", justify="right", no_wrap=True)
        table.add_column("envelope vs headers", no_wrap=True)
        table.add_column(
            "envelope: MAIL FROM -> RCPT TO", no_wrap=True, overflow="ellipsis", ratio=3
        )
        table.add_column("headers: From: -> To:", no_wrap=True, overflow="ellipsis", ratio=2)
        table.add_column("Subject", no_wrap=True, overflow="ellipsis", max_width=18)
        for info in messages[:shown]:
            e = info.event
            differs = bool(info.differences)
            table.add_row(
                Text(e.queue_id),
                Text(str(e.session)),
                Text(info.badge, style="bold yellow" if differs else "green"),
                untrusted(f"<{e.sender}> -> " + ", ".join(f"<{r}>" for r in e.recipients)),
                untrusted(f"{e.header_from or '(none)'} -> {e.header_to or '(none)'}"),
                untrusted(e.subject or "(none)"),
            )
        return [_heading(title), table]

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


class KeySource(Protocol):
    def attach(
        self, callback: Callable[[list[str]], None]
    ) -> contextlib.AbstractContextManager[None]: ...

    def flush(self) -> list[str]: ...


class EventSource(Protocol):
    """The capture's queue, or a wrapper of it (serve --transcripts tees it)."""

    def get_nowait(self) -> Event: ...


class Dashboard:
    """The loop: drain the queue, react to keys, redraw at most `rate` times a second."""

    def __init__(
        self,
        console: Console,
        events: EventSource,
        header: Header,
        *,
        rate: float = MAX_FRAMES_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.events = events
        self.model = DashboardModel()
        self.transcripts = Transcripts(console)
        self.view = DashboardView(self.model, self.transcripts, header)
        self.maildir = header.maildir
        self.interval = 1.0 / rate
        self.clock = clock
        self.frames = 0
        self._dirty = True
        self._next_frame = 0.0
        self._last_frame = float("-inf")
        self._quit = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._live: Live | None = None
        self._keys: KeySource | None = None
        self._key_pending_at: float | None = None

    # --- events -------------------------------------------------------------------------

    def feed(self, event: Event) -> None:
        for applied in self.model.feed(event):
            self.transcripts.add(applied)
        self._dirty = True

    def drain(self, budget: int | None = None) -> int:
        """Feed what the queue holds now (at most `budget` events); returns how many."""
        taken = 0
        while budget is None or taken < budget:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            self.feed(event)
            taken += 1
        if len(self.transcripts.sessions) > len(self.model.sessions) + 100:
            self.transcripts.forget_all_but(set(self.model.sessions))
        return taken

    def finish(self) -> tuple[int, int]:
        """After the server stopped: take every last event, paused or not; the counts."""
        for applied in self.model.resume():
            self.transcripts.add(applied)
        self.drain()
        return self.model.total_sessions, self.model.total_messages

    # --- keys ---------------------------------------------------------------------------

    def handle_key(self, key: str) -> None:
        model, view = self.model, self.view
        self._dirty = True
        if key in ("q", "Q", "c-c"):
            self.request_quit()
        elif key in ("p", "P"):
            for applied in model.toggle_pause():
                self.transcripts.add(applied)
        elif view.detail is not None:
            self._detail_key(key)
        elif key in ("up", "k"):
            model.move(-1)
        elif key in ("down", "j"):
            model.move(1)
        elif key in ("pageup", "pagedown"):
            model.move(-10 if key == "pageup" else 10)
        elif key in ("enter", "o"):
            self.open_message()
        elif key in ("l", "escape", "home"):
            model.follow_latest()

    def _detail_key(self, key: str) -> None:
        detail = self.view.detail
        assert detail is not None
        page = max(1, self.console.size.height - 8)
        steps = {"up": -1, "k": -1, "down": 1, "j": 1, "pageup": -page, "pagedown": page, " ": page}
        if key in steps:
            detail.offset = max(0, detail.offset + steps[key])
        elif key == "home":
            detail.offset = 0
        elif key in ("escape", "enter", "o", "backspace"):
            self.view.detail = None

    def open_message(self) -> None:
        """The focused session's last stored message, read from its Maildir file."""
        session = self.model.focus()
        now = self.clock()
        message = self.model.last_message(session)
        if session is None:
            self.view.say("no session yet", now)
            return
        if message is None:
            self.view.say(
                f"session #{session} has no stored message yet (one is stored at the 250 "
                "after the final dot)",
                now,
            )
            return
        first, *rest = message.copies
        found = mailview.find(self.maildir, f"{first.folder}/{first.key}")
        if not found:
            self.view.say(f"message {message.queue_id} is no longer in the Maildir", now)
            return
        others = [c.folder for c in rest]
        self.view.detail = _Detail(found[0], session, others, message.recipients)

    def _on_keys(self, keys: list[str]) -> None:
        self._key_pending_at = self.clock()
        for key in keys:
            self.handle_key(key)
        self._poke()

    # --- the loop -----------------------------------------------------------------------

    def request_quit(self) -> None:
        """Stop the loop; safe from any thread and from signal handlers."""
        self._quit.set()
        self._poke()

    def _resized(self) -> None:
        self._dirty = True
        self._poke()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(wake.set)

    def run(self, keys: KeySource | None = None) -> None:
        """Draw until q, Ctrl-C, SIGINT/SIGTERM or request_quit(). The caller stops the server."""
        self._keys = keys
        screen = self.console.is_terminal and not self.console.is_dumb_terminal
        live = Live(
            console=self.console,
            screen=screen,
            auto_refresh=False,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        with live:
            self._live = live
            try:
                asyncio.run(self._main())
            finally:
                self._live = None

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        with self._signals(), self._attached():
            while not self._quit.is_set():
                await self._tick()
        self._loop = None

    @contextlib.contextmanager
    def _attached(self) -> Iterator[None]:
        if self._keys is None:
            yield
            return
        with self._keys.attach(self._on_keys):
            yield

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        installed = []
        for name, handler in (
            ("SIGINT", self.request_quit),
            ("SIGTERM", self.request_quit),
            ("SIGWINCH", self._resized),  # redraw at once for the new size
        ):
            number = getattr(signal, name, None)
            if number is None:
                continue
            try:
                loop.add_signal_handler(number, handler)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # Windows, or not the main thread: KeyboardInterrupt still works
            installed.append(number)
        try:
            yield
        finally:
            for number in installed:
                loop.remove_signal_handler(number)

    async def _tick(self) -> None:
        taken = self.drain(DRAIN_BUDGET)
        now = self.clock()
        if (
            self._keys is not None
            and self._key_pending_at is not None
            and now - self._key_pending_at >= ESCAPE_DELAY
        ):
            self._key_pending_at = None
            for key in self._keys.flush():
                self.handle_key(key)
        due = self._dirty or now - self._last_frame >= HEARTBEAT_SECONDS
        if due and now >= self._next_frame:
            self.refresh(now)
            due = False
        if taken >= DRAIN_BUDGET:
            timeout = 0.0  # more waiting in the queue: take it before reading keys again
        elif due:
            timeout = self._next_frame - now
        else:
            timeout = self.interval
        assert self._wake is not None
        self._wake.clear()
        if timeout <= 0 or self._quit.is_set():
            await asyncio.sleep(0)  # let key callbacks run
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def refresh(self, now: float) -> None:
        """Draw one frame: the only place the screen is written while the dashboard runs."""
        self.frames += 1
        self._dirty = False
        self._last_frame = now
        self._next_frame = now + self.interval
        width, height = self.console.size
        renderable = self.view.render(self.console, width, height, now)
        if self._live is not None:
            self._live.update(renderable, refresh=True)


def wanted(console: Console, stdin_is_tty: bool) -> bool:
    """The dashboard needs a real screen to redraw and a keyboard to read.

    The output itself must be a terminal: FORCE_COLOR or TTY_COMPATIBLE make rich treat
    a pipe as one, and a pipe always gets the line log."""
    isatty = getattr(console.file, "isatty", None)
    real_tty = bool(isatty is not None and isatty())
    return real_tty and console.is_terminal and not console.is_dumb_terminal and stdin_is_tty


def summary(sessions: int, messages: int, maildir: Path) -> Text:
    """The last line, as serve's line log prints it."""

    def count(number: int, noun: str) -> str:
        return f"{number} {noun}{'' if number == 1 else 's'}"

    return join(
        Text(
            f"stopped: {count(sessions, 'session')}, {count(messages, 'message')} stored in ",
            style="bold",
        ),
        untrusted(str(maildir)),
    )


def run_dashboard(
    server: TeachingServer,
    options: serve.ServeOptions,
    console: Console,
    keys: TerminalKeys | None = None,
    events: EventSource | None = None,
) -> int:
    """serve with the dashboard: until q or Ctrl-C, then stop the server (421 to everyone).

    The terminal is restored on every way out; an unexpected error still stops the
    server before it propagates."""
    from tutor.ui.common.keys import TerminalKeys

    dashboard = Dashboard(
        console, events or server.capture.events, Header.for_server(server, options)
    )
    keys = keys or TerminalKeys()
    try:
        with keys.raw():
            dashboard.run(keys)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        sessions, messages = dashboard.finish()
    console.print(summary(sessions, messages, options.maildir))
    return 0
