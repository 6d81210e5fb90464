"""The lesson runner: consumes a session's events and decides how each step went.

It never looks at what was typed to decide success: a step completes on what the server
saw, replied and stored (docs/architecture.md, "Three promises"). The events can come
from the tutor's own prompt, a --script file, or a real telnet in another terminal: the
runner cannot tell, on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from tutor.engine.checks import Verdict, evaluate
from tutor.engine.model import Lesson, Step
from tutor.smtp.events import (
    DnsLookup,
    DsnDelivered,
    Event,
    Exchange,
    HostReached,
    MailboxRead,
    SessionClosed,
)


class OutcomeStatus(StrEnum):
    """What one event did to the current step."""

    DONE = "done"  # the step is complete
    REFUSED = "refused"  # the right kind of command, but the reply was not the one expected
    OFF_STEP = "off-step"  # some other command: it went to the server all the same
    PENDING = "pending"  # right reply, but a check does not hold yet (goal steps, data checks)
    NOTED = "noted"  # nothing to judge (e.g. the 354 of a DATA command during a goal step)
    CONTINUES = "continues"  # the step's command got a 3xx: the dialogue goes on (AUTH's 334)


@dataclass(frozen=True)
class Outcome:
    status: OutcomeStatus
    step: Step
    exchange: Exchange | None = None
    feedback: str | None = None  # the lesson's targeted text for this reply, if any
    missing: tuple[str, ...] = ()  # checks that do not hold yet, in words


@dataclass
class LessonRun:
    """Where a learner is in a lesson, and what they needed help with."""

    lesson: Lesson
    index: int = 0
    assisted: set[str] = field(default_factory=set)
    completed: list[str] = field(default_factory=list)
    step_events: list[Event] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.index >= len(self.lesson.steps)

    @property
    def step(self) -> Step:
        return self.lesson.steps[self.index]

    def advance(self, *, skipped: bool = False) -> None:
        if not self.finished:
            if not skipped:
                self.completed.append(self.step.id)
            self.index += 1
            self.step_events = []

    def skip(self) -> None:
        self.assisted.add(self.step.id)
        self.advance(skipped=True)

    def go_to(self, index: int) -> None:
        self.index = max(0, min(index, len(self.lesson.steps)))
        self.step_events = []

    def needs_session(self) -> bool:
        """Do the remaining steps need the learner's own SMTP session (before a reconnect)?"""
        for step in self.lesson.steps[self.index :]:
            if step.kind == "connect":
                return False
            if step.kind in ("command", "data", "goal", "pipeline"):
                return True
        return False

    def mark_assisted(self) -> None:
        if not self.finished:
            self.assisted.add(self.step.id)

    def observe(self, event: Event) -> Outcome | None:
        """Feed one event of the learner's session; an Outcome when it decides something."""
        if self.finished:
            return None
        self.step_events.append(event)
        if isinstance(event, DnsLookup | HostReached | DsnDelivered | MailboxRead):
            return self._decided(self._judge_world(self.step, event))
        if isinstance(event, SessionClosed) or not isinstance(event, Exchange):
            return None
        outcome = self._judge(self.step, event)
        if outcome.status == OutcomeStatus.OFF_STEP:
            outcome = self._look_ahead(event) or outcome
        self.outcomes.append(outcome)
        if outcome.status == OutcomeStatus.DONE:
            self.advance()
        return outcome

    def _decided(self, outcome: Outcome | None) -> Outcome | None:
        if outcome is not None:
            self.outcomes.append(outcome)
            if outcome.status == OutcomeStatus.DONE:
                self.advance()
        return outcome

    def _judge_world(
        self, step: Step, event: DnsLookup | HostReached | DsnDelivered | MailboxRead
    ) -> Outcome | None:
        """A world lesson's events: a DNS question answered, a host reached (or not), a
        DSN delivered. Only the step they are about is judged by them; a goal step only
        learns from them when they complete it (no "not yet" for every dig)."""
        if step.kind == "connect" and step.host and isinstance(event, HostReached):
            if event.host != step.host or event.code not in (step.expect or (220,)):
                why = f"this step is about {step.host}"
                feedback = step.feedback_for(event.code, None) if event.code else None
                return Outcome(OutcomeStatus.REFUSED, step, None, feedback, (why,))
            return self._checks(step, None, None, OutcomeStatus.PENDING)
        if (
            (step.kind == "lookup" and isinstance(event, DnsLookup))
            or (step.kind in ("queue", "bounce") and isinstance(event, DsnDelivered))
            or (step.kind == "inbox" and isinstance(event, MailboxRead))
        ):
            return self._checks(step, None, None, OutcomeStatus.PENDING)
        if step.kind == "goal":
            outcome = self._checks(step, None, None, OutcomeStatus.PENDING)
            return outcome if outcome.status == OutcomeStatus.DONE else None
        return None

    def _look_ahead(self, exchange: Exchange) -> Outcome | None:
        """A learner who runs ahead (MAIL FROM while asked for HELO, having greeted
        already; QUIT instead of an optional second message) did the later step for
        real: move to it rather than insist. Optional steps are passed freely; at most
        two required ones."""
        required = 0
        for ahead in range(self.index + 1, len(self.lesson.steps)):
            step = self.lesson.steps[ahead]
            if step.kind not in ("command", "data", "read"):
                return None
            if step.kind != "read":
                outcome = self._judge(step, exchange)
                if outcome.status == OutcomeStatus.DONE:
                    while self.index < ahead:
                        self.advance(skipped=self.step.optional)
                    self.step_events = [exchange]
                    return outcome
            if not step.optional:
                required += 1
                if required >= 2:
                    return None
        return None

    def _judge(self, step: Step, exchange: Exchange) -> Outcome:
        code = exchange.code or 0
        reply = exchange.reply
        feedback = step.feedback_for(code, reply.enhanced if reply else None)
        if step.kind == "goal":
            return self._checks(step, exchange, feedback, OutcomeStatus.PENDING)
        if step.kind == "connect":
            if step.host:  # a world connect step is judged on HostReached
                return Outcome(OutcomeStatus.NOTED, step, exchange)
            if exchange.kind == "greeting" and code in (step.expect or (220,)):
                return Outcome(OutcomeStatus.DONE, step, exchange, feedback)
            return Outcome(OutcomeStatus.OFF_STEP, step, exchange, feedback)
        if exchange.kind in ("greeting", "notice"):  # (a goal step was judged above)
            # a new session's banner, an idle 421
            return Outcome(OutcomeStatus.NOTED, step, exchange)
        if step.kind == "data":
            if exchange.kind != "data":
                return Outcome(OutcomeStatus.OFF_STEP, step, exchange)
            if code not in (step.expect or (250,)):
                return Outcome(OutcomeStatus.REFUSED, step, exchange, feedback)
            return self._checks(step, exchange, feedback, OutcomeStatus.PENDING)
        if step.kind == "library":
            return self._checks(step, exchange, feedback, OutcomeStatus.NOTED)
        if step.kind == "pipeline":  # replies arrive one by one; the last one decides
            if exchange.kind == "command" and code in step.expect:
                return self._checks(step, exchange, feedback, OutcomeStatus.PENDING)
            return Outcome(OutcomeStatus.NOTED, step, exchange)
        # An answer to the server's 334 belongs to the AUTH step that started the dialogue.
        in_auth = exchange.kind == "auth" and step.accepts("AUTH LOGIN")
        if not in_auth and (exchange.kind != "command" or not step.accepts(exchange.command)):
            # The lesson's feedback is about *this* step's command; another command's
            # reply is explained by its own annotation instead.
            return Outcome(OutcomeStatus.OFF_STEP, step, exchange)
        if code not in step.expect:
            status = OutcomeStatus.CONTINUES if 300 <= code < 400 else OutcomeStatus.REFUSED
            return Outcome(status, step, exchange, feedback)
        return self._checks(step, exchange, feedback, OutcomeStatus.PENDING)

    def _checks(
        self, step: Step, exchange: Exchange | None, feedback: str | None, otherwise: OutcomeStatus
    ) -> Outcome:
        verdicts: list[Verdict] = [evaluate(c.kind, c.value, self.step_events) for c in step.checks]
        missing = tuple(v.why for v in verdicts if not v.ok)
        if step.kind in ("goal", "library", "lookup") and not step.checks:
            missing = ("(this step has no checks)",)
        status = OutcomeStatus.DONE if not missing else otherwise
        return Outcome(status, step, exchange, feedback, missing)

    def recheck(self) -> Outcome | None:
        """Judge the current step again on events that arrived after its exchange (bounces)."""
        if self.finished or not self.step.checks:
            return None
        exchanges = [e for e in self.step_events if isinstance(e, Exchange)]
        if not exchanges:
            return None
        last = exchanges[-1]
        if (
            self.step.kind != "goal"
            and self.step.expect
            and (last.code or 0) not in self.step.expect
        ):
            return None  # checks never turn a reply the step does not expect into "Done."
        outcome = self._checks(self.step, last, None, OutcomeStatus.PENDING)
        if outcome.status == OutcomeStatus.DONE:
            self.outcomes.append(outcome)
            self.advance()
            return outcome
        return None
