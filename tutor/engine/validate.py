"""`lessons validate`: static checks, the texts as the learner sees them, then a replay of
every lesson on the real server.

The texts are rendered by the screen's own functions (the UI passes a `Render`), so what
is checked is what is shown: no `<…>` lost, no literal Markdown, lines offered to type in
the form of the screen contract (engine/offers.py, docs/lessons.md).

The replay sends each step's canonical answer and proves it completes the step with a
reply in `expect`; each counter-example is sent in a fresh session, after the canonical
steps before it, and must *not* complete its step; each line a hint offers to type is
sent the same way and must complete it. An `on_reply` key must match a reply that the
step's kind of command can get (the reply table, plus every reply seen in the replay).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tutor.engine.answers import Answer, canonical, canonical_lines
from tutor.engine.checks import evaluate
from tutor.engine.driver import LessonDriver, Turn, persona_for
from tutor.engine.drivers import driver_for
from tutor.engine.loader import Problem, key_line, lesson_files, parse
from tutor.engine.model import Lesson, Step
from tutor.engine.offers import (
    COMMANDS_SEPARATOR,
    EMPTY,
    LINES_SEPARATOR,
    THE_LINES_ARE,
    TYPE_COMMANDS,
    TYPE_EXACTLY,
    Offer,
    find_offer,
)
from tutor.engine.questions import fact
from tutor.engine.runner import LessonRun
from tutor.server.replies import TABLE
from tutor.server.runner import TeachingServer
from tutor.smtp.events import Exchange
from tutor.smtp.textsafe import wire_lines

EXPLAIN_MAX_LINES = 12  # at 80 columns: about a screen's worth per step
EXPLAIN_WIDTH = 80


@dataclass
class Report:
    lessons: list[Lesson]
    problems: list[Problem]


def check_files(paths: list[Path]) -> Report:
    """Load every file, collecting every problem (not only the first)."""
    files: list[Path] = []
    for path in paths:
        files += lesson_files(path) if path.is_dir() else [path]
    problems: list[Problem] = []
    lessons: list[Lesson] = []
    seen: dict[str, Path] = {}
    for number, path in enumerate(files, start=1):
        before = len(problems)
        lesson = parse(path, number, problems)
        if lesson is None or len(problems) > before:
            continue
        if lesson.id in seen:
            problems.append(
                Problem(path, 1, f"lesson id {lesson.id!r} is also used by {seen[lesson.id]}")
            )
        seen[lesson.id] = path
        problems += _length_problems(path, lesson)
        lessons.append(lesson)
    return Report(lessons, problems)


def _length_problems(path: Path, lesson: Lesson) -> list[Problem]:
    out = []
    for step in lesson.steps:
        for name, text in (("explain", step.explain), ("after", step.after)):
            rows = sum(max(1, -(-len(line) // EXPLAIN_WIDTH)) for line in wire_lines(text))
            if rows > EXPLAIN_MAX_LINES:
                out.append(
                    Problem(
                        path,
                        step.line,
                        f"step {step.id!r}: {name} is {rows} lines at "
                        f"{EXPLAIN_WIDTH} columns; keep it to {EXPLAIN_MAX_LINES}",
                    )
                )
    return out


def validate_lesson(
    lesson: Lesson, render: Render, *, replay: bool, tls_dir: Path | None = None
) -> list[Problem]:
    """Everything `validate` checks about one loaded lesson, beyond loading it."""
    rendered = [Rendered(shown, render(shown)) for shown in lesson_texts(lesson)]
    problems = text_problems(lesson, rendered)
    observed: dict[int, list[Exchange]] = {}
    if replay:
        problems += replay_lesson(lesson, rendered, observed, tls_dir)
    return problems + on_reply_problems(lesson, observed)


# --- the texts, as the learner sees them ----------------------------------------------------

MARKDOWN = "markdown"  # explain, after, on_reply: the lesson's Markdown
HINT = "hint"  # a hint, under its `Hint k/n:` label
LIST = "list"  # one item of objectives or learned, in a bulleted list
QUESTION = "question"  # an end-of-lesson question, numbered
PLAIN = "plain"  # title, summary, misconception, goal: one line shown as written


@dataclass(frozen=True)
class Shown:
    """One text of a lesson file and how the screen shows it."""

    where: str  # for messages: "step 'mail': hint 3", "objectives", …
    text: str
    line: int
    form: str  # MARKDOWN, HINT, LIST, QUESTION or PLAIN
    step: int = -1  # the index of its step; -1 for the lesson's own texts
    number: int = 0  # hints: k of n; questions: the question's number
    total: int = 0


# The text as the screen prints it, once per way the screen can look (in colour, without).
Render = Callable[[Shown], tuple[str, ...]]


@dataclass(frozen=True)
class Rendered:
    shown: Shown
    outputs: tuple[str, ...]

    def offers(self) -> list[tuple[Offer, list[str]]]:
        """Each offer in each output, with the lines of that output after it."""
        found = []
        for output in self.outputs:
            lines = [line.rstrip() for line in wire_lines(output)]
            for row, line in enumerate(lines):
                offer = find_offer(line.strip())
                if offer is not None:
                    found.append((offer, [rest for rest in lines[row + 1 :] if rest.strip()]))
                    break
        return found


def lesson_texts(lesson: Lesson) -> list[Shown]:
    """Every text of the lesson that reaches the screen, with its line in the file."""
    source = _Source(Path(lesson.source))
    out = [
        Shown("title", lesson.title, source.find(1, "title", lesson.title), PLAIN),
        Shown("summary", lesson.summary, source.find(1, "summary", lesson.summary), PLAIN),
        Shown(
            "misconception",
            lesson.misconception,
            source.find(1, "misconception", lesson.misconception),
            PLAIN,
        ),
    ]
    for name, items in (("objectives", lesson.objectives), ("learned", lesson.learned)):
        out += [Shown(name, item, source.find(1, name, item), LIST) for item in items]
    for number, question in enumerate(lesson.questions, start=1):
        out.append(Shown(f"question {number}", question.ask, question.line, QUESTION, -1, number))
    for index, step in enumerate(lesson.steps):
        out += _step_texts(step, index, source)
    return [shown for shown in out if shown.text.strip()]


def _step_texts(step: Step, index: int, source: _Source) -> list[Shown]:
    at = step.line
    name = f"step {step.id!r}"
    out = [
        Shown(f"{name}: explain", step.explain, source.find(at, "explain", step.explain), MARKDOWN),
        Shown(f"{name}: goal", step.goal, source.find(at, "goal", step.goal), PLAIN),
        Shown(f"{name}: after", step.after, source.find(at, "after", step.after), MARKDOWN),
    ]
    total = len(step.hints)
    for number, hint in enumerate(step.hints, start=1):
        where = f"{name}: hint {number}"
        out.append(Shown(where, hint, source.find(at, "hints", hint), HINT, -1, number, total))
    table = source.find(at, "on_reply", "")
    for key, text in step.on_reply.items():
        line = source.key(table, f'"{key}"') or source.key(table, key) or table
        out.append(Shown(f"{name}: on_reply {key!r}", text, line, MARKDOWN))
    return [Shown(s.where, s.text, s.line, s.form, index, s.number, s.total) for s in out]


class _Source:
    """The lines of a lesson file, to point a problem at the line holding a text."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.lines = wire_lines(path.read_text(encoding="utf-8"))
        except OSError:
            self.lines = []

    def key(self, start: int, key: str) -> int:
        pattern = re.compile(rf"^\s*(?:{re.escape(key)}\s*=|\[\[?steps\.{re.escape(key)}\]\]?)")
        for index in range(max(start - 1, 0), len(self.lines)):
            if pattern.match(self.lines[index]):
                return index + 1
        return 0

    def find(self, start: int, key: str, text: str) -> int:
        """The line of `text` (its first words) at or after `key`; else the key's line."""
        at = self.key(start, key) or start
        words = next((line.strip() for line in wire_lines(text) if line.strip()), "")[:30]
        for index in range(at - 1, len(self.lines)):
            if words and words in self.lines[index]:
                return index + 1
        return at


# --- what the rendered texts must not do ----------------------------------------------------

_ANGLE = re.compile(r"<[^<>\n]*>")
_QUOTES = "\"'`‘’“”«»"
_CODE_NOTE = re.compile(r"\(\d{3}\)")
KINDS_THAT_TYPE = ("command", "data", "goal", "lookup")


def types_lines(step: Step) -> bool:
    """Does the learner type this step's answer? (A world lesson's connect step: yes,
    `connect HOST`; an ordinary connect step is the tutor's.)"""
    return step.kind in KINDS_THAT_TYPE or (step.kind == "connect" and bool(step.host))


def text_problems(lesson: Lesson, rendered: Sequence[Rendered]) -> list[Problem]:
    path = Path(lesson.source)
    problems: list[Problem] = []
    for item in rendered:
        problems += [Problem(path, item.shown.line, what) for what in _shown_problems(item)]
        step = lesson.steps[item.shown.step] if item.shown.step >= 0 else None
        if step is not None and item.shown.form == HINT:
            problems += [
                Problem(path, item.shown.line, what) for what in _hint_problems(step, item)
            ]
    return problems


def _shown_problems(item: Rendered) -> list[str]:
    shown = item.shown
    out = []
    for bracketed in dict.fromkeys(_ANGLE.findall(shown.text)):
        if any(_flat(bracketed) not in _flat(output) for output in item.outputs):
            out.append(
                f"{shown.where}: the screen loses {bracketed!r} (it shows {_excerpt(item)!r})"
            )
    if shown.form == PLAIN and ("`" in shown.text or "**" in shown.text):
        out.append(f"{shown.where} is shown as written, not as Markdown: drop the ` and **")
    elif any("`" in output for output in item.outputs):
        out.append(f"{shown.where}: a literal ` shows on the screen (a code span left open?)")
    if "(empty line)" in shown.text:
        out.append(f"{shown.where}: write (empty) for an empty line, as the screen contract does")
    offers = item.offers()
    if len({(offer.marker, offer.rest) for offer, _ in offers}) > 1:
        out.append(f"{shown.where}: the offered line differs between colour and no colour")
    if offers:
        out += [f"{shown.where}: {what}" for what in _offer_form(*offers[0])]
    return out


def _offer_form(offer: Offer, after: list[str]) -> list[str]:
    """The screen contract: the offer ends its text, and offers only what is typed."""
    out = []
    if after:
        out.append(f"text after the offered line ({after[0].strip()!r}): the offer must end it")
    if offer.marker == TYPE_COMMANDS and LINES_SEPARATOR in offer.rest:
        out.append(
            f"{TYPE_COMMANDS.strip()} separates commands with {COMMANDS_SEPARATOR!r}; "
            f"parts separated by {LINES_SEPARATOR!r} are offered as "
            f"{THE_LINES_ARE}A{LINES_SEPARATOR}B{LINES_SEPARATOR}{EMPTY}{LINES_SEPARATOR}."
        )
    elif offer.marker != TYPE_EXACTLY and len(offer.items) == 1:
        out.append(f"{offer.marker.strip()} offers one line: write {TYPE_EXACTLY.strip()} instead")
    for part in offer.items:
        if part != part.strip() or not part.strip():
            out.append(f"offered part {part!r}: no spaces around it (an empty line is {EMPTY})")
        elif part[0] in _QUOTES or part[-1] in _QUOTES:
            out.append(f"offered line {part!r}: no quotes or backticks around what is typed")
        elif _CODE_NOTE.search(part) or re.match(r"(?i)then\b", part):
            out.append(f"offered line {part!r}: a note in it would be typed too")
    return out


def _hint_problems(step: Step, item: Rendered) -> list[str]:
    shown = item.shown
    offers = item.offers()
    if not offers:
        if shown.number == shown.total and types_lines(step):
            return [
                f"{shown.where}: the last hint must offer what to type "
                f"({TYPE_EXACTLY.strip()} LINE, The lines are: A / B, or Type: A — B)"
            ]
        return []
    offer = offers[0][0]
    if not types_lines(step):
        return [f"{shown.where}: offers lines to type, but a {step.kind} step takes none"]
    if step.kind == "command" and not any(step.accepts(line) for line in offer.lines):
        return [f"{shown.where}: offers {offer.rest!r}, which the step's `accept` does not match"]
    return []


def _flat(text: str) -> str:
    return " ".join(text.split())


def _excerpt(item: Rendered) -> str:
    flat = _flat(item.outputs[-1]) if item.outputs else ""
    return flat if len(flat) <= 70 else flat[:69] + "…"


# --- on_reply: feedback that can be shown ---------------------------------------------------

# Rows of the reply table that answer no command of their own.
_END_OF_DATA = {"data_ok", "data_too_big", "data_line_too_long", "data_spam", "data_storage_full"}
_CONNECT = {"greeting", "too_many_connections"}
_NOTICE = {"idle_timeout", "shutdown"}
_UNKNOWN = {"unknown", "too_many_unknown"}
_ANY_LINE = {"empty_line", "bad_verb", "nul_byte", "command_too_long", "bad_utf8", "internal_error"}
VERBS = (
    *("HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "VRFY", "EXPN", "HELP"),
    *("STARTTLS", "AUTH", "QUIT"),
)


def _row_group(key: str) -> str:
    for group, keys in (
        ("end of data", _END_OF_DATA),
        ("connect", _CONNECT),
        ("notice", _NOTICE),
        ("unknown", _UNKNOWN),
        ("any line", _ANY_LINE),
    ):
        if key in keys:
            return group
    return key.split("_")[0].upper()


def _table_replies(groups: set[str] | None) -> set[tuple[int, str | None]]:
    rows = [row for row in TABLE if groups is None or _row_group(row.key) in groups]
    return {(row.code, row.enhanced) for row in rows}


def _accepted_groups(step: Step) -> set[str] | None:
    """The kinds of command a command step accepts (None: any command at all)."""
    if not step.accept:
        return None
    groups = {"any line"}
    for verb in VERBS:
        samples = (verb, f"{verb} x", f"{verb} FROM:<a@b.c>", f"{verb} TO:<a@b.c>", f"{verb} PLAIN")
        if any(step.accepts(sample) or step.accepts(sample.lower()) for sample in samples):
            groups.add(verb)
    if step.accepts("xyzzy") or step.accepts("XYZZY x"):
        groups.add("unknown")
    for line in (*canonical_lines(step.command), step.counter_example):
        if line and step.accepts(line):
            groups.add(line.split(" ")[0].split(":")[0].upper())
    return groups


def reachable_replies(step: Step) -> set[tuple[int, str | None]] | None:
    """What the reply table can answer to what the step judges with feedback."""
    if step.kind == "command":
        groups = _accepted_groups(step)
        return None if groups is None else _table_replies(groups)
    if step.kind == "data":
        return _table_replies({"end of data", "any line"})
    if step.kind == "connect":
        return _table_replies({"connect"})
    if step.kind == "read":
        return set()
    return None  # goal, pipeline, library: any reply of the session


def _matches(key: str, code: int, enhanced: str | None) -> bool:
    text = str(code)
    return key in (enhanced, text, text[:2] + "x", text[0] + "xx")


def on_reply_problems(lesson: Lesson, observed: dict[int, list[Exchange]]) -> list[Problem]:
    """An on_reply key no reply to the step's kind of command can match is dead text.

    Sound, not tight: a key counts as possible if any reply-table row for the kind of
    command the step accepts matches it (whatever the persona), or any reply the replay
    saw in that step (canonical answer, counter-example, offered lines).
    """
    path = Path(lesson.source)
    problems = []
    for index, step in enumerate(lesson.steps):
        possible = reachable_replies(step)
        if possible is None:
            continue
        for exchange in observed.get(index, []):
            reply = exchange.reply
            if reply is not None:
                possible.add((reply.code, reply.enhanced))
        source = _Source(path)
        table = source.key(step.line, "on_reply") or step.line
        for key in step.on_reply:
            if not any(_matches(key, code, enhanced) for code, enhanced in possible):
                problems.append(
                    Problem(
                        path,
                        source.key(table, f'"{key}"') or source.key(table, key) or table,
                        f"step {step.id!r}: on_reply {key!r} can never be shown: no reply "
                        f"to what a {step.kind} step like this accepts matches it",
                    )
                )
    return problems


# --- the replay ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Trial:
    """Other lines than the canonical answer, sent at one step."""

    index: int
    lines: tuple[str, ...]
    must_complete: bool  # an offered line must; a counter-example must not
    what: str  # for messages
    line: int


def replay_lesson(
    lesson: Lesson,
    rendered: Sequence[Rendered] = (),
    observed: dict[int, list[Exchange]] | None = None,
    tls_dir: Path | None = None,
) -> list[Problem]:
    """Play the canonical answers, then every counter-example and every offered line."""
    seen = observed if observed is not None else {}
    path = Path(lesson.source)
    problems: list[Problem] = []
    with tempfile.TemporaryDirectory(prefix="smtp-tutor-validate-") as scratch:
        server = _server(lesson, Path(scratch), tls_dir)
        with server:
            problems += _play(lesson, server, path, None, seen)
            for trial in _trials(lesson, rendered):
                problems += _play(lesson, server, path, trial, seen)
    return list(dict.fromkeys(problems))  # a broken step fails every later trial alike


def _trials(lesson: Lesson, rendered: Sequence[Rendered]) -> list[_Trial]:
    path = Path(lesson.source)
    trials = []
    for index, step in enumerate(lesson.steps):
        if step.counter_example:
            trials.append(
                _Trial(
                    index,
                    tuple(wire_lines(step.counter_example)),
                    False,
                    f"counter_example {step.counter_example!r}",
                    key_line(path, "counter_example", step.line),
                )
            )
    tried: set[tuple[int, tuple[str, ...]]] = set()
    for item in rendered:
        shown, step_index = item.shown, item.shown.step
        offers = item.offers()
        if shown.form != HINT or not offers or not types_lines(lesson.steps[step_index]):
            continue
        offer = offers[0][0]
        lines = offer.lines
        if lines == canonical(lesson.steps[step_index]).lines or (step_index, lines) in tried:
            continue  # the canonical replay proves these already
        tried.add((step_index, lines))
        what = f"{shown.where} offers {offer.rest!r}"
        trials.append(_Trial(step_index, lines, True, what, shown.line))
    return trials


def _server(lesson: Lesson, root: Path, tls_dir: Path | None) -> TeachingServer:
    if lesson.world:  # the simulated internet, started once for every replay
        from tutor.engine.world_link import WorldLessonServer

        return WorldLessonServer(root / "world")  # type: ignore[return-value]
    context = None
    persona = persona_for(lesson)
    if tls_dir is not None and persona.tls:
        from tutor.server.tlsmaterial import server_context

        context = server_context(persona.hostname, tls_dir)
    return TeachingServer(root / "Maildir", persona, tls_context=context)


def _play(
    lesson: Lesson,
    server: TeachingServer,
    path: Path,
    trial: _Trial | None,
    seen: dict[int, list[Exchange]],
) -> list[Problem]:
    """One fresh session: canonical answers up to the trial's step, then its lines."""
    server.reset(persona_for(lesson))  # a fresh session on a fresh server state
    run = LessonRun(lesson)
    driver = driver_for(lesson, run, server.maildir, server=server)
    try:
        first = lesson.steps[0]
        if lesson.world:
            turn = driver.start()  # no session yet: the lesson says where to connect
        elif first.kind == "connect":
            turn = driver.connect_for(first)
        else:
            turn = driver.connect()
        if turn.error:
            return [Problem(path, 1, f"cannot connect to the built-in server: {turn.error}")]
        while not run.finished:
            index, step = run.index, run.step
            if trial is not None and trial.index == index:
                return _try(step, driver, path, trial, seen)
            turns = _answer(driver, step, None)
            seen.setdefault(index, []).extend(_exchanges(turns))
            if run.index == index:
                wrong = _unexpected_reply(step, turns)
                if wrong and _checks_hold(step, run):  # the answer does what the step
                    # checks for, so the expect is what is wrong
                    return [_expect_problem(path, step, "its canonical answer", wrong)]
                return [
                    Problem(
                        path,
                        step.line,
                        f"step {step.id!r}: its canonical answer did not "
                        f"complete it ({_last_reply(turns)})",
                    )
                ]
        if trial is not None:
            return []
        return [
            Problem(
                path,
                question.line,
                f"question {question.ask!r}: its fact "
                f"{question.fact!r} has no answer after the canonical session",
            )
            for question in lesson.questions
            if trial is None and not fact(question.fact, driver.history)
        ]
    finally:
        driver.close_client()


def _try(
    step: Step, driver: LessonDriver, path: Path, trial: _Trial, seen: dict[int, list[Exchange]]
) -> list[Problem]:
    index = trial.index
    turns = _answer(driver, step, list(trial.lines))
    seen.setdefault(index, []).extend(_exchanges(turns))
    completed = driver.run.index > index
    if completed and not trial.must_complete:
        return [Problem(path, trial.line, f"step {step.id!r}: {trial.what} completed the step")]
    if not completed and trial.must_complete:
        return [
            Problem(
                path,
                trial.line,
                f"{trial.what}, which does not complete the step ({_last_reply(turns)})",
            )
        ]
    return []


def _exchanges(turns: list[Turn]) -> list[Exchange]:
    return [exchange for turn in turns for exchange in turn.exchanges]


def _unexpected_reply(step: Step, turns: list[Turn]) -> str:
    """The reply to the step's own command when it is not in `expect` ("" if it is): the
    step can then never be completed by that answer, whatever its checks say."""
    expected = step.expect or ((250,) if step.kind == "data" else ())
    if step.kind == "command":
        mine = [e for e in _exchanges(turns) if e.kind == "command" and step.accepts(e.command)]
    elif step.kind == "data":
        mine = [e for e in _exchanges(turns) if e.kind == "data"]
    elif step.kind == "pipeline":
        mine = [e for e in _exchanges(turns) if e.kind == "command"]
    else:
        return ""
    if not mine or not mine[-1].replies or mine[-1].code in expected:
        return ""
    return mine[-1].replies[-1]


def _checks_hold(step: Step, run: LessonRun) -> bool:
    return bool(step.checks) and all(
        evaluate(check.kind, check.value, run.step_events).ok for check in step.checks
    )


def _expect_problem(path: Path, step: Step, what: str, reply: str) -> Problem:
    line = key_line(path, "expect", step.line) if step.expect else step.line
    return Problem(
        path,
        line,
        f"step {step.id!r}: expect {list(step.expect or (250,))} disagrees with the reply "
        f"{what} gets ({reply!r}), so that answer can never complete the step",
    )


def _answer(driver: LessonDriver, step: Step, override: list[str] | None) -> list[Turn]:
    """Send a step's canonical answer (or the given lines) the way a learner would."""
    answer = Answer("lines", tuple(override)) if override is not None else canonical(step)
    if answer.action == "advance":
        driver.run.advance()
        return []
    if answer.action == "connect":
        return [driver.connect_for(step)]
    if answer.action == "library":
        return [driver.send_with_library(answer.lines)]
    if answer.action == "pipeline":
        return [driver.send_pipeline(answer.lines)]
    if answer.action == "queue":
        return [driver.run_queue(step)]  # type: ignore[attr-defined]
    turns = []
    for line in answer.lines:
        if not driver.connected and not driver.lesson.world:
            turns.append(driver.connect())
        turns.append(driver.send(line))
    return turns


def _last_reply(turns: list[Turn]) -> str:
    for turn in reversed(turns):
        if turn.error:
            return turn.error
        for exchange in reversed(turn.exchanges):
            if exchange.replies:
                return "the server replied " + exchange.replies[-1]
    return "no reply"
