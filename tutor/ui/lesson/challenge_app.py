"""`smtp-tutor challenge`: open-ended goals, judged on what the server stored.

A challenge is played by the lesson screen (the tutor's prompt, or a --script) or by
the coach screen (a real telnet in another window); only the framing differs: a goal
instead of a lesson, "Not solved yet" with what is missing once an attempt has settled,
and progress kept under "challenge:<id>" without ever losing a solve.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from tutor.engine import challenges, runner
from tutor.engine.driver import Turn
from tutor.engine.loader import default_challenges_dir, find_by_ref
from tutor.engine.model import Lesson
from tutor.engine.progress import Progress, Status
from tutor.smtp.events import BounceSent, MessageStored
from tutor.ui.common.lesson_view import sequence_diagram
from tutor.ui.common.line_input import PromptInput, choose_input, history_file
from tutor.ui.common.reply_detail import ReplyMemory
from tutor.ui.common.safe import join, lesson_markdown, untrusted
from tutor.ui.common.terminal import Terminal
from tutor.ui.lesson.coach_app import CoachScreen
from tutor.ui.lesson.lesson_app import LessonScreen, completion_words
from tutor.ui.lesson.list_view import progress_list, where_from

if TYPE_CHECKING:
    from tutor.engine.class_report import ClassTarget

HOW = (
    "Any commands you like: the challenge is judged on what the server stores, replies and "
    "bounces, not on what you type. /hint gives a hint, /show solves it for you (counts as "
    "help), /quit stops."
)
HOW_COACHED = (
    "Any commands you like, in your telnet window: the challenge is judged on what the "
    "server stores, replies and bounces, not on what you type. Here, at the coach> prompt: "
    "/hint gives a hint, /show what to type (counts as help), /quit stops."
)


# --- views --------------------------------------------------------------------------------


def _box(content: RenderableType, title: str, *, plain: bool, style: str) -> RenderableType:
    heading = untrusted(title, "bold")
    if plain:
        return Group(join(Text("== "), heading, Text(" ==")), content)
    return Panel(content, title=heading, title_align="left", border_style=style)


def challenge_intro(
    challenge: Lesson, total: int, *, plain: bool, how: str = HOW
) -> RenderableType:
    parts: list[RenderableType] = []
    if challenge.summary:
        parts.append(untrusted(challenge.summary, "bold"))
    parts.append(Text(how, style="dim"))
    title = f"Challenge {challenge.number} of {total}: {challenge.title}"
    return _box(Group(*parts), title, plain=plain, style="magenta")


def challenge_end(
    challenge: Lesson, assisted: bool, screen: LessonScreen, *, plain: bool
) -> RenderableType:
    parts: list[RenderableType] = [
        Text("Your session, as a sequence diagram:", style="bold"),
        sequence_diagram(screen.exchanges, plain=plain),
    ]
    if challenge.learned:
        parts.append(Text("Why it worked:", style="bold"))
        parts.append(lesson_markdown("\n".join(f"- {item}" for item in challenge.learned)))
    verdict = "solved with help" if assisted else "solved"
    parts.append(Text(f"Challenge {challenge.number} {verdict}.", style="bold green"))
    title = f"End of challenge {challenge.number}: {challenge.title}"
    return _box(Group(*parts), title, plain=plain, style="green")


def missing_view(missing: list[str], *, final: bool) -> Text:
    lead = "Not solved: still missing: " if final else "Not solved yet: "
    return untrusted(lead + "; ".join(missing) + ".", "bold yellow")


def challenge_table(found: list[Lesson], progress: Progress, *, plain: bool) -> RenderableType:
    def label(challenge: Lesson) -> str:
        return challenges.LABELS.get(challenges.status(progress, challenge), "not tried")

    return progress_list(found, label, noun="challenge", summaries=True, plain=plain)


# --- the screens --------------------------------------------------------------------------


@dataclass
class ChallengeScreen(LessonScreen):
    """The lesson screen, framed as a challenge."""

    status_name: ClassVar[str] = "Challenge"
    last_missing: tuple[str, ...] = ()  # what the last settled attempt lacked

    def _intro_panel(self) -> RenderableType:
        return challenge_intro(self.lesson, self.total, plain=self.plain)

    def _resume_index(self) -> int:
        return 0  # a challenge always starts afresh

    def _save(self) -> None:
        challenges.record(self.progress, self.lesson, Status.IN_PROGRESS, ())

    def _finish(self) -> None:
        self._ask_questions()
        assisted = bool(self.run.assisted)
        status = Status.DONE_WITH_HELP if assisted else Status.DONE
        challenges.record(self.progress, self.lesson, status, sorted(self.run.assisted))
        self.console.print(challenge_end(self.lesson, assisted, self, plain=self.plain))

    def _stopped(self) -> None:
        self._save()
        missing: list[str] = []
        if not self.run.finished:
            events = self.run.step_events
            if challenges.settled_attempt(events) or not self.last_missing:
                missing = challenges.unmet(self.run.step, events)
            else:  # a new session since the last attempt: report that attempt
                missing = list(self.last_missing)
        if missing:
            self.console.print(missing_view(missing, final=True))
        if challenges.status(self.progress, self.lesson) in challenges.SOLVED:
            self.console.print(
                Text(
                    f"Not solved this time; your earlier solve of challenge "
                    f"{self.lesson.number} is kept.",
                    style="bold",
                )
            )
            return
        self.console.print(
            Text(
                f"Challenge {self.lesson.number} is not solved yet. Try again with "
                f"`smtp-tutor challenge {self.lesson.number}`; /hint inside gives a hint.",
                style="bold",
            )
        )

    def _show_turn(self, turn: Turn) -> None:
        """As in a lesson, but "not yet" is said once an attempt has settled, not per line."""
        pending = runner.OutcomeStatus.PENDING
        quiet = [replace(o, missing=()) if o.status == pending else o for o in turn.outcomes]
        super()._show_turn(replace(turn, outcomes=quiet))
        if self.run.finished or not self.run.step.checks:
            return
        # An attempt settles with a stored message (and the bounce it causes, if any):
        # in the tutor's prompt both come in one turn, from a real telnet one by one.
        ends_attempt = any(isinstance(e, (MessageStored, BounceSent)) for e in turn.events)
        events = self.run.step_events
        if not ends_attempt or not challenges.settled_attempt(events):
            return
        missing = challenges.unmet(self.run.step, events)
        if missing:
            self.last_missing = tuple(missing)
            self.console.print(missing_view(missing, final=False))


@dataclass
class ChallengeCoachScreen(ChallengeScreen, CoachScreen):
    """A challenge played from a real telnet (or nc) in another window: the coach
    screen's loop (CoachScreen.play) with the challenge's framing."""

    def _intro_panel(self) -> RenderableType:
        return challenge_intro(self.lesson, self.total, plain=self.plain, how=HOW_COACHED)


# --- the commands -------------------------------------------------------------------------


def list_challenges(term: Terminal, challenges_dir: Path | None) -> int:
    console, plain = term.out, term.plain
    found = challenges.load_challenges(challenges_dir)
    progress = Progress.load()
    if progress.warning:  # a damaged file moved aside is said, once
        term.err.print(Text("warning: " + progress.warning, style="yellow"))
    console.print(challenge_table(found, progress, plain=plain or not console.is_terminal))
    solved = sum(1 for c in found if challenges.status(progress, c) in challenges.SOLVED)
    console.print(Text(f"{solved} of {len(found)} solved.", style="bold"))
    for line in where_from("challenges", challenges_dir or default_challenges_dir()):
        console.print(line)
    console.print(
        Text(
            "play one with: smtp-tutor challenge N   (add --telnet to use a real telnet)",
            style="dim",
        )
    )
    return 0


def play(
    term: Terminal,
    ref: str,
    *,
    script: str | None,
    challenges_dir: Path | None,
    maildir: Path,
    telnet_port: int | None = None,
    class_target: ClassTarget | None = None,
) -> int:
    """`smtp-tutor challenge N`: exit 0 when solved, 1 when left unsolved; with
    class_target each finished step and the solve are reported to the teacher's server."""
    found = challenges.load_challenges(challenges_dir)
    challenge = find_by_ref(found, ref, noun="challenge")
    progress = Progress.load()
    if progress.warning:
        term.err.print(Text("warning: " + progress.warning, style="yellow"))
    line_input = choose_input(
        term,
        script,
        lambda: PromptInput(
            completion_words(challenge),
            "Enter: send · /hint /show /quit",
            history_file=history_file("history"),
        ),
    )
    plain = term.plain
    arguments = (challenge, len(found), term.out, line_input, progress, maildir)
    reporter = None
    if class_target is not None:
        from tutor.ui.lesson.class_reporter import ClassReporter, class_outbox

        reporter = ClassReporter(
            class_target, term.out, "challenge", plain=plain, outbox=class_outbox()
        )
    if telnet_port is not None:
        coach = ChallengeCoachScreen(
            *arguments,
            plain=plain,
            port=telnet_port,
            replies=ReplyMemory(term.verbosity),
            reporter=reporter,
        )
        return 0 if coach.play() else 1
    screen = ChallengeScreen(
        *arguments, plain=plain, replies=ReplyMemory(term.verbosity), reporter=reporter
    )
    return 0 if screen.play() else 1


def validate(
    term: Terminal, paths: list[Path], challenges_dir: Path | None, *, replay: bool
) -> int:
    """Static checks (as for lessons, plus a goal and a counter-example), then a replay."""
    from tutor.ui.lesson.validate_app import validate as validate_files

    targets = paths or [challenges_dir or default_challenges_dir()]
    return validate_files(
        term.out, targets, replay=replay, noun="challenge", extra=challenges.static_problems
    )
