"""`serve`'s live dashboard: the loop that feeds the view events and keys and draws it.

Used when stdout and stdin are a terminal (the line log of ui/serve/serve_log.py otherwise, and
with --log or --plain). The server keeps its own thread; this loop keeps the main thread,
drains the capture's queue into a DashboardModel (tutor/sandbox/dashboard_model.py) and redraws
the view (ui/serve/dashboard_view.py) with rich's Live at most MAX_FRAMES_PER_SECOND times a
second, however fast events come: a flood of clients costs the screen nothing more than a busy
class does. Keys come from prompt_toolkit's input in raw mode (ui/common/keys.py), read by the
same asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.console import Console
from rich.live import Live
from rich.text import Text

from tutor.maildir import mailview
from tutor.maildir.session_store import StoredSession
from tutor.sandbox import serve
from tutor.sandbox.class_model import KEEP_EVENTS, LiveClass
from tutor.sandbox.dashboard_model import DashboardModel
from tutor.smtp.events import Event
from tutor.ui.common.safe import join, untrusted
from tutor.ui.serve.class_views import Blocks, HistoryPage, RosterPage
from tutor.ui.serve.dashboard_view import (
    DashboardView,
    Header,
    MessageDetail,
    Page,
    Transcripts,
)

if TYPE_CHECKING:
    from tutor.server.process import ServerProcess
    from tutor.server.runner import TeachingServer
    from tutor.ui.common.keys import TerminalKeys

MAX_FRAMES_PER_SECOND = 8.0
HEARTBEAT_SECONDS = 1.0  # redraw this often even when idle (a resized terminal, a notice)
DRAIN_BUDGET = 5000  # events taken per tick before drawing and reading keys again
ESCAPE_DELAY = 0.1  # a lone Escape is let out of the key parser after this pause


class KeySource(Protocol):
    def attach(
        self, callback: Callable[[list[str]], None]
    ) -> contextlib.AbstractContextManager[None]: ...

    def flush(self) -> list[str]: ...


class EventSource(Protocol):
    """The capture's queue, the server process's pipe (server/process.py), or a wrapper
    of either (serve --transcripts tees it). A source with a `behind` count has it shown."""

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
        run: str = "",
        keep_events: int = KEEP_EVENTS,
    ) -> None:
        """run: the session store's name for this server's run (closed sessions are read
        back from it); "" when the server keeps none. keep_events: closed sessions' events
        kept in memory (tutor/sandbox/class_model.py)."""
        self.console = console
        self.events = events
        self.model = DashboardModel()
        self.transcripts = Transcripts(console)
        self.view = DashboardView(self.model, self.transcripts, header)
        self.live = LiveClass(header.maildir, run, keep_events=keep_events)
        self.view.given_name = self.live.given_name
        self.blocks = Blocks(console, self.live)
        self.roster = RosterPage(self.live, self._stage_of)
        self._back: Page | None = None  # where Esc goes from a history
        self._earlier: queue.SimpleQueue[StoredSession | None] = queue.SimpleQueue()
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
            self.live.feed(applied)
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
        self.view.behind = getattr(self.events, "behind", 0)
        self._take_earlier()
        if len(self.transcripts.sessions) > len(self.model.sessions) + 100:
            self.transcripts.forget_all_but(set(self.model.sessions))
        return taken

    def finish(self) -> tuple[int, int]:
        """After the server stopped: take every last event, paused or not; the counts."""
        for applied in self.model.resume():
            self.transcripts.add(applied)
            self.live.feed(applied)
        self.drain()
        return self.model.total_sessions, self.model.total_messages

    def read_earlier_sessions(self) -> threading.Thread:
        """The period's sessions of earlier runs (serve restarted during a class), read
        from the session store beside the loop and added to the roster as they come."""

        def read() -> None:
            try:
                for stored in self.live.earlier_sessions():
                    self._earlier.put(stored)
            finally:
                self._earlier.put(None)
                self._poke()

        reader = threading.Thread(target=read, name="smtp-tutor-earlier", daemon=True)
        reader.start()
        return reader

    def _take_earlier(self) -> None:
        while True:
            try:
                stored = self._earlier.get_nowait()
            except queue.Empty:
                return
            if stored is not None:
                self.live.add_stored(stored)
                self._dirty = True

    def _stage_of(self, session: int) -> str:
        row = self.model.row(session)
        return row.stage if row is not None else ""

    # --- keys ---------------------------------------------------------------------------

    def handle_key(self, key: str) -> None:
        model, view = self.model, self.view
        self._dirty = True
        page = view.page
        if isinstance(page, HistoryPage) and page.typing is not None and key != "c-c":
            page.type_key(key)  # a search being typed takes every key, q and p too
        elif key in ("q", "Q", "c-c"):
            self.request_quit()
        elif key in ("p", "P"):
            for applied in model.toggle_pause():
                self.transcripts.add(applied)
                self.live.feed(applied)
        elif view.detail is not None:
            self._detail_key(key)
        elif key in ("r", "R", "c", "C"):
            view.page = self.roster if key in ("r", "R") else None
        elif isinstance(page, HistoryPage):
            self._history_key(page, key)
        elif isinstance(page, RosterPage):
            self._roster_key(page, key)
        elif key == "h":
            self.open_history_of_session()
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

    def _roster_key(self, page: RosterPage, key: str) -> None:
        moves = {"up": -1, "k": -1, "down": 1, "j": 1, "pageup": -10, "pagedown": 10}
        if key in moves:
            page.move(moves[key])
        elif key in ("home", "g", "end", "G"):
            page.to_end(last=key in ("end", "G"))
        elif key in ("enter", "o"):
            name = page.chosen()
            if name is not None:
                self.open_history(name)

    def _history_key(self, page: HistoryPage, key: str) -> None:
        lines = {"up": -1, "k": -1, "down": 1, "j": 1}
        if key in lines:
            page.scroll(lines[key])
        elif key in ("pageup", "pagedown", " "):
            page.page(down=key != "pageup")
        elif key in ("home", "g", "end", "G"):
            page.to_end(key in ("end", "G"))
        elif key == "/":
            page.begin_search()
        elif key in ("n", "N") and page.query:
            page.next_match(forward=key == "n")
        elif key in ("escape", "backspace", "left"):
            self.view.page = self._back

    def open_history(self, name: str, start: tuple[str, int] | None = None) -> None:
        """One student's history in place of the view shown now (Esc comes back to it)."""
        self._back = self.view.page
        self.view.page = HistoryPage(self.blocks, name, start)

    def open_history_of_session(self) -> None:
        """The history of the focused session's student, at that session."""
        session = self.model.focus()
        name = self.live.student_of(session) if session is not None else None
        if session is None or name is None:
            self.view.say(
                "no session to follow yet"
                if session is None
                else f"session #{session} is no longer known to the roster",
                self.clock(),
            )
            return
        self.open_history(name, (self.live.run, session))

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
        self.view.detail = MessageDetail(found[0], session, others, message.recipients)

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
    server: TeachingServer | ServerProcess,
    options: serve.ServeOptions,
    console: Console,
    keys: TerminalKeys | None = None,
    events: EventSource | None = None,
) -> int:
    """serve with the dashboard: until q or Ctrl-C, then stop the server (421 to everyone).

    The terminal is restored on every way out; an unexpected error still stops the
    server before it propagates."""
    from tutor.server.process import ServerProcess
    from tutor.ui.common.keys import TerminalKeys

    if events is None:
        events = server.events if isinstance(server, ServerProcess) else server.capture.events
    if isinstance(server, ServerProcess):
        run = server.events.run
    else:
        run = server.capture.store.run if server.capture.store is not None else ""
    dashboard = Dashboard(console, events, Header.for_server(server, options), run=run)
    dashboard.read_earlier_sessions()
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
