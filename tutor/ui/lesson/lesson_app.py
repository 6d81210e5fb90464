"""One lesson, interactively: explain a step, read the learner's line, show what happened.

Every line goes to the real server as typed. The screen shows the exact bytes, the
reply, what it means in this state, and what the server now knows. Slash commands
steer the tutor itself: /hint, /show, /skip, /back, /state, /help, /quit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.console import Console, RenderableType
from rich.text import Text

from tutor.engine import questions, runner
from tutor.engine.answers import canonical
from tutor.engine.driver import LessonDriver, Turn
from tutor.engine.drivers import driver_for
from tutor.engine.model import Lesson, Step
from tutor.engine.progress import FINISHED, Progress, Status
from tutor.engine.resume import SessionLines
from tutor.engine.runner import LessonRun
from tutor.smtp.events import (
    BounceSent,
    DnsLookup,
    DsnDelivered,
    Event,
    Exchange,
    HostReached,
    MailboxRead,
    MessageStored,
)
from tutor.smtp.session_state import SessionState
from tutor.ui.common import lesson_view as view
from tutor.ui.common.line_input import LineInput
from tutor.ui.common.reply_detail import ReplyMemory
from tutor.ui.common.safe import lesson_markdown, untrusted
from tutor.ui.lesson import present_view

if TYPE_CHECKING:  # imported only for `--class` (tutor/ui/lesson/class_reporter.py)
    from tutor.ui.lesson.class_reporter import ClassReporter

HELP = (
    "Type SMTP commands as you would in telnet; each goes to the real server as typed.\n"
    "/hint   a hint (again for a closer one)      /show   the tutor types the answer\n"
    "/skip   move on (counts as helped)           /back   read the previous step again\n"
    "/state  what the server knows now            /more   the last reply explained in full\n"
    "/lf TEXT  send TEXT ended by LF alone (as plain nc does), not CRLF\n"
    "/b64 TEXT  TEXT in base64, as message lines   /qp TEXT  TEXT in quoted-printable\n"
    "/quit   stop here; progress is kept"
)
_ADDRESS = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
_PREDICTION = re.compile(r"[2-5](?:xx|\d\d)?", re.IGNORECASE)


@dataclass
class LessonScreen:
    lesson: Lesson
    total: int
    console: Console
    line_input: LineInput
    progress: Progress
    maildir: Path
    plain: bool = False
    run: LessonRun = field(init=False)
    state: SessionState = field(default_factory=SessionState)
    exchanges: list[Exchange] = field(default_factory=list)
    hints_given: int = 0
    shown_step: int = -1
    prediction: str = ""  # the reply class the learner expects for the current step
    pending: str | None = None  # a line typed at another prompt, to be carried out next
    present: bool = False  # projector layout: a clean screen per step, the code large
    quit_requested: bool = False
    asks_predictions: ClassVar[bool] = True
    status_name: ClassVar[str] = "Lesson"  # the status bar's "Lesson 3, step 2/9"
    pauses_in_present: ClassVar[bool] = True
    # After the last hint: what /show does on this screen.
    no_more_hints: ClassVar[str] = (
        "No more hints: /show makes the tutor type the answer (the step then counts as helped)."
    )
    events: list[Event] = field(default_factory=list)  # everything the server recorded
    replies: ReplyMemory = field(default_factory=ReplyMemory)  # full once, then brief
    last_explained: tuple[Exchange, SessionState] | None = None  # for /more
    session_lines: SessionLines = field(default_factory=SessionLines)  # replayed on resume
    judging: bool = True  # False while a skipped step's last line goes out
    reporter: ClassReporter | None = None  # `--class`: progress reports to the teacher

    def __post_init__(self) -> None:
        self.run = LessonRun(self.lesson)

    # --- the whole lesson -----------------------------------------------------------------

    def play(self) -> bool:
        """Run the lesson to its end or until the learner quits; True if completed."""
        resume = self._resume_index()
        self.console.print(self._intro_panel())
        driver = driver_for(self.lesson, self.run, self.maildir)
        try:
            self._start(driver, resume)
            self._report_progress()
            while not self.run.finished:
                if not self._step(driver):
                    self._stopped()
                    return False
                self._report_progress()
            self._finish()
            return True
        except KeyboardInterrupt:  # Ctrl-C between prompts (a reply on its way): stop as /quit
            self.console.print()
            self._stopped()
            return False
        finally:
            driver.close()

    def _report_progress(self) -> None:
        """`--class`: tell the teacher's server of a finished step, or of the end."""
        if self.reporter is not None:
            self.reporter.after(self.run, self.events)

    def _intro_panel(self) -> RenderableType:
        return view.lesson_intro(self.lesson, self.total, plain=self.plain)

    def _stopped(self) -> None:
        """The learner stopped before the end: keep progress and say how to resume."""
        self._save()
        self.console.print(
            Text(
                f"Stopped at step {self.run.index + 1}. Progress is kept: "
                f"smtp-tutor learn {self.lesson.number} picks up here.",
                style="bold",
            )
        )

    def _resume_index(self) -> int:
        saved = self.progress.of(self.lesson.id)
        if saved.status == Status.IN_PROGRESS and saved.step and self.lesson.world:
            self.console.print(
                Text(
                    "This lesson runs in a simulated internet started afresh each time, with "
                    "an empty queue: it starts again from its first step.",
                    style="yellow",
                )
            )
            return 0
        if saved.status == Status.IN_PROGRESS and saved.step:
            try:
                return self.lesson.step_index(saved.step)
            except KeyError:  # saved by an older version of the lesson
                self.console.print(
                    untrusted(
                        f"Your saved step {saved.step!r} is not in this version of the lesson: "
                        "starting from its beginning.",
                        "yellow",
                    )
                )
                return 0
        return 0

    def _start(self, driver: LessonDriver, resume: int) -> None:
        first = self.run.step
        if first.kind == "connect":
            self._intro(first)
        turn = driver.start(first)
        self._show_turn(turn)
        if self.lesson.world:
            from tutor.ui.lesson import world_view

            port = driver.server.address[1]
            shared = getattr(driver.server, "shared_port", True)
            self.console.print(
                world_view.world_intro(
                    getattr(driver, "dns_port", 0), port, shared_port=shared, plain=self.plain
                )
            )
        if resume > self.run.index:
            self._replay_to(driver, resume, self.progress.of(self.lesson.id).session)

    def _replay_to(self, driver: LessonDriver, target: int, saved: list[str]) -> None:
        """Resuming: a new session knows nothing, so the tutor replays, visibly, the
        learner's own lines that built the session last time (or, from an older progress
        file, the lesson's answers for the steps already done, and says so)."""
        if saved:
            self.console.print(
                Text(
                    "Picking up where you left off. A new connection is a new session and the "
                    "server remembers nothing, so the tutor replays your own lines from last "
                    "time:",
                    style="bold",
                )
            )
            for line in saved:
                if self.run.finished:
                    break
                self._replay_line(driver, line, "your line from last time")
        else:
            self.console.print(
                Text(
                    "Picking up where you left off. A new connection is a new session and the "
                    "server remembers nothing; your lines from last time were not kept, so the "
                    "tutor replays the lesson's answers for the steps you did:",
                    style="bold",
                )
            )
            while self.run.index < target and not self.run.finished:
                before = self.run.index
                answer = canonical(self.run.step)
                if answer.action != "lines":
                    self._perform(driver, self.run.step, quiet=True)
                for line in answer.lines if answer.action == "lines" else ():
                    self._replay_line(driver, line, "the lesson's line")
                if self.run.index == before:  # could not be replayed: continue from here
                    break
        if self.run.index < target and not self.run.finished:
            self.run.go_to(target)
        self.console.print(view.state_line(self.state, plain=self.plain))

    def _replay_line(self, driver: LessonDriver, line: str, whose: str) -> None:
        """One replayed line, with the first line of each reply. It is shown without a
        prompt: nobody is being asked anything while the tutor replays."""
        self._echo_typed("  ↻ ", line, f"replayed: {whose}")
        turn = self._send(driver, line, quiet=True)
        for exchange in turn.exchanges:
            if exchange.replies:
                self.console.print(untrusted("      " + exchange.replies[0], "dim"))

    def _ask_questions(self) -> None:
        """Two or three questions about the learner's own session, checked on the capture."""
        if not self.lesson.questions:
            return
        self.console.print(
            Text(
                "Questions about your own session (the answers are in your transcript above):",
                style="bold",
            )
        )
        right = 0
        for number, question in enumerate(self.lesson.questions, start=1):
            expected = questions.fact(question.fact, self.events)
            self.console.print(view.question_view(number, question.ask))
            answer = self.line_input.read("answer> ")
            if answer is None or answer.strip() in ("/quit", "/skip"):
                self.console.print(Text("  Questions left for another time.", style="dim"))
                break
            if questions.is_right(answer, expected):
                right += 1
                self.console.print(Text("  Right.", style="bold green"))
            else:
                self.console.print(
                    untrusted(
                        f"  Not quite: the answer was {expected or '(nothing)'}; "
                        f"{questions.WHERE[question.fact]}.",
                        "yellow",
                    )
                )
        self.console.print(Text(f"{right} of {len(self.lesson.questions)} right.", style="bold"))

    def _finish(self) -> None:
        self._ask_questions()
        status = Status.DONE_WITH_HELP if self.run.assisted else Status.DONE
        import time

        self.progress.update(
            self.lesson.id,
            status=status,
            step="",
            assisted=sorted(self.run.assisted),
            completed_at=time.time(),
        )
        self.console.print(view.lesson_end(self.lesson, self.run, self.exchanges, plain=self.plain))

    def _save(self) -> None:
        """Where the learner is, and the lines of the open session (for a resume). Playing
        a finished lesson again never lowers its status."""
        step = self.run.step.id if not self.run.finished else ""
        saved = self.progress.of(self.lesson.id)
        finished = saved.status in FINISHED
        self.progress.update(
            self.lesson.id,
            status=saved.status if finished else Status.IN_PROGRESS,
            step=step,
            assisted=sorted(set(self.run.assisted) | (set(saved.assisted) if finished else set())),
            session=list(self.session_lines.lines),
        )

    # --- one step -------------------------------------------------------------------------

    def _intro(self, step: Step) -> bool:
        """Show a step the first time; False if the learner quit at its prediction."""
        if self.shown_step == self.run.index:
            return True
        self.shown_step = self.run.index
        self.hints_given = 0
        self.prediction = ""
        self._show_step(step, self.run.index)
        if step.predict and self.asks_predictions:
            answer = self.line_input.read(
                "Predict first: which class of reply will this get? (2, 3, 4 or 5; Enter skips) > "
            )
            if answer is None:
                return False
            self.prediction, self.pending = _read_prediction(answer)
            if self.pending is not None:
                self.console.print(
                    untrusted(
                        "  That is a command, not a prediction: prediction skipped, "
                        f"and {self.pending.split()[0]} is carried out now.",
                        "yellow",
                    )
                )
            elif answer.strip() and not self.prediction:
                self.console.print(
                    Text("  A prediction is one digit, 2 to 5: skipped this time.", style="yellow")
                )
        return True

    def _show_step(self, step: Step, index: int) -> None:
        """A step's text; in presentation mode on a clean screen, under a banner."""
        if self.present:
            self.console.clear()
            self.console.print(
                present_view.step_banner(
                    self.lesson.number, self.lesson.title, index, len(self.lesson.steps)
                )
            )
        self.console.print(view.step_intro(step, index, len(self.lesson.steps), plain=self.plain))
        if step.dns:
            self.console.print(view.dns_view(step.dns, plain=self.plain))

    def _present_pause(self) -> None:
        """Presentation mode: the class reads the result before the next screen."""
        while not self.quit_requested:
            answer = self.line_input.read(
                "Enter: next step · b: back to the previous step · /quit > "
            )
            if answer is None or answer.strip() == "/quit":
                self.quit_requested = True
            elif answer.strip().lower() == "b" and self.run.index > 0:
                index = self.run.index - 1
                self._show_step(self.lesson.steps[index], index)
            else:
                return

    def _step(self, driver: LessonDriver) -> bool:
        """Handle one input for the current step; False when the learner quits."""
        step = self.run.step
        if self.quit_requested or not self._intro(step):
            return False
        self._save()
        self._show_status()
        if step.kind == "connect" and not step.host:
            self._reconnect(driver, announce=False, step=step)
            return True
        if step.kind in ("read", "library", "pipeline", "queue", "bounce", "inbox"):
            answer = self.line_input.read("Press Enter to continue (/quit to stop) > ")
            if answer is None or answer.strip() == "/quit":
                return False
            word = answer.split()[0] if answer.strip() else ""
            if word in _SLASH and word != "/lf":  # /qp, /b64, /help, …: the step waits
                return self._tutor_command(answer.strip(), driver)
            self._perform(driver, step)
            return True
        prompt = "data> " if driver.in_data else "smtp> "
        line, self.pending = (
            (self.pending, None)
            if self.pending is not None
            else (
                self.line_input.read(prompt),
                None,
            )
        )
        if line is None:
            return False
        if line.startswith("/") and line.split()[0] in _SLASH:
            return self._tutor_command(line, driver)
        self._send(driver, line)
        return True

    def _tutor_command(self, line: str, driver: LessonDriver) -> bool:
        """A slash command: the tutor's, never sent as typed; False for /quit."""
        word = line.split()[0]
        if word == "/lf":
            self._bare_lf(driver, line[len("/lf ") :])
            return True
        if word in _ENCODERS:  # shown to type, never sent (RFC 2045 §6.7, §6.8)
            from tutor.ui.common.mime_view import encoded_view  # with the first use

            self.console.print(encoded_view(_ENCODERS[word], line[len(word) + 1 :]))
            return True
        return self._slash(word, driver)

    def _send(self, driver: LessonDriver, line: str, *, quiet: bool = False) -> Turn:
        if driver.in_data:
            note = view.data_line_note(line, plain=self.plain)
            if note is not None and not quiet:
                self.console.print(note)
        if not driver.connected and not self.lesson.world:
            self._reconnect(driver, announce=True)
        self.session_lines.sent(line)
        turn = driver.send(line)
        if not turn.events and not turn.error and not quiet:
            # A message line: no reply until the lone dot, so show the bytes as they went.
            wire = b"".join(r.plaintext for r in turn.tap if r.direction == "sent")
            self.console.print(
                view.sent_line(wire or turn.sent, plain=self.plain, tls=self.state.tls)
            )
            if turn.note:
                self.console.print(untrusted(f"  note: {turn.note}", "yellow"))
        elif not quiet or turn.error:
            self._show_turn(turn)
        else:
            self._absorb(turn)
        if turn.closed and self.lesson.world and turn.exchanges:
            self.console.print(
                Text(
                    "The connection is closed. connect HOST opens a new session, with any "
                    "host of the world.",
                    style="yellow",
                )
            )
        elif turn.closed and self.run.needs_session() and not self.lesson.world:
            self._session_over(driver, turn)
        return turn

    def _perform(self, driver: LessonDriver, step: Step, *, quiet: bool = False) -> None:
        """Do a step's canonical answer, visibly ("show me", resuming, library steps)."""
        answer = canonical(step)
        if answer.action == "advance":
            self.run.advance()
        elif answer.action == "connect":
            self._reconnect(driver, announce=False, step=step)
        elif answer.action == "library":
            self.console.print(
                Text("The tutor hands this message to Python's smtplib.send_message:", style="bold")
            )
            for line in answer.lines:
                self.console.print(untrusted("    " + line))
            self._show_library(driver.send_with_library(answer.lines))
        elif answer.action == "queue":
            self._show_turn(driver.run_queue(step))  # type: ignore[attr-defined]
            self._back_if_not_yet(step)
        elif answer.action == "pipeline":
            self.console.print(
                Text("The tutor sends these lines in one write (PIPELINING):", style="bold")
            )
            for line in answer.lines:
                self.console.print(untrusted("    " + line + "␍␊"))
            turn = driver.send_pipeline(answer.lines)
            self._show_turn(turn)
        else:
            for line in answer.lines:
                if not quiet:
                    self._echo_typed(f"{'data' if driver.in_data else 'smtp'}> ", line)
                self._send(driver, line, quiet=quiet)

    def _echo_typed(self, prompt: str, line: str, how: str = "typed by the tutor") -> None:
        """Show a line the tutor types for the learner (show me, resume, demo)."""
        self.console.print(
            Text(prompt, style="bold"),
            untrusted(line),
            Text(f"   ({how})", style="dim"),
            sep="",
        )

    # --- slash commands ---------------------------------------------------------------------

    def _slash(self, command: str, driver: LessonDriver) -> bool:
        step = self.run.step
        if command == "/quit":
            return False
        if command == "/help":
            self.console.print(Text(HELP))
        elif command == "/state":
            self.console.print(view.state_line(self.state, plain=self.plain))
        elif command == "/more":
            if self.last_explained is None:
                self.console.print(Text("No reply to explain yet.", style="dim"))
            else:
                exchange, before = self.last_explained
                self.console.print(
                    view.exchange_view(exchange, before, plain=self.plain, show_sent=False)
                )
        elif command == "/hint":
            self._hint(step)
        elif command in ("/show", "/skip"):
            if command == "/skip" and (step.optional or step.kind == "read"):
                if driver.in_data:
                    self._end_message_for_skip(driver)
                self._skip_unneeded(step)
            else:
                self.run.mark_assisted()
                self._perform(driver, step)
        elif command == "/back":
            index = max(0, self.run.index - 1)
            previous = self.lesson.steps[index]
            self.console.print(
                Text(
                    "The previous step, to read again (the server cannot go back, "
                    "so you stay on the current step):",
                    style="dim",
                )
            )
            self.console.print(
                view.step_intro(previous, index, len(self.lesson.steps), plain=self.plain)
            )
            if previous.after:
                self.console.print(lesson_markdown(previous.after))
        return True

    def _bare_lf(self, driver: LessonDriver, text: str) -> None:
        """/lf TEXT: send TEXT ended by LF alone, as plain nc does, and show what happens."""
        if not driver.connected:
            self._reconnect(driver, announce=True)
        turn = driver.send_bare_lf(text)
        if driver.in_data or not turn.exchanges:
            self.console.print(view.sent_line(turn.sent, plain=self.plain, tls=self.state.tls))
        self._show_turn(turn)

    def _end_message_for_skip(self, driver: LessonDriver) -> None:
        """Skipping while the server reads message text: only a lone dot gets out of DATA
        (or hanging up), so the tutor ends the message, visibly, before moving on."""
        self.console.print(
            Text(
                "The server is reading your message text, and only a line with a lone dot "
                "ends it. The tutor types the dot, so the server stores what you typed so far:",
                style="yellow",
            )
        )
        self._echo_typed("data> ", ".")
        self.judging = False  # the step is being skipped: no "not there yet" for it
        try:
            self._send(driver, ".")
        finally:
            self.judging = True

    def _skip_unneeded(self, step: Step) -> None:
        """/skip on an optional or a read step: move on. Optional steps come in groups
        (a second message): skip the group."""
        optional = step.optional
        self.run.advance(skipped=True)
        while optional and not self.run.finished and self.run.step.optional:
            self.run.advance(skipped=True)

    def _hint(self, step: Step) -> None:
        if self.hints_given < len(step.hints):
            hint = step.hints[self.hints_given]
            self.console.print(view.hint_view(self.hints_given + 1, len(step.hints), hint))
            self.hints_given += 1
        else:
            self.console.print(Text(self.no_more_hints, style="cyan"))

    # --- showing what happened ----------------------------------------------------------------

    def _absorb(self, turn: Turn) -> None:
        self.events += turn.events
        for event in turn.events:
            if isinstance(event, Exchange):
                self.state.feed_exchange(event)
                self.exchanges.append(event)
                self.session_lines.saw(event)

    def _show_turn(self, turn: Turn) -> None:
        """What happened, in order: exchanges and events, then how the step went."""
        if turn.error and not turn.exchanges:
            self.console.print(untrusted(f"  {turn.error}", "red"))
        if turn.note:
            self.console.print(untrusted(f"  note: {turn.note}", "yellow"))
        if turn.dns_reply is not None or turn.timeline:
            self._show_world(turn)
        first_tls = not any(e.tls for e in self.exchanges)  # for the wire line below
        self.events += turn.events
        for event in turn.events:
            if isinstance(event, Exchange):
                before = self.state.copy()
                self.state.feed_exchange(event)
                self.exchanges.append(event)
                self.session_lines.saw(event)
                self._show_exchange(event, before)
                self._check_prediction(event)
            elif isinstance(event, MessageStored):
                self._show_stored(event)
            elif isinstance(event, DnsLookup | HostReached | DsnDelivered | MailboxRead):
                self._show_world_event(event, turn)
            else:
                note = view.event_note(event, plain=self.plain)
                if note is not None:
                    self.console.print(note)
                if isinstance(event, BounceSent):
                    self._show_bounce(event)
        if turn.tls is not None or any(e.tls for e in turn.exchanges):
            # TLS views need the certificate reader: imported only when TLS is in play.
            from tutor.ui.common import sandbox_view

            for extra in sandbox_view.lesson_tls_view(
                turn.tls, turn.tap, turn.exchanges, first_tls=first_tls, plain=self.plain
            ):
                self.console.print(extra)
        settled = _settled(turn.outcomes) if self.judging else []
        for outcome in settled:
            rendered = view.outcome_view(outcome, plain=self.plain)
            if rendered is not None:
                self.console.print(rendered)
        if turn.exchanges:  # what the server knows changes only with an exchange
            self.console.print(view.state_line(self.state, plain=self.plain))
        if turn.events:
            self._show_status()
        if (
            self.present
            and self.pauses_in_present
            and not self.run.finished
            and any(o.status == runner.OutcomeStatus.DONE for o in settled)
        ):
            self._present_pause()

    def _show_exchange(self, exchange: Exchange, before: SessionState) -> None:
        """An exchange, its meaning in full the first time its code appears, then brief."""
        if self.present:  # the projector's one presentation of it
            self.console.print(present_view.present_exchange(exchange, before, plain=self.plain))
            self.last_explained = (exchange, before)
            return
        brief = exchange.reply is not None and self.replies.brief(exchange.reply)
        self.console.print(view.exchange_view(exchange, before, plain=self.plain, brief=brief))
        if exchange.reply is not None:
            self.last_explained = (exchange, before)
        if brief and self.replies.first_brief():
            self.console.print(
                Text(
                    "    (a code you have met is explained briefly from now on; "
                    "/more explains the last reply in full)",
                    style="dim",
                )
            )

    def _show_status(self) -> None:
        """The bottom toolbar: where the learner is (it stays on screen however far the
        lesson scrolls), then what the server knows after the last reply."""
        what = f"{self.status_name} {self.lesson.number}"
        where = f"{what}, step {self.run.index + 1}/{len(self.lesson.steps)}"
        if self.run.finished:
            where = f"{what}, done"
        self.line_input.set_status(" · ".join([where, *self.state.summary()]))

    def _check_prediction(self, exchange: Exchange) -> None:
        """Compare the learner's guess with the first reply to the step's kind of command."""
        if not self.prediction or exchange.code is None:
            return
        step = self.lesson.steps[min(self.shown_step, len(self.lesson.steps) - 1)]
        if exchange.kind == "command" and not step.accepts(exchange.command):
            return
        guess, self.prediction = self.prediction, ""
        actual = str(exchange.code)[0]
        if guess == actual:
            self.console.print(Text(f"  Your prediction was right: {guess}xx.", style="bold green"))
        else:
            self.console.print(
                Text(
                    f"  You predicted {guess}xx; the server answered {exchange.code} "
                    f"({actual}xx). Worth a second look at why.",
                    style="bold yellow",
                )
            )

    def _back_if_not_yet(self, step: Step) -> None:
        """An inbox step whose copy does not say what the step asks: the message to read
        comes from the step before, so the learner goes back there to send another."""
        index = self.run.index
        if step.kind != "inbox" or self.run.finished or self.run.step is not step or index == 0:
            return
        self.console.print(
            Text(
                "Not what this step looks for: back to the step before, to send another "
                "message (then press Enter here again to read it).",
                style="yellow",
            )
        )
        self.run.go_to(index - 1)

    def _show_world(self, turn: Turn) -> None:
        """A world lesson's turn: the DNS answer to the learner's dig, the queue's log."""
        from tutor.ui.lesson import world_view

        if turn.dns_reply is not None:
            self.console.print(world_view.dig_answer(turn.dns_reply, plain=self.plain))
        if turn.timeline:
            self.console.print(world_view.queue_view(turn.timeline))

    def _show_world_event(
        self, event: DnsLookup | HostReached | DsnDelivered | MailboxRead, turn: Turn
    ) -> None:
        from tutor.ui.lesson import world_view

        if isinstance(event, DnsLookup):
            if turn.dns_reply is None:  # the learner's own dig elsewhere (or a name lookup)
                self.console.print(world_view.lookup_note(event))
        elif isinstance(event, MailboxRead):
            if turn.inbox is not None:
                self._show_inbox(event, *turn.inbox)
        elif isinstance(event, HostReached):
            self.console.print(world_view.reached_note(event))
            if event.code:  # a new session: the server knows nothing of the last one
                self.state = SessionState()
                self.session_lines.new_session()
        else:
            self.console.print(world_view.dsn_note(event))
            if turn.dsn_where is not None:
                self._show_dsn(*turn.dsn_where)

    def _show_inbox(self, read: MailboxRead, root: Path, where: str) -> None:
        """A message of the world as its server stored it, every line, and the verdicts."""
        from tutor.maildir import mailview
        from tutor.ui.common.message_view import stored_copy
        from tutor.ui.lesson import world_view

        for stored in mailview.find(root, where):
            self.console.print(world_view.inbox_heading(read))
            self.console.print(stored_copy(stored, plain=self.plain))
            self.console.print(world_view.verdicts_line(read))
            return

    def _show_dsn(self, root: Path, where: str) -> None:
        from tutor.maildir import mailview
        from tutor.smtp.dsnread import read_bounce
        from tutor.ui.lesson.bounce_view import bounce_view

        for stored in mailview.find(root, where):
            self.console.print(bounce_view(read_bounce(stored.raw), stored.ref))
            self.console.print(
                untrusted(
                    f"    (smtp-tutor mailbox --maildir {root} show {stored.ref} shows all of it)",
                    "dim",
                )
            )
            return

    def _show_stored(self, stored: MessageStored) -> None:
        from tutor.maildir import mailview  # the stored-mail views: not needed before a message

        roots = [self.maildir]
        world = self.maildir.parent / "world"  # a world lesson: each domain's own root
        if self.lesson.world and world.is_dir():
            roots = sorted(p for p in world.iterdir() if p.is_dir())
        copies = []
        for copy in stored.copies:
            for root in roots:
                copies += [m for m in mailview.find(root, f"{copy.folder}/{copy.key}")]
        self.console.print(view.envelope_view(stored, copies, plain=self.plain))

    def _show_bounce(self, bounce: BounceSent) -> None:
        """The bounce the lesson talks about, as the server stored it: on screen, not only
        described."""
        if bounce.copy is None:
            return
        from tutor.maildir import mailview
        from tutor.smtp.dsnread import read_bounce
        from tutor.ui.lesson.bounce_view import bounce_view

        where = f"{bounce.copy.folder}/{bounce.copy.key}"
        for stored in mailview.find(self.maildir, where):
            shown = stored.ref
            self.console.print(bounce_view(read_bounce(stored.raw), shown))
            self.console.print(
                Text(f"    (smtp-tutor mailbox show {shown} shows all of it)", style="dim")
            )
            return

    def _show_library(self, turn: Turn) -> None:
        self.events += turn.events
        before = SessionState()
        for event in turn.events:
            if isinstance(event, Exchange):
                self.console.print(view.exchange_view(event, before.copy(), plain=self.plain))
                before.feed_exchange(event)
            elif isinstance(event, MessageStored):
                self._show_stored(event)
        for outcome in turn.outcomes:
            if outcome.status == runner.OutcomeStatus.DONE:
                rendered = view.outcome_view(outcome, plain=self.plain)
                if rendered is not None:
                    self.console.print(rendered)

    # --- sessions that end ------------------------------------------------------------------

    def _session_over(self, driver: LessonDriver, turn: Turn) -> None:
        """QUIT too early, or the connection dropped: explain, then start a new session."""
        self.console.print(
            Text(
                "The session is over (the connection closed). A new connection starts a new "
                "session, and the server remembers nothing of the old one.",
                style="yellow",
            )
        )
        restart = next((i for i, s in enumerate(self.lesson.steps) if s.kind == "command"), 0)
        if self.run.index > restart:
            self.run.go_to(restart)
        self._reconnect(driver, announce=True)

    def _reconnect(self, driver: LessonDriver, *, announce: bool, step: Step | None = None) -> None:
        if announce:
            self.console.print(Text("Reconnecting…", style="dim"))
        self.state = SessionState()
        self.session_lines.new_session()
        if step is not None and step.open_relay is not None:
            setting = "an OPEN relay" if step.open_relay else "a closed relay"
            self.console.print(Text(f"The server is now {setting}.", style="bold magenta"))
        turn = driver.connect_for(step) if step is not None else driver.connect()
        self._show_turn(turn)


_SLASH = {"/hint", "/show", "/skip", "/back", "/state", "/more", "/lf", "/help", "/quit"}
_ENCODERS = {"/b64": "base64", "/qp": "quoted-printable"}
_SLASH |= set(_ENCODERS)


def _read_prediction(answer: str) -> tuple[str, str | None]:
    """What was typed at the prediction prompt: (a reply class, or ""; a line to carry out).

    A digit 2-5 is a prediction. A slash command or anything that looks like an SMTP line
    (more than one character) is not swallowed: it is carried out as if typed at the
    prompt, and the prediction is skipped.
    """
    text = answer.strip()
    if _PREDICTION.fullmatch(text):  # 5, 5xx or 550: the class is the first digit
        return text[0], None
    if len(text) > 1:
        return "", answer
    return "", None


def _settled(outcomes: list[runner.Outcome]) -> list[runner.Outcome]:
    """Drop a "not yet" that a later event in the same turn turned into "done"."""
    done = {id(o.step) for o in outcomes if o.status == runner.OutcomeStatus.DONE}
    return [o for o in outcomes if o.status == runner.OutcomeStatus.DONE or id(o.step) not in done]


def completion_words(lesson: Lesson) -> list[str]:
    """Addresses the lesson uses, for the prompt's completion."""
    words: set[str] = set()
    for step in lesson.steps:
        for text in (step.command, *step.lines, step.explain):
            words.update(f"<{address}>" for address in _ADDRESS.findall(text))
    return sorted(words)
