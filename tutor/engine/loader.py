"""Load lesson files (TOML) into the model, reporting problems as `file:line: what`.

Lessons ship in the wheel (tutor/lessons) and in the source tree (lessons/); a teacher
can point --lessons-dir at a folder of their own. Files load in name order
(01-….toml, 02-….toml); a lesson's number is its position.

Whatever a file holds (any bytes, any TOML value of any type where any key goes, nesting
deeper than the parser can follow, persona values out of range) becomes problems, never
an exception: every value is checked for its type (and a persona value for its range)
before the model takes it.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import reprlib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutor.engine.checks import CHECK_KINDS
from tutor.engine.model import (
    CHECK_VALUES,
    STEP_KINDS,
    Check,
    CheckKind,
    Lesson,
    Question,
    Step,
    StepKind,
    is_check_kind,
    is_step_kind,
)
from tutor.engine.questions import FACTS
from tutor.errors import UserError, reason
from tutor.paths import NotAFile, read_file
from tutor.server.persona import LESSON_SETTINGS
from tutor.smtp.textsafe import visible, wire_lines

FORMAT_VERSION = 1
# Keys each format version renamed, {version: {old key: new key}}, so that a file written
# for an older version is told what to rename. Format 1 is the first: nothing yet.
RENAMED: dict[int, dict[str, str]] = {}
_LESSON_KEYS = {
    "format_version",
    "id",
    "title",
    "summary",
    "objectives",
    "misconception",
    "learned",
    "persona",
    "steps",
    "questions",
    "world",
}
_QUESTION_KEYS = {"ask", "fact"}
_ADD = {  # a required key that is missing, as the line to add
    "id": "id = \"a-name\" (lowercase letters, digits, '-')",
    "title": 'title = "…"',
    "explain": 'explain = """…""" (what the learner reads before acting)',
}
_ID = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_TOML_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")
_LONG_NUMBER = re.compile(r"[0-9_]{4000,}")
_PERSONA_KEYS = set(LESSON_SETTINGS)
# Far beyond any lesson (the longest ships at about 30 KB): a bigger file is not a lesson.
MAX_BYTES = 1024 * 1024
# Values shown in a problem are cut short: a value may be a megabyte, or nested deeply.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 2, 60, 60


class LessonError(UserError):
    """A lesson file is broken; the message is `path:line: what is wrong`."""


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def default_lessons_dir() -> Path:
    """The lessons shipped with the tutor: inside the package when installed from a wheel."""
    packaged = Path(__file__).resolve().parent.parent / "lessons"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "lessons"


def default_challenges_dir() -> Path:
    """The challenges shipped with the tutor (lesson-format files; see docs/challenges.md)."""
    packaged = Path(__file__).resolve().parent.parent / "challenges"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "challenges"


def key_line(path: Path, key: str, start: int) -> int:
    """The line of `key =` at or after `start` in a lesson file (for replay problems)."""
    try:
        lines = wire_lines(path.read_text(encoding="utf-8"))
    except OSError:
        return start
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for index in range(max(start - 1, 0), len(lines)):
        if pattern.match(lines[index]):
            return index + 1
    return start


def lesson_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise LessonError(f"{directory}: no such lessons folder")
    return sorted(p for p in directory.glob("*.toml") if p.is_file())


def load_all(directory: Path | None = None) -> list[Lesson]:
    """Every lesson in the folder, numbered in file-name order; the first problem raises."""
    files = lesson_files(directory or default_lessons_dir())
    lessons = [load(path, number) for number, path in enumerate(files, start=1)]
    seen: dict[str, Path] = {}
    for lesson, path in zip(lessons, files, strict=True):
        if lesson.id in seen:
            raise LessonError(
                f"{path}:1: lesson id {lesson.id!r} is also used by {seen[lesson.id]}"
            )
        seen[lesson.id] = path
    return lessons


def load_ref(directory: Path | None, ref: str) -> tuple[Lesson, int]:
    """The lesson a learner named, and how many lessons the folder holds.

    A number reads that lesson's file alone (parsing every file was most of what `learn N`
    did before its first screen), and names the lesson at that position even where an
    earlier one's id is that number; an id, or a number out of range, reads them all, as
    load_all and find_by_ref do, for the same problems and the same "there are: …".
    """
    files = lesson_files(directory or default_lessons_dir())
    if ref.isdigit() and ref == str(int(ref)) and 1 <= int(ref) <= len(files):
        return load(files[int(ref) - 1], int(ref)), len(files)
    lessons = load_all(directory)
    return find_by_ref(lessons, ref), len(lessons)


def find_by_ref(lessons: Iterable[Lesson], ref: str, *, noun: str = "lesson") -> Lesson:
    """The lesson (or challenge) a learner named by its id or its number."""
    found = list(lessons)
    for lesson in found:
        if ref == lesson.id or ref == str(lesson.number):
            return lesson
    names = ", ".join(f"{lesson.number} ({lesson.id})" for lesson in found)
    raise UserError(f"no {noun} {visible(ref)!r}; there are: {names}")


def load(path: Path, number: int = 0) -> Lesson:
    problems: list[Problem] = []
    lesson = parse(path, number, problems)
    if problems:
        raise LessonError(str(problems[0]))
    assert lesson is not None
    return lesson


def parse(path: Path, number: int, problems: list[Problem]) -> Lesson | None:
    """Parse one file, appending every problem found; None if it cannot be read at all."""
    try:
        text = read_text(path)
    except Unreadable as error:
        problems.append(Problem(path, error.line, f"cannot read: {error}"))
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = _TOML_LINE.search(str(error))
        line = int(match.group(1)) if match else 1
        message = _TOML_LINE.sub("", str(error)).strip()
        problems.append(Problem(path, line, f"not valid TOML: {message}"))
        return None
    except RecursionError:  # tomllib recurses once per level of [ and {
        line = deepest_line(text)
        problems.append(Problem(path, line, "values nested too deeply: a lesson needs a few"))
        return None
    except ValueError:  # int() refuses more than 4300 digits (CVE-2020-10735)
        match = _LONG_NUMBER.search(text)
        line = text.count("\n", 0, match.start()) + 1 if match else 1
        problems.append(Problem(path, line, "not valid TOML: a number with thousands of digits"))
        return None
    return _Builder(path, text, problems).lesson(data, number)


class Unreadable(ValueError):
    """A lesson file that cannot be read as text; `line` is where, when that is known."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.line = line


def read_text(path: Path) -> str:
    """A lesson file's text; Unreadable says why it cannot be had (paths.read_file never
    blocks on a FIFO or a device named *.toml, and reads at most MAX_BYTES)."""
    try:
        raw = read_file(path, MAX_BYTES)
    except OSError as error:
        raise Unreadable(reason(error)) from error
    except NotAFile as why:
        raise Unreadable(f"{why}: not a lesson") from why
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise Unreadable(f"not UTF-8 text (byte {error.start})", line) from error


def deepest_line(text: str) -> int:
    """The line where brackets outside strings first nest deeper than any lesson needs
    (where to look, when the parser ran out of depth); 1 if none does."""
    depth = 0
    quote = ""
    for number, line in enumerate(wire_lines(text), start=1):
        index = 0
        while index < len(line):
            char = line[index]
            if quote:
                if char == "\\" and quote == '"':
                    index += 1
                elif char == quote:
                    quote = ""
            elif char in "\"'":
                quote = char
            elif char == "#":
                break
            elif char in "[{":
                depth += 1
                if depth > 32:
                    return number
            elif char in "]}":
                depth = max(depth - 1, 0)
            index += 1
        if quote and not line.endswith("\\"):
            quote = ""  # single-line strings end with their line
    return 1


def shown(value: object) -> str:
    """A value for a problem message: its repr, cut short however long or deep it is."""
    return _SHOWN.repr(value)


class _Builder:
    """Turns the TOML data into the model, noting each problem with its line."""

    def __init__(self, path: Path, text: str, problems: list[Problem]) -> None:
        self.path = path
        self.lines = wire_lines(text)
        self.problems = problems
        self.step_lines = [
            index + 1 for index, line in enumerate(self.lines) if line.strip() == "[[steps]]"
        ]

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))

    def key_line(self, key: str, start: int = 1) -> int:
        """The line where `key =` (or `[steps.key]`) first appears at or after `start`."""
        pattern = re.compile(rf"^\s*(?:{re.escape(key)}\s*=|\[\[?steps\.{re.escape(key)}\]\]?)")
        for index in range(max(start - 1, 0), len(self.lines)):
            if pattern.match(self.lines[index]):
                return index + 1
        return start

    def format_version(self, data: dict[str, Any]) -> None:
        """A file for another format version: say what to change, not only that it differs."""
        version = data.get("format_version")
        if version == FORMAT_VERSION and not isinstance(version, bool):
            return  # the usual case: no need to look for its line
        line = self.key_line("format_version")
        if version is None:
            message = (
                f'format_version is missing: add "format_version = {FORMAT_VERSION}" at the top'
            )
        elif not isinstance(version, int) or isinstance(version, bool):
            message = f"format_version must be the number {FORMAT_VERSION}, not {shown(version)}"
        elif version < FORMAT_VERSION:
            message = f"format_version {version} is older than this tutor's {FORMAT_VERSION}: "
            message += self.upgrade(version)
        elif version > FORMAT_VERSION:
            message = (
                f"format_version {version} is newer than this tutor's {FORMAT_VERSION}: "
                "this file needs a newer smtp-tutor (pipx upgrade smtp-tutor)"
            )
        else:
            return
        self.problem(line, message)

    def upgrade(self, version: int) -> str:
        """The renames between that format and this one, for the keys this file uses."""
        renames = []
        for since in range(version + 1, FORMAT_VERSION + 1):
            for old, new in RENAMED.get(since, {}).items():
                if found := self.key_line(old, 0):  # 0: this file does not use it
                    renames.append(f"rename {old} to {new} (line {found})")
        finish = f"set format_version = {FORMAT_VERSION}"
        if renames:
            return ", ".join(renames) + ", then " + finish
        return finish + " (`smtp-tutor lessons validate --static FILE` names every other change)"

    def unknown_key(self, line: int, what: str, key: str, known: Iterable[str]) -> None:
        """A key this format does not have: its new name, the key it is probably a typo
        of, or else remove it."""
        renamed = {old: (new, v) for v, names in RENAMED.items() for old, new in names.items()}
        names = sorted(known)
        new, since = renamed.get(key, ("", 0))
        if new in names:
            change = f"rename it to {new!r} (renamed in format {since})"
        elif close := difflib.get_close_matches(key, names, n=1, cutoff=0.75):
            change = f"rename it to {close[0]!r}"
        else:
            change = f"remove it (known: {', '.join(names)})"
        self.problem(line, f"unknown {what} {key!r}: {change}")

    def lesson(self, data: dict[str, Any], number: int) -> Lesson | None:
        self.format_version(data)
        for key in data:
            if key not in _LESSON_KEYS:
                self.unknown_key(self.key_line(key), "lesson key", key, _LESSON_KEYS)
        lesson_id = self.text(data, "id", 1, required=True)
        if lesson_id and not _ID.match(lesson_id):
            self.problem(
                self.key_line("id"), f"id {lesson_id!r}: use lowercase letters, digits, '-'"
            )
        title = self.text(data, "title", 1, required=True)
        persona = data.get("persona", {})
        if not isinstance(persona, dict):
            self.problem(self.key_line("persona"), "[persona] must be a table")
            persona = {}
        persona = self.persona(persona)
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            self.problem(1, "a lesson needs at least one [[steps]] table")
            raw_steps = []
        steps = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_steps):
            line = self.step_lines[index] if index < len(self.step_lines) else 1
            step = self.step(raw, line)
            if step is None:
                continue
            if step.id in seen:
                self.problem(line, f"step id {step.id!r} is used twice")
            seen.add(step.id)
            steps.append(step)
        return Lesson(
            id=lesson_id,
            number=number,
            title=title,
            summary=self.text(data, "summary", 1),
            objectives=tuple(self.strings(data, "objectives", 1)),
            steps=tuple(steps),
            persona=persona,
            misconception=self.text(data, "misconception", 1),
            learned=tuple(self.strings(data, "learned", 1)),
            questions=tuple(self.questions(data.get("questions", []))),
            source=str(self.path),
            world=self.world(data, steps),
        )

    def world(self, data: dict[str, Any], steps: list[Step]) -> bool:
        """`world = true`: the lesson runs in the simulated internet; the steps that only
        make sense there (lookup, queue, bounce, a connect step naming a host) need it."""
        world = bool(self.flag(data, "world", 1))
        for step in steps:
            needs_world = step.kind in ("lookup", "queue", "bounce", "inbox") or bool(step.host)
            if needs_world and not world:
                self.problem(
                    step.line,
                    f"step {step.id!r}: a {step.kind} step{' with a host' if step.host else ''}"
                    " runs in the simulated internet: add world = true to the lesson",
                )
            if world and step.kind in ("library", "pipeline"):
                self.problem(step.line, f"step {step.id!r}: a {step.kind} step needs no world")
        return world

    def step(self, raw: Any, line: int) -> Step | None:
        if not isinstance(raw, dict):
            self.problem(line, "each [[steps]] entry must be a table")
            return None
        step_id = self.text(raw, "id", line, required=True)
        if step_id and not _ID.match(step_id):
            self.problem(
                self.key_line("id", line),
                f"step id {step_id!r}: use lowercase letters, digits, '-'",
            )
        written = self.text(raw, "kind", line) or "command"
        kind: StepKind = "command"  # stands in for an unknown kind, which is reported
        if is_step_kind(written):
            kind = written
        else:
            self.problem(
                self.key_line("kind", line),
                f"kind {written!r} is not one of {', '.join(STEP_KINDS)}",
            )
        accept = []
        for pattern in self.strings(raw, "accept", line):
            try:
                accept.append(re.compile(pattern))
            except (re.error, RecursionError, OverflowError, ValueError) as error:
                what = error if isinstance(error, re.error) else "too large or nested too deeply"
                self.problem(
                    self.key_line("accept", line), f"accept pattern {shown(pattern)}: {what}"
                )
        expect = self.codes(raw, line)
        on_reply = raw.get("on_reply", {})
        if not isinstance(on_reply, dict) or not all(isinstance(v, str) for v in on_reply.values()):
            self.problem(
                self.key_line("on_reply", line), "[steps.on_reply] maps reply codes to text"
            )
            on_reply = {}
        step = Step(
            id=step_id,
            kind=kind,
            explain=self.text(raw, "explain", line, required=True),
            after=self.text(raw, "after", line),
            command=self.text(raw, "command", line),
            lines=tuple(self.strings(raw, "lines", line)),
            accept=tuple(accept),
            expect=tuple(expect),
            hints=tuple(self.strings(raw, "hints", line)),
            on_reply={str(k): v for k, v in on_reply.items()},
            checks=tuple(self.checks(raw.get("checks", []), line)),
            goal=self.text(raw, "goal", line),
            predict=bool(self.flag(raw, "predict", line)),
            optional=bool(self.flag(raw, "optional", line)),
            counter_example=self.text(raw, "counter_example", line),
            source=self.address(raw, "source", line),
            open_relay=self.flag(raw, "open_relay", line),
            dns=tuple(self.strings(raw, "dns", line)),
            host=self.text(raw, "host", line),
            recipient=self.text(raw, "recipient", line),
            mailbox=self.text(raw, "mailbox", line),
            line=line,
        )
        self.validate_step(step, raw, line)
        return step

    def validate_step(self, step: Step, raw: dict[str, Any], line: int) -> None:
        known = {
            "id",
            "kind",
            "explain",
            "after",
            "command",
            "lines",
            "accept",
            "expect",
            "hints",
            "on_reply",
            "checks",
            "goal",
            "predict",
            "optional",
            "counter_example",
            "source",
            "open_relay",
            "dns",
            "host",
            "recipient",
            "mailbox",
        }
        for key in raw:
            if key not in known:
                self.unknown_key(self.key_line(key, line), "step key", key, known)
        if step.kind == "command":
            if not step.command:
                self.problem(
                    line, f"step {step.id!r}: a command step needs `command` (the canonical answer)"
                )
            elif not step.accepts(step.command):
                self.problem(
                    self.key_line("command", line),
                    f"step {step.id!r}: its own command {step.command!r} does not match `accept`",
                )
            if not step.expect:
                self.problem(line, f"step {step.id!r}: a command step needs `expect` reply codes")
        if step.kind == "pipeline" and (not step.lines or not step.expect):
            self.problem(line, f"step {step.id!r}: a pipeline step needs `lines` and `expect`")
        if (step.source or step.open_relay is not None) and step.kind != "connect":
            self.problem(
                line, f"step {step.id!r}: `source` and `open_relay` belong on connect steps"
            )
        if step.host and step.kind != "connect":
            self.problem(line, f"step {step.id!r}: `host` belongs on connect steps")
        if step.kind == "lookup" and (not step.command or not step.checks):
            self.problem(
                line,
                f"step {step.id!r}: a lookup step needs `command` (e.g. dig MX example.org) "
                'and `checks` (e.g. looked_up = "MX example.org")',
            )
        if (step.kind == "queue") != bool(step.recipient):
            self.problem(
                line,
                f"step {step.id!r}: `recipient` (the address the queue keeps trying) "
                "belongs on queue steps, and a queue step needs one",
            )
        if (step.kind == "inbox") != bool(step.mailbox):
            self.problem(
                line,
                f"step {step.id!r}: `mailbox` (whose mailbox of the world to read, e.g. "
                "bob@example.org) belongs on inbox steps, and an inbox step needs one",
            )
        if step.kind == "data" and not step.lines:
            self.problem(
                line, f"step {step.id!r}: a data step needs `lines` (the canonical message)"
            )
        if step.kind == "goal":
            if not step.goal or not step.checks:
                self.problem(line, f"step {step.id!r}: a goal step needs `goal` and `checks`")
            if not step.command and not step.lines:
                self.problem(
                    line,
                    f"step {step.id!r}: a goal step needs a canonical `command` "
                    "(lines separated by \\n) for 'show me' and validate",
                )
        if (
            step.counter_example
            and step.kind == "command"
            and step.accepts(step.counter_example)
            and not step.expect
        ):
            self.problem(
                self.key_line("counter_example", line),
                f"step {step.id!r}: counter_example is accepted and nothing else can fail it",
            )

    def flag(self, data: dict[str, Any], key: str, line: int) -> bool | None:
        value = data.get(key)
        if value is not None and not isinstance(value, bool):
            self.problem(
                self.key_line(key, line), f"{key} must be true or false, not {shown(value)}"
            )
            return None
        return value

    def questions(self, raw: Any) -> list[Question]:
        if not isinstance(raw, list):
            self.problem(self.key_line("questions"), "[[questions]] must be tables")
            return []
        out = []
        lines = [i + 1 for i, text in enumerate(self.lines) if text.strip() == "[[questions]]"]
        for index, item in enumerate(raw):
            line = lines[index] if index < len(lines) else 1
            if not isinstance(item, dict):
                self.problem(line, "a question has `ask` and `fact`, nothing else")
                continue
            if unknown := sorted(set(item) - _QUESTION_KEYS):
                for key in unknown:
                    self.unknown_key(self.key_line(key, line), "question key", key, _QUESTION_KEYS)
                continue
            ask, fact = item.get("ask"), item.get("fact")
            if not isinstance(ask, str) or not ask.strip():
                self.problem(line, "a question needs `ask` (the text shown)")
                continue
            if not isinstance(fact, str) or fact not in FACTS:
                self.problem(
                    self.key_line("fact", line),
                    f"unknown fact {shown(fact)} (known: {', '.join(sorted(FACTS))})",
                )
                continue
            out.append(Question(ask.strip(), fact, line))
        return out

    def checks(self, raw: Any, line: int) -> list[Check]:
        if not isinstance(raw, list):
            self.problem(self.key_line("checks", line), "checks must be a list of tables")
            return []
        out = []
        for item in raw:
            if not isinstance(item, dict) or len(item) != 1:
                self.problem(self.key_line("checks", line), "each check is one `kind = value` pair")
                continue
            [(kind, value)] = item.items()
            if not is_check_kind(kind):
                self.problem(
                    self.key_line("checks", line),
                    f"unknown check {kind!r} (known: {', '.join(sorted(CHECK_KINDS))})",
                )
                continue
            if wrong := check_value_problem(kind, value):
                self.problem(
                    self.key_line(kind, line), f"check {kind}: {wrong}, not {shown(value)}"
                )
                continue
            out.append(Check(kind, value, line))
        return out

    def codes(self, raw: dict[str, Any], line: int) -> list[int]:
        """`expect`: a list of reply codes."""
        value = raw.get("expect", [])
        if not isinstance(value, list):
            self.problem(
                self.key_line("expect", line),
                f"expect must be a list of reply codes, like [250], not {shown(value)}",
            )
            return []
        codes = []
        for code in value:
            if isinstance(code, bool) or not isinstance(code, int) or not 200 <= code <= 599:
                self.problem(
                    self.key_line("expect", line),
                    f"expect: {shown(code)} is not a reply code (200-599)",
                )
            else:
                codes.append(code)
        return codes

    def persona(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The [persona] settings, each known and of its type and range (persona.py)."""
        settings = {}
        for key, value in raw.items():
            setting = LESSON_SETTINGS.get(key)
            if setting is None:
                self.unknown_key(self.key_line(key), "persona setting", key, _PERSONA_KEYS)
            elif wrong := setting.problem(key, value):
                self.problem(self.key_line(key), f"[persona] {wrong}, not {shown(value)}")
            else:
                settings[key] = value
        return settings

    def address(self, data: dict[str, Any], key: str, line: int) -> str:
        """A local IP address to connect from (a connect step's `source`)."""
        value = self.text(data, key, line)
        try:
            return str(ipaddress.ip_address(value)) if value else ""
        except ValueError:
            self.problem(
                self.key_line(key, line),
                f"{key} must be an IP address such as 127.0.0.2, not {shown(value)}",
            )
            return ""

    def text(self, data: dict[str, Any], key: str, line: int, *, required: bool = False) -> str:
        value = data.get(key, "")
        if not isinstance(value, str):
            self.problem(self.key_line(key, line), f"{key} must be a string, not {shown(value)}")
            return ""
        if required and not value.strip():
            self.problem(line, f"missing {key}: add {_ADD.get(key, key + ' = …')}")
        return value.strip("\n")

    def strings(self, data: dict[str, Any], key: str, line: int) -> list[str]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(self.key_line(key, line), f"{key} must be a list of strings")
            return []
        return list(value)


def check_value_problem(kind: CheckKind, value: object) -> str:
    """What is wrong with a check's value for its kind (model.CHECK_VALUES); "" if nothing."""
    wanted = CHECK_VALUES[kind]
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if wanted == "code":
        ok = number is not None and 200 <= number <= 599
        return "" if ok else "the value must be a reply code (200-599)"
    if wanted == "count":
        ok = number is not None and number >= 0
        return "" if ok else "the value must be a whole number, 0 or more"
    if wanted == "flag":
        return "" if isinstance(value, bool) else "the value must be true or false"
    if wanted == "flag or text":
        ok = isinstance(value, bool | str)
        return "" if ok else "the value must be true, false or a domain"
    return "" if isinstance(value, str) else "the value must be a string"
