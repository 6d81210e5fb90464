"""Coach mode: the learner types into a real telnet (or nc, or openssl) in another window.

The tutor starts the teaching server on a fixed port, says what to run, and follows the
session the server records: every exchange is shown and explained here, and the lesson
advances on what the server received from that real client (DESIGN §3: the runner
consumes events, wherever they come from).
"""

from __future__ import annotations

import platform
import queue
from dataclasses import dataclass, field

from rich.text import Text

from tutor.engine.driver import LessonDriver, Turn, persona_for
from tutor.engine.runner import DONE, NOTED, OFF_STEP, REFUSED, Outcome
from tutor.events import BareLineFeed, Event, Exchange, SessionClosed, SessionOpened
from tutor.server.runner import TeachingServer
from tutor.session_state import SessionState
from tutor.ui.lesson_app import LessonScreen
from tutor.ui.safe import lesson_markdown, untrusted

WAIT = 0.3  # how often the loop wakes to stay responsive to Ctrl-C while no event comes


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
            f"openssl s_client -starttls smtp -crlf -quiet -connect {host}:{port}",
            "for STARTTLS; -quiet matters: without it lines starting with Q or R are eaten",
        )
    )
    return commands


@dataclass
class CoachScreen(LessonScreen):
    port: int = 2525
    host: str = "127.0.0.1"
    following: int = 0  # the session being coached
    server: TeachingServer | None = field(default=None, init=False)

    def play(self) -> bool:
        self.console.print(self._intro_panel())
        server = TeachingServer(self.maildir, persona_for(self.lesson), port=self.port)
        self.server = server
        from tutor import serve as serve_mod

        serve_mod.start(server)  # bind errors become one clear line
        driver = LessonDriver(self.lesson, self.run, self.maildir, server=server)
        try:
            self._instructions(server)
            completed = self._coach(driver, server)
        except KeyboardInterrupt:
            completed = False
        finally:
            driver.close_client()
            server.stop()
        if completed:
            self._finish()
        else:
            self._stopped()
        return completed

    def _instructions(self, server: TeachingServer) -> None:
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
                "Ctrl-C here stops the lesson (progress is kept).",
                style="dim",
            )
        )

    def _coach(self, driver: LessonDriver, server: TeachingServer) -> bool:
        events = server.capture.events
        while not self.run.finished:
            step = self.run.step
            self._intro_coached(step)
            if step.kind in ("read", "library"):
                answer = self.line_input.read("Press Enter to continue (/quit to stop) > ")
                if answer is None or answer.strip() == "/quit":
                    return False
                self._perform(driver, step)
                continue
            try:
                event = events.get(timeout=WAIT)
            except queue.Empty:
                continue
            self._follow(event)
        return True

    def _intro_coached(self, step: object) -> None:
        if self.shown_step == self.run.index:
            return
        from tutor.ui import lesson_view as view

        self.shown_step = self.run.index
        self.hints_given = 0
        current = self.run.step
        self.console.print(
            view.step_intro(current, self.run.index, len(self.lesson.steps), plain=self.plain)
        )
        if current.dns:
            self.console.print(view.dns_view(current.dns, plain=self.plain))
        if current.kind == "connect":
            self.console.print(Text("  Waiting for your client to connect…", style="dim"))
        elif current.kind == "pipeline":
            self.console.print(
                Text("  Paste these lines into your client all at once:", style="dim")
            )
            for line in current.lines:
                self.console.print(untrusted("    " + line))

    def _follow(self, event: Event) -> None:
        if isinstance(event, SessionOpened):
            if event.session != self.following:
                if self.following:
                    self.console.print(
                        Text(
                            f"A new connection (session #{event.session}): following "
                            "it. A new session starts from nothing.",
                            style="yellow",
                        )
                    )
                    self._restart_session()
                self.following = event.session
                self.console.print(
                    untrusted(f"  connected from {event.peer_host} port {event.peer_port}", "dim")
                )
            return
        if event.session != self.following:
            return
        if isinstance(event, BareLineFeed):
            self.console.print(untrusted(_bare_lf_advice(event.in_data), "bold yellow"))
            return
        outcome = self.run.observe(event)
        outcomes = [outcome] if outcome is not None else []
        recheck = self.run.recheck()
        if recheck is not None:
            outcomes.append(recheck)
        if isinstance(event, Exchange):
            note = _control_bytes_note(event.sent)
            if note:
                self.console.print(untrusted(note, "yellow"))
        self._show_turn(Turn(events=[event], outcomes=outcomes))
        for item in outcomes:
            self._coach_hint(item)
        if isinstance(event, SessionClosed) and self.run.needs_session():
            self.console.print(
                Text(
                    "The session ended before the lesson did. Connect again from your "
                    "other window; the lesson goes back to the greeting.",
                    style="yellow",
                )
            )
            self._restart_session()

    def _restart_session(self) -> None:
        self.state = SessionState()
        restart = next((i for i, s in enumerate(self.lesson.steps) if s.kind == "command"), 0)
        if self.run.index > restart:
            self.run.go_to(restart)

    def _coach_hint(self, outcome: Outcome) -> None:
        """No prompt here to ask for /hint: after a miss, the next hint comes by itself."""
        if outcome.status in (DONE, NOTED) or outcome.status not in (REFUSED, OFF_STEP):
            return
        step = outcome.step
        if self.hints_given < len(step.hints):
            label = f"**Hint {self.hints_given + 1}/{len(step.hints)}:** "
            self.console.print(lesson_markdown(label + step.hints[self.hints_given]))
            self.hints_given += 1


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
