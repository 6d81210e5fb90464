"""Coach mode: the learner types into a real telnet (or nc, or openssl) in another window.

The tutor starts the teaching server on a fixed port, says what to run, and follows the
session the server records: every exchange is shown and explained here, and the lesson
advances on what the server received from that real client (docs/architecture.md, "How a
lesson runs": the runner consumes events, wherever they come from). The coach window has
its own small prompt for the tutor (/hint, /show, /skip, /quit); it never sends anything
to the server.
"""

from __future__ import annotations

import platform
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, ClassVar

from rich.text import Text

from tutor.engine.answers import canonical
from tutor.engine.driver import LessonDriver, Turn, persona_for, promised_event
from tutor.engine.model import Step
from tutor.engine.runner import Outcome
from tutor.errors import UserError
from tutor.server.process import ServerProcess
from tutor.smtp.events import (
    BareLineFeed,
    Event,
    Exchange,
    SessionClosed,
    SessionOpened,
)
from tutor.smtp.session_state import SessionState
from tutor.smtp.wire import host_port
from tutor.ui.common.line_input import LineInput, PromptInput
from tutor.ui.common.safe import untrusted
from tutor.ui.lesson.lesson_app import LessonScreen

if TYPE_CHECKING:
    from prompt_toolkit.application import Application

WAIT = 0.1  # how often the loop looks at this window's keyboard while no event comes
STORED_WAIT = 5.0  # the record of a message is published with its 250: this never waits long
CANCEL_WAIT = 5.0  # how long closing the prompt may take
PROMPT = "coach> "
COMMANDS = ("/hint", "/show", "/skip", "/state", "/back", "/more", "/help", "/quit")
KEYS = "here: /hint /show /skip /quit · SMTP commands go in your telnet window"
HELP = (
    "This window never sends anything to the server: type SMTP commands in your telnet window.\n"
    "/hint   a hint (again for a closer one)      /show   what to type there\n"
    "/skip   move on (counts as helped)           /back   read the previous step again\n"
    "/state  what the server knows now            /more   the last reply explained in full\n"
    "/quit   stop here; progress is kept"
)


def client_commands(host: str, port: int, system: str | None = None) -> list[tuple[str, str]]:
    """What to run in the other window, for this system, with why each one works."""
    system = system or platform.system()
    commands = []
    if system == "Darwin":
        commands.append((f"nc -c {host} {port}", "macOS's nc: -c sends CRLF line endings"))
    else:
        commands.append((f"telnet {host} {port}", "telnet sends CRLF line endings"))
        commands.append((f"nc -C {host} {port}", "nc with -C sends CRLF (without it, LF only)"))
    commands.append(
        (
            f"openssl s_client -starttls smtp -crlf -quiet -connect {host_port(host, port)}",
            "for STARTTLS; -quiet matters: without it lines starting with Q or R are eaten",
        )
    )
    return commands


def peer_name(opened: SessionOpened) -> str:
    """host:port of a client, as `ss` or a server log would write it."""
    return host_port(opened.peer_host, opened.peer_port)


def offer(lines: tuple[str, ...]) -> str:
    """Lines to type, in the screen contract's words."""
    if len(lines) == 1:
        return f"Type exactly: {lines[0]}"
    return "The lines are: " + " / ".join(line or "(empty)" for line in lines)


# --- the coach window's keyboard ------------------------------------------------------------


class CoachKeyboard:
    """This window's own line input, read in a background thread, so that the window keeps
    following the telnet session while the learner types here. It is a LineInput too:
    the end-of-lesson questions read through it, so no line is read twice.

    With prompt_toolkit (a real terminal) a prompt that is out can be taken back; a plain
    line read from a pipe cannot, so a line already asked for is handed to the next read.
    """

    def __init__(self, lines: LineInput, *, interactive: bool) -> None:
        self._lines = lines
        self.interactive = interactive
        self._prompts: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._typed: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._asked = False  # a prompt is out, its line not taken yet
        self.closed = False  # the input ended (Ctrl-D, Ctrl-C at the prompt, a closed pipe)
        self._thread = threading.Thread(target=self._serve, name="coach-keyboard", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (prompt := self._prompts.get()) is not None:
            self._typed.put(self._lines.read(prompt))

    def ask(self, prompt: str = PROMPT) -> None:
        """Put a prompt out, unless one is out already or the input has ended."""
        if not self._asked and not self.closed:
            self._asked = True
            self._prompts.put(prompt)

    def take(self, timeout: float | None = 0.0) -> tuple[bool, str | None]:
        """(True, line) once a line was typed, (True, None) at the end of input,
        (False, None) while nothing came within timeout (None: wait as long as it takes)."""
        try:
            line = self._typed.get(timeout=timeout) if timeout != 0 else self._typed.get_nowait()
        except queue.Empty:
            return False, None
        self._asked = False
        if line is None:
            self.closed = True
        return True, line

    def read(self, prompt: str) -> str | None:
        """LineInput: one line, after any prompt still out (questions, pauses)."""
        if self._asked and self.interactive:
            self._take_back()
        if self.closed:
            return None
        self.ask(prompt)
        return self.take(timeout=None)[1]

    def set_status(self, text: str) -> None:
        self._lines.set_status(text)

    def _take_back(self) -> None:
        """End the prompt that is out (a line typed at that very moment is dropped)."""
        deadline = time.monotonic() + CANCEL_WAIT
        while self._asked and time.monotonic() < deadline:
            app = _exit_running_prompt()
            try:
                self._typed.get(timeout=WAIT)
            except queue.Empty:
                continue  # the prompt had not started yet: exit it again
            self._asked = False
            if app is not None:
                app.erase_when_done = False  # lines typed later stay on screen

    def close(self) -> None:
        """Stop reading; a prompt_toolkit prompt is taken back so the terminal is restored."""
        if self.interactive and self._asked:
            self._take_back()
        self._prompts.put(None)
        if not self._asked:
            self._thread.join(timeout=CANCEL_WAIT)
        # else: blocked reading a pipe; the thread is a daemon and ends with the process


def _exit_running_prompt() -> Application[Any] | None:
    """Make the prompt_toolkit prompt running in the keyboard thread return (as EOF),
    erasing its empty prompt line; the application, if one was running."""
    from prompt_toolkit.application.current import get_app_or_none

    app = get_app_or_none()  # the default session is shared by all threads
    loop = app.loop if app is not None else None
    if app is None or loop is None or not app.is_running:
        return None

    def stop() -> None:
        if app.is_running and not app.is_done:
            app.erase_when_done = True
            app.exit(exception=EOFError())

    loop.call_soon_threadsafe(stop)
    return app


def _coach_prompt() -> PromptInput:
    return PromptInput([], KEYS, history_file=None, slash_commands=COMMANDS)


# --- the screen -----------------------------------------------------------------------------


@dataclass
class CoachScreen(LessonScreen):
    port: int = 2525
    host: str = "127.0.0.1"
    following: int = 0  # the session being coached
    server: ServerProcess | None = field(default=None, init=False)
    open_sessions: dict[int, SessionOpened] = field(default_factory=dict, init=False)
    own_sessions: set[int] = field(default_factory=set, init=False)  # the tutor's smtplib
    backlog: deque[Event] = field(default_factory=deque, init=False)
    keyboard: CoachKeyboard | None = field(default=None, init=False)
    saved_output: tuple[IO[str], Any] | None = field(default=None, init=False)
    no_more_hints: ClassVar[str] = (
        "No more hints: /show shows what to type in your telnet window "
        "(the step then counts as helped)."
    )

    def play(self) -> bool:
        if self.lesson.world:  # many hosts and a DNS server, not one server to telnet to
            raise UserError(
                f"{self.lesson.title!r} runs in the simulated internet, where the learner "
                "picks the host: take it without --telnet (a dig or a telnet in another "
                "terminal counts all the same: its first screen gives the ports)"
            )
        self.console.print(self._intro_panel())
        server = ServerProcess(self.maildir, persona_for(self.lesson), port=self.port, mirror=True)
        self.server = server
        from tutor.sandbox import serve as serve_mod

        serve_mod.start(server)  # bind errors become one clear line
        driver = LessonDriver(self.lesson, self.run, self.maildir, server=server)
        keyboard = self._take_keyboard()
        try:
            try:
                self._instructions(server)
                completed = self._coach(driver, server)
            except KeyboardInterrupt:
                completed = False
            if completed:
                self._finish()  # its questions read through the keyboard too
                self._while_session_open(server)
            else:
                self._stopped()
        finally:
            driver.close_client()
            server.stop()  # a client still connected gets 421 4.3.2
            keyboard.close()
            self._give_back_output()
        return completed

    def _take_keyboard(self) -> CoachKeyboard:
        """This window's prompt, read in a thread; at a terminal, output goes through
        prompt_toolkit so that it scrolls above the prompt instead of through it."""
        interactive = isinstance(self.line_input, PromptInput)
        if interactive:
            self.line_input = _coach_prompt()
            from prompt_toolkit.patch_stdout import StdoutProxy

            proxy = StdoutProxy(raw=True)
            self.saved_output = (self.console.file, proxy)
            self.console.file = proxy  # type: ignore[assignment]  # a text stream in all but name
        keyboard = CoachKeyboard(self.line_input, interactive=interactive)
        self.keyboard = keyboard
        self.line_input = keyboard
        return keyboard

    def _give_back_output(self) -> None:
        if self.saved_output is not None:
            original, proxy = self.saved_output
            proxy.close()  # writes what is still buffered
            self.console.file = original
            self.saved_output = None

    def _instructions(self, server: ServerProcess) -> None:
        host, port = server.address
        self.console.print(
            Text(f"Coach mode: the teaching server listens on {host} port {port}.", style="bold")
        )
        self.console.print(Text("Open another terminal and connect with one of:"))
        for command, why in client_commands(host, port):
            self.console.print(
                Text(f"  {command}", style="bold cyan"), Text(f"   ({why})", style="dim")
            )
        self.console.print(
            Text(
                "Type the lesson's commands there; this window explains each reply. "
                "Here, at the coach> prompt: /hint for a hint, /show for what to type, "
                "/skip to move on, /quit to stop (progress is kept).",
                style="dim",
            )
        )

    # --- the loop ---------------------------------------------------------------------------

    def _coach(self, driver: LessonDriver, server: ServerProcess) -> bool:
        keyboard = self.keyboard
        assert keyboard is not None
        events = server.capture.events
        while not self.run.finished:
            self._report_progress()  # --class: a step finished since the last look
            self._intro_coached()
            keyboard.ask()
            typed, line = keyboard.take()
            if typed:
                if not self._typed_here(line, driver):
                    return False
                continue
            if keyboard.closed and self.run.step.kind in ("read", "library"):
                return False  # nobody is left to press Enter
            event = self._next_event(events)
            if event is not None:
                self._follow(event, events)
        self._report_progress()
        return True

    def _while_session_open(self, server: ServerProcess) -> None:
        """The lesson is over, the learner's session need not be: reaching the goal never
        hangs up on the learner. The server keeps the session, and this window explains
        what comes, until the client QUITs or leaves, or Enter here stops the server."""
        events = server.capture.events
        keyboard = self.keyboard
        assert keyboard is not None
        while self.backlog or not events.empty():  # what came while the end was shown
            self._after_the_end(self._next_event(events), events)
        if self.following not in self.open_sessions:
            return
        self.console.print(
            Text(
                "Your session stays open: go on in your telnet window if you like (each "
                "reply is still explained here), or type QUIT there. Press Enter here to "
                "stop the server instead (it then closes that session with 421).",
                style="bold",
            )
        )
        try:
            while self.following in self.open_sessions:
                keyboard.ask()
                typed, line = keyboard.take()
                if typed and (line is not None or keyboard.interactive):
                    return  # Enter, /quit or Ctrl-D here; a pipe that ended asks nothing
                self._after_the_end(self._next_event(events), events)
        except KeyboardInterrupt:
            return
        self.console.print(Text("Your session is over; the server stops.", style="dim"))

    def _after_the_end(self, event: Event | None, events: queue.SimpleQueue[Event]) -> None:
        """An event once the lesson is over: the learner's own session is still explained."""
        if event is not None and event.session == self.following:
            self._follow(event, events)

    def _next_event(self, events: queue.SimpleQueue[Event]) -> Event | None:
        if self.backlog:
            return self.backlog.popleft()
        try:
            return events.get(timeout=WAIT)
        except queue.Empty:
            return None

    def _typed_here(self, line: str | None, driver: LessonDriver) -> bool:
        """A line typed in this window: a slash command for the tutor, never for the server."""
        step = self.run.step
        waits_for_enter = step.kind in ("read", "library")
        if line is None:
            if self.keyboard is not None and self.keyboard.interactive:
                return False  # Ctrl-C or Ctrl-D at the prompt
            if waits_for_enter:
                return False  # nobody is left to press Enter
            self.console.print(
                Text(
                    "(Input to this window has ended: it goes on following your telnet "
                    "session; Ctrl-C stops.)",
                    style="dim",
                )
            )
            return True
        command = line.strip().split()[0].lower() if line.strip() else ""
        if command == "/quit":
            return False
        if not command:
            if waits_for_enter:
                self._perform(driver, step)
            return True
        if command == "/hint":
            self._hint(step)
        elif command == "/show":
            self._show_what_to_type(step)
        elif command == "/skip":
            self._skip(step, driver)
        elif command == "/help":
            self.console.print(Text(HELP))
        elif command in COMMANDS:
            self._slash(command, driver)  # /state, /back, /more: the lesson screen's own
        else:
            self.console.print(
                Text(
                    "This window sends nothing to the server: type SMTP commands in your "
                    "telnet window. Here: /hint /show /skip /quit (/help for more).",
                    style="cyan",
                )
            )
        return True

    def _intro_coached(self) -> None:
        if self.run.finished or self.shown_step == self.run.index:
            return
        from tutor.ui.common import lesson_view as view

        step = self.run.step
        self.shown_step = self.run.index
        self.hints_given = 0
        self._show_status()
        self.console.print(
            view.step_intro(step, self.run.index, len(self.lesson.steps), plain=self.plain)
        )
        if step.dns:
            self.console.print(view.dns_view(step.dns, plain=self.plain))
        if step.kind == "connect":
            if step.open_relay is not None and self.server is not None:
                self.server.update_persona(open_relay=step.open_relay)
                setting = "an OPEN relay" if step.open_relay else "a closed relay"
                self.console.print(Text(f"The server is now {setting}.", style="bold magenta"))
            self.console.print(Text("  Waiting for your client to connect…", style="dim"))
        elif step.kind in ("read", "library"):
            self.console.print(
                Text("  Press Enter to continue (here, at the coach> prompt).", style="dim")
            )
        elif step.kind == "pipeline":
            self.console.print(
                Text("  Paste these lines into your client all at once:", style="dim")
            )
            for line in step.lines:
                self.console.print(untrusted("    " + line))

    # --- the tutor's commands, from this window ----------------------------------------------

    def _show_what_to_type(self, step: Step) -> None:
        """/show: the answer, to type in the other window; the tutor types nothing there."""
        answer = canonical(step)
        if answer.action == "advance":
            self.console.print(Text("Nothing to type: press Enter here to go on.", style="cyan"))
            return
        if answer.action == "library":
            self.console.print(
                Text("The tutor sends this one itself: press Enter here.", style="cyan")
            )
            return
        if answer.action == "connect":  # the instructions above said so already: no help
            host, port = self.server.address if self.server else (self.host, self.port)
            lines: tuple[str, ...] = (client_commands(host, port)[0][0],)
            where = "Connect from another terminal:"
        else:
            self.run.mark_assisted()
            lines = answer.lines
            where = (
                "Type this in your telnet window; the tutor types nothing there "
                "(this step counts as helped):"
            )
        self.console.print(Text(where, style="cyan"))
        self.console.print(untrusted(offer(lines), "bold"))

    def _skip(self, step: Step, driver: LessonDriver) -> None:
        if step.optional or step.kind == "read":
            self._skip_unneeded(step)
            return
        self.run.mark_assisted()
        if step.kind == "library":
            self._perform(driver, step)  # the tutor's own client: it can do this one
            return
        self.run.skip()
        answer = canonical(step)
        self.console.print(
            Text(
                "Skipped (counts as helped). The server has not seen this step, though: "
                "if a later command is refused for it (503, bad sequence), send it first "
                "in your telnet window:",
                style="cyan",
            )
        )
        if answer.lines:
            self.console.print(untrusted(offer(answer.lines), "bold"))

    def _show_library(self, turn: Turn) -> None:
        """The tutor's own smtplib session is not the learner's: never follow it."""
        self.own_sessions.update(event.session for event in turn.events)
        super()._show_library(turn)

    # --- following the learner's session ------------------------------------------------------

    def _follow(self, event: Event, events: queue.SimpleQueue[Event]) -> None:
        if event.session in self.own_sessions:
            return
        if isinstance(event, SessionOpened):
            self._opened(event)
            return
        if isinstance(event, SessionClosed):
            self.open_sessions.pop(event.session, None)
        if event.session != self.following and not self._takes_over(event):
            return
        if isinstance(event, BareLineFeed):
            self.console.print(untrusted(_bare_lf_advice(event.in_data), "bold yellow"))
            return
        group = [event]
        if isinstance(event, Exchange) and (promised := promised_event(event)) is not None:
            group += self._promised(event, promised, events)
        self._judge(group)
        if isinstance(event, SessionClosed) and self.run.needs_session():
            self.console.print(
                Text(
                    "The session ended before the lesson did. Connect again from your "
                    "other window; the lesson goes back to the greeting.",
                    style="yellow",
                )
            )
            self._restart_session()

    def _opened(self, opened: SessionOpened) -> None:
        if opened.refused:
            self.console.print(
                untrusted(
                    f"  A connection from {peer_name(opened)} was refused (421: too many "
                    f"connections); the lesson is unchanged.{self._still_following()}",
                    "dim",
                )
            )
            return
        self.open_sessions[opened.session] = opened
        current = self.open_sessions.get(self.following)
        if current is None or self.run.step.kind == "connect":
            self._follow_session(opened, "the newest connection")
            return
        self.console.print(
            untrusted(
                f"  Another connection, from {peer_name(opened)}. Still following "
                f"{peer_name(current)}, where the lesson is; type a command in the new "
                "one and this window follows it instead.",
                "yellow",
            )
        )

    def _takes_over(self, event: Event) -> bool:
        """A command from another open connection: the learner is typing there now."""
        opened = self.open_sessions.get(event.session)
        if opened is None or not isinstance(event, Exchange):
            return False
        if event.kind in ("greeting", "notice"):
            return False  # nothing typed there (a banner, an idle 421)
        self._follow_session(opened, "a command came from there")
        return True

    def _follow_session(self, opened: SessionOpened, why: str) -> None:
        """Follow this client from now on; a new session rewinds the lesson to the greeting."""
        rewinds = self.following != 0 and self._rewind_index() < self.run.index
        self.following = opened.session
        self.state = SessionState()
        self.console.print(untrusted(f"  Following {peer_name(opened)}, {why}.", "bold"))
        if rewinds and self.run.step.kind != "connect":
            self.console.print(
                Text(
                    "  A new session starts from nothing, so the lesson goes back to the greeting.",
                    style="yellow",
                )
            )
            self._restart_session()
            self._intro_coached()

    def _still_following(self) -> str:
        current = self.open_sessions.get(self.following)
        return f" Still following {peer_name(current)}." if current else ""

    def _promised(
        self, exchange: Exchange, promised: type[Event], events: queue.SimpleQueue[Event]
    ) -> list[Event]:
        """The event the server publishes right after this exchange: the record of the
        message its 250 accepted, the result of an AUTH. Judging waits for it rather than
        saying "not there yet" about a message that is there; other events wait their turn."""
        for event in self.backlog:
            if isinstance(event, promised) and event.session == exchange.session:
                self.backlog.remove(event)
                return [event]
        deadline = time.monotonic() + STORED_WAIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = events.get(timeout=left)
            except queue.Empty:
                break
            if isinstance(event, promised) and event.session == exchange.session:
                return [event]
            self.backlog.append(event)
        return []

    def _judge(self, group: list[Event]) -> None:
        outcomes: list[Outcome] = []
        for event in group:
            outcome = self.run.observe(event)
            if outcome is not None:
                outcomes.append(outcome)
            recheck = self.run.recheck()
            if recheck is not None:
                outcomes.append(recheck)
            if isinstance(event, Exchange):
                note = _control_bytes_note(event.sent)
                if note:
                    self.console.print(untrusted(note, "yellow"))
        self._show_turn(Turn(events=group, outcomes=outcomes))
        if any(_is_slash_command(e) for e in group):
            self.console.print(
                Text(
                    "Slash commands are for the tutor: type them here, at the coach> prompt. "
                    "The server only knows SMTP, hence its 500.",
                    style="yellow",
                )
            )

    def _restart_session(self) -> None:
        self.state = SessionState()
        restart = self._rewind_index()
        if self.run.index > restart:
            self.run.go_to(restart)

    def _rewind_index(self) -> int:
        """Where a new session takes the lesson back to: its first command step."""
        return next((i for i, s in enumerate(self.lesson.steps) if s.kind == "command"), 0)


def _is_slash_command(event: Event) -> bool:
    """/hint typed into telnet: it went to the server, which answers 500."""
    return isinstance(event, Exchange) and event.kind == "command" and event.sent.startswith(b"/")


def _bare_lf_advice(in_data: bool) -> str:
    if in_data:
        return (
            "Your client sends LF only inside DATA: this message cannot end, because only "
            "CRLF.CRLF ends DATA (RFC 5321 §4.1.1.4). Quit it and use `nc -C`, telnet, or "
            "`openssl s_client -crlf`."
        )
    return (
        "Your client ends lines with LF only (plain nc does). Commands still work, but a message "
        "will never end: use `nc -C`, telnet, or `openssl s_client -crlf`."
    )


def _control_bytes_note(sent: bytes) -> str:
    """Backspaces and telnet negotiation bytes that reached the server, explained."""
    notes = []
    if b"\x08" in sent or b"\x7f" in sent:
        notes.append(
            "your line holds backspace bytes (0x08/0x7f): the client sent your corrections "
            "as bytes, and the server read them as part of the command"
        )
    if b"\xff" in sent:
        notes.append(
            "your line holds telnet negotiation bytes (IAC, 0xff): telnet talks to the "
            "server about options; an SMTP server does not understand them"
        )
    return ("note: " + "; ".join(notes) + ".") if notes else ""
