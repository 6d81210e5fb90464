"""The learner sees each progress report leave for the teacher (`--class HOST:PORT`): one
dim line per report, the SMTP session in brief, like the sessions the lessons teach.

    report → 192.168.1.10:2525: EHLO 250 · NOOP student=Ada 250 · MAIL 250 · RCPT 250 ·
    DATA 354 · . 250 2.0.0 OK id=… · QUIT 221

Reports are sent in the lesson's own thread, between two prompts (docs/teaching.md,
"Students at their own machine", says why): nothing is written while a prompt is shown.
A report that does not arrive gives one warning line, the first time; the lesson goes
on, and every later report tries again (one that arrives is shown as usual, and the
next failure warns again). The last report, the lesson's end, has no later one: if it
does not arrive it is kept (engine/class_outbox.py) and goes first the next time this
student reports to this class.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from tutor.classroom.report import Report
from tutor.engine.class_outbox import OUTBOX_FOLDER, Outbox
from tutor.engine.class_report import ClassTarget, Delivery, Played, deliver, progress_report
from tutor.engine.runner import LessonRun
from tutor.smtp.events import Event
from tutor.ui.common.safe import join, untrusted


def class_outbox() -> Outbox:
    """The outbox in the learner's data home."""
    from tutor.paths import data_home

    return Outbox(data_home() / OUTBOX_FOLDER)


class ClassReporter:
    """Sends a report whenever the learner got further, and once when they are done."""

    def __init__(
        self,
        target: ClassTarget,
        console: Console,
        played: Played,
        *,
        plain: bool,
        outbox: Outbox | None = None,
    ) -> None:
        self.target = target
        self.console = console
        self.played = played
        self.plain = plain
        self.outbox = outbox  # where a lost final report waits for the next run
        self.index_seen = 0  # the run's step index at the last look
        self.done_sent = False
        self.failing = False  # the last report did not arrive (and said so)
        self.outbox_tried = False  # what the outbox held was tried, once per run

    def after(self, run: LessonRun, events: Sequence[Event]) -> None:
        """Called after each input the lesson handled: report a step finished since the
        last call (the furthest one, if several), or the end."""
        if run.finished:
            if not self.done_sent:  # the last step's report is the lesson's own
                self.done_sent = True
                self._send(run, events)
            return
        moved_on = run.index > self.index_seen
        self.index_seen = run.index  # a rewind (a new session) is followed too
        if moved_on:
            self._send(run, events)

    def _send(self, run: LessonRun, events: Sequence[Event]) -> None:
        if not self.outbox_tried:
            self.outbox_tried = True
            self._send_kept()
        report = progress_report(self.target.student, self.played, run, events, time.time())
        if self._deliver(report) or report.kind == "step" or self.outbox is None:
            return
        if self.outbox.keep(self.target.where, report):
            self.console.print(kept_line(self.target.where))

    def _send_kept(self) -> None:
        """The ends of earlier lessons that did not arrive, before anything new."""
        if self.outbox is None:
            return
        for kept in self.outbox.waiting(self.target.where, self.target.student):
            if not self._deliver(kept.report):
                return  # still unreachable: they wait for the next run
            self.outbox.sent(kept)

    def _deliver(self, report: Report) -> bool:
        delivery = deliver(self.target, report)
        if delivery.exchanges:
            self.console.print(session_line(self.target.where, delivery, plain=self.plain))
        if delivery.delivered:
            self.failing = False
        elif not self.failing:
            self.failing = True
            self.console.print(warning_line(self.target.where, delivery.problem))
        return delivery.delivered


def session_line(where: str, delivery: Delivery, *, plain: bool) -> Text:
    """The report's session in one line: each command and its reply code."""
    arrow = "report to" if plain else "report →"
    parts: list[Text | str] = [Text(f"{arrow} ", style="dim"), untrusted(where + ": ", "dim")]
    for number, said in enumerate(delivery.exchanges):
        if number:
            parts.append(Text(" · ", style="dim"))
        reply = f"{said.code} {said.text}" if said.label == "." else str(said.code)
        parts.append(untrusted(f"{said.label} {reply}", "dim"))
    return join(*parts)


def warning_line(where: str, problem: str) -> Text:
    return untrusted(
        f"warning: the progress report did not reach the teacher's server at {where} "
        f"({problem}); the lesson goes on, and later reports will try again",
        "yellow",
    )


def kept_line(where: str) -> Text:
    return untrusted(
        f"the end of this lesson is kept on this machine: it goes to {where} first the next "
        "time you run a lesson or challenge with the same --class and --name",
        "yellow",
    )
