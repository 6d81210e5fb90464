"""The dashboard's class views: the roster (one row per student) and one student's history
(every session of theirs in order, scrollable, searchable with `/`).

The data is tutor/sandbox/class_model.py's; this module only draws it, in the width the
terminal has (ui/serve/fit.py). Transcripts are serve's line log (ui/serve/serve_log.py),
rendered once per closed session and kept while they are wanted. Names and everything a
client sent reach the screen through ui/common/safe.py; colour only repeats what a word
or a mark says (▶ the picked row, ● a session going on), so a projector, NO_COLOR and
the light theme read the same.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rich.console import Console, RenderableType
from rich.text import Text

from tutor.classroom.roster import SessionKey, StudentRow
from tutor.sandbox.class_model import FROM_STORE, GONE, LiveClass, SessionCopy
from tutor.smtp.events import SessionClosed, SessionOpened
from tutor.smtp.wire import host_port
from tutor.ui.common.safe import untrusted
from tutor.ui.serve.fit import Column, Heading, KeyHints, fitted_table, layout
from tutor.ui.serve.serve_log import CLOSE_REASONS, ServeLog

LINES_KEPT = 300_000  # rendered history lines kept for sessions no longer on screen
CONTEXT_ABOVE = 2  # lines shown above a search match
SEARCH_STYLE = "reverse"
CURRENT_MATCH_STYLE = "bold reverse underline"


def heading(title: Text) -> Heading:
    return Heading(title)


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) if at else "—"


def compact_statuses(statuses: dict[str, str]) -> str:
    """Lessons or challenges in a few cells: ✓1-3,5 for done (with help too), …4 for
    in progress; "" for none."""
    done = sorted(int(n) for n, status in statuses.items() if status.startswith("done"))
    going = sorted(int(n) for n, status in statuses.items() if status == "in progress")
    parts = []
    if done:
        parts.append("✓" + _ranges(done))
    if going:
        parts.append("…" + ",".join(map(str, going)))
    return " ".join(parts)


def _ranges(numbers: list[int]) -> str:
    out: list[str] = []
    start = previous = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        out.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ",".join(out)


# --- the roster ------------------------------------------------------------------------------


MEASURED_ROWS = 500  # rows that size the roster's columns, at most
NOW, CONNECTED = 2, 8  # "now" says what a connected column would, when there is none
ROSTER_COLUMNS = (  # fit.py: the highest `drop` goes first on a narrow terminal
    Column("", 0),
    Column("student", 0, flexible=True, min_width=12, comfort=20),
    Column("now", 1, flexible=True, min_width=12),
    Column("lessons", 2),
    Column("errors", 1, justify="right"),
    Column("msgs", 2, justify="right"),
    Column("last seen", 4),
    Column("challenges", 3),
    Column("connected", 5, flexible=True, min_width=12),
    Column("sessions", 6, justify="right"),
    Column("first seen", 7),
)


class RosterPage:
    """One row per student, by name; ↑/↓ picks one, Enter opens their history.

    `stage_of(session)`: how far a session of this run got, as the connections table
    says it ("greeted", "in DATA"), or "" when the dashboard no longer shows it."""

    def __init__(self, live: LiveClass, stage_of: Callable[[int], str]) -> None:
        self.live = live
        self.stage_of = stage_of
        self.picked: str | None = None  # a name; None: the first row

    def students(self) -> list[StudentRow]:
        return self.live.students()

    def index(self, students: Sequence[StudentRow]) -> int:
        names = [row.name for row in students]
        return names.index(self.picked) if self.picked in names else 0

    def move(self, delta: int) -> None:
        students = self.students()
        if students:
            index = max(0, min(len(students) - 1, self.index(students) + delta))
            self.picked = students[index].name

    def to_end(self, last: bool) -> None:
        students = self.students()
        if students:
            self.picked = students[-1 if last else 0].name

    def chosen(self) -> str | None:
        students = self.students()
        return students[self.index(students)].name if students else None

    def keys(self) -> KeyHints:
        return [
            ("↑/↓", "pick a student", 0),
            ("Enter", "their history", 0),
            ("c", "connections", 0),
            ("q", "quit", 0),
            ("PgUp/PgDn g/G", "scroll", 3),
            ("p", "pause", 2),
        ]

    def body(self, console: Console, width: int, room: int) -> list[RenderableType]:
        students = self.students()
        going = sum(1 for row in students if self.live.roster.going_on(row.name))
        title = Text(" ROSTER ", style="bold")
        title.append(f" {len(students)} student{'' if len(students) == 1 else 's'}")
        title.append(f", {going} connected now ")
        if not students:
            hint = Text(
                "  nobody yet: a student names themselves with NOOP student=NAME (or "
                "learn N --class HOST:PORT --name NAME)"
            )
            return [heading(title), hint, *[Text("")] * max(0, room - 2)]
        shown = max(1, room - 2)  # the heading and the table's header
        index = self.index(students)
        start = max(0, min(index - shown // 2, len(students) - shown))
        end = min(len(students), start + shown)
        if (start, end) != (0, len(students)):
            title.append(f"(rows {start + 1}-{end} of {len(students)}) ")
        # Columns sized by every row keep still while the list scrolls; a roster of
        # thousands (a flood of made-up HELO names) is sized by the rows on screen.
        first = 0 if len(students) <= MEASURED_ROWS else start
        measured = students[first : len(students) if first == 0 else end]
        rows = [self._cells(row, first + i == index) for i, row in enumerate(measured)]
        if any(column == CONNECTED for column, _ in layout(ROSTER_COLUMNS, rows, width)):
            for row, cells in zip(measured, rows, strict=True):  # said there already
                cells[NOW] = untrusted(row.current_step or "—")
        styles = ["reverse" if i == index else "" for i in range(start, end)]
        shown_rows = (start - first, end - first)
        table = fitted_table(ROSTER_COLUMNS, rows, width, shown=shown_rows, styles=styles)
        return [heading(title), *table, *[Text("")] * max(0, shown - (end - start))]

    def _cells(self, row: StudentRow, chosen: bool) -> list[Text]:
        live = self._going_session(row)
        stage = self.stage_of(live[1]) if live is not None and live[0] == self.live.run else ""
        connected = f"● #{live[1]} {stage}".rstrip() if live is not None else ""
        return [
            Text("▶" if chosen else " ", style="bold"),
            untrusted(row.name, "bold"),
            untrusted(row.current_step or connected or "—"),
            Text(compact_statuses(row.lessons) or "—"),
            Text(str(row.all_errors), style="red" if row.all_errors else ""),
            Text(str(row.all_messages)),
            Text(clock(row.last_seen)),
            Text(compact_statuses(row.challenges) or "—"),
            Text(connected or "—"),
            Text(str(len(row.sessions))),
            Text(clock(row.opened[0] if row.opened else 0.0)),
        ]

    def _going_session(self, row: StudentRow) -> SessionKey | None:
        """The newest of the student's sessions still going on."""
        if not self.live.roster.going_on(row.name):
            return None
        for key in reversed(row.sessions):
            if self.live.roster.name_of(key) == row.name:
                return key
        return None


# --- one student's history -------------------------------------------------------------------


@dataclass
class Block:
    """One session's transcript lines (its heading first), with their text lower-cased
    for the search; a session going on grows from the events it has had so far."""

    key: SessionKey
    lines: list[Text] = field(default_factory=list)
    lowered: list[str] = field(default_factory=list)
    source: str = ""
    going_on: bool = False
    consumed: int = 0  # events rendered so far (a session going on)
    log: ServeLog | None = None

    def add(self, line: Text) -> None:
        self.lines.append(line)
        plain = line.plain
        lowered = plain.lower()
        # offsets of a match must be offsets in the line: keep the case where lowering
        # changes a length (rare: "İ"), so such a line is searched as it is written
        self.lowered.append(lowered if len(lowered) == len(plain) else plain)


class Blocks:
    """Rendered sessions, shared by every history opened: a closed session is rendered
    once; the least recently shown go when more than LINES_KEPT lines are kept."""

    def __init__(self, console: Console, live: LiveClass, limit: int = LINES_KEPT) -> None:
        self.console = console
        self.live = live
        self.limit = limit
        self._blocks: OrderedDict[SessionKey, Block] = OrderedDict()
        self._lines = 0

    def get(self, key: SessionKey) -> Block:
        block = self._blocks.get(key)
        if block is not None and not block.going_on:
            self._blocks.move_to_end(key)
            return block
        copy = self.live.session(key)
        if block is not None and copy.going_on:
            self._extend(block, copy)
            return block
        if block is not None and copy.source == block.source and copy.events:
            self._extend(block, copy)  # it closed, and memory had all of it: go on
            block.going_on = False
            return block
        if block is not None:
            self._drop(key)
        block = self._render(copy)
        self._blocks[key] = block
        self._lines += len(block.lines)
        self._trim()
        return block

    def _render(self, copy: SessionCopy) -> Block:
        block = Block(copy.key, source=copy.source, going_on=copy.going_on)
        block.add(self._heading(copy))
        if copy.source == GONE:
            block.add(
                Text(
                    "  (this session is no longer in memory and the session store does not "
                    "have it: it could not be written, or was removed)",
                    style="bold yellow",
                )
            )
            return block
        block.log = ServeLog(self.console)
        self._extend(block, copy)
        return block

    def _extend(self, block: Block, copy: SessionCopy) -> None:
        log = block.log
        if log is None:
            return
        tag = f"#{copy.key[1]:<3} "
        for event in copy.events[block.consumed :]:
            for line in log.render(event):
                block.add(line[len(tag) :] if line.plain.startswith(tag) else line)
                self._lines += 1
        block.consumed = len(copy.events)
        block.going_on = copy.going_on

    def _heading(self, copy: SessionCopy) -> Text:
        run, number = copy.key
        opened = next((e for e in copy.events if isinstance(e, SessionOpened)), None)
        closed = next((e for e in reversed(copy.events) if isinstance(e, SessionClosed)), None)
        text = Text(f"── session #{number}", style="bold")
        if opened is not None:
            text.append("  ")
            text.append_text(untrusted(host_port(opened.peer_host, opened.peer_port), "bold"))
        first = copy.events[0].at if copy.events else 0.0
        last = copy.events[-1].at if copy.events else 0.0
        if first:
            text.append(f"  {clock(first)}–{clock(last) if closed else ''}", style="bold")
        if copy.going_on:
            text.append("  ● going on", style="bold green")
        elif closed is not None:
            text.append("  " + CLOSE_REASONS.get(closed.reason, closed.reason), style="bold")
        if run != self.live.run:
            text.append(f"  (an earlier serve, started {_run_start(run)})", style="bold")
        elif copy.source == FROM_STORE:
            text.append("  (read back from the session store)")
        text.append(" ──", style="bold")
        return text

    def _drop(self, key: SessionKey) -> None:
        block = self._blocks.pop(key, None)
        if block is not None:
            self._lines -= len(block.lines)

    def _trim(self) -> None:
        while self._lines > self.limit and len(self._blocks) > 1:
            key = next(iter(self._blocks))
            self._drop(key)


def _run_start(run: str) -> str:
    """A run's start from its name (YYYYMMDD-HHMMSS-…), as HH:MM:SS on YYYY-MM-DD."""
    stamp = run[:15]
    if len(stamp) == 15 and stamp[8] == "-" and stamp.replace("-", "").isdigit():
        return (
            f"{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]} on {stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}"
        )
    return "earlier"


class HistoryPage:
    """Every session of one student, oldest first: j/k and PgUp/PgDn scroll, g/G go to
    the start and the end (the end follows new lines), `/` searches, n/N go from match to
    match. Positions are lines of the transcript; a line wraps on screen as it must."""

    def __init__(self, blocks: Blocks, name: str, start: SessionKey | None = None) -> None:
        self.blocks = blocks
        self.name = name
        self.top = 0  # the first line on screen
        self.follow = start is None  # at the end, following new lines
        self.start = start  # a session to show first, once its lines are known
        self.anchor = start  # the session it was opened at, whatever it is named later
        self.typing: str | None = None  # the search being typed
        self.query = ""
        self.current: int | None = None  # the line of the match last gone to
        self.notice = ""
        self._lines: list[Text] = []
        self._lowered: list[str] = []
        self._firsts: dict[SessionKey, int] = {}
        self._shown = 1  # lines on screen in the last frame
        self._page = 10
        self._sessions = 0
        self._going = 0
        self.refresh()

    # --- the document ----------------------------------------------------------------------

    def refresh(self) -> None:
        """Gather the student's sessions as they are now (a session going on grows)."""
        live = self.blocks.live
        row = live.student(self.name)
        if row is None and self.anchor is not None and self.anchor[0] == live.run:
            renamed = live.student_of(self.anchor[1])  # it named itself since: follow it
            if renamed is not None:
                self.name, row = renamed, live.student(renamed)
        keys = list(row.sessions) if row is not None else []
        lines: list[Text] = []
        lowered: list[str] = []
        firsts = {}
        going = 0
        for key in keys:
            block = self.blocks.get(key)
            firsts[key] = len(lines)
            lines += block.lines
            lowered += block.lowered
            going += block.going_on
        self._lines, self._lowered, self._firsts = lines, lowered, firsts
        self._sessions, self._going = len(keys), going
        if self.start is not None and self.start in firsts:
            self.top, self.follow, self.start = firsts[self.start], False, None

    # --- keys ------------------------------------------------------------------------------

    def scroll(self, delta: int) -> None:
        self.follow = False
        self.top = max(0, min(len(self._lines) - 1, self.top + delta))

    def page(self, down: bool) -> None:
        self.scroll(self._shown if down else -self._page)

    def to_end(self, end: bool) -> None:
        self.follow = end
        self.top = 0

    def begin_search(self) -> None:
        self.typing = ""

    def type_key(self, key: str) -> None:
        """A key while the search is typed: Enter searches, Esc gives up."""
        assert self.typing is not None
        if key == "enter":
            query, self.typing = self.typing, None
            if query:
                self.query = query
                self.current = None
                self.next_match(forward=True)
        elif key == "escape":
            self.typing = None
        elif key == "backspace":
            self.typing = self.typing[:-1]
        elif len(key) == 1 and key.isprintable():
            self.typing += key

    def matches(self) -> list[int]:
        needle = self.query.lower()
        if not needle:
            return []
        return [index for index, text in enumerate(self._lowered) if needle in text]

    def next_match(self, *, forward: bool) -> None:
        """Go to the next (or previous) line holding the query, round the end."""
        self.refresh()
        found = self.matches()
        if not found:
            self.notice = f"no match for {self.query!r}"
            self.current = None
            return
        here = self.current if self.current is not None else self.top - (1 if forward else 0)
        if forward:
            after = [line for line in found if line > here]
            self.current = after[0] if after else found[0]
        else:
            before = [line for line in found if line < here]
            self.current = before[-1] if before else found[-1]
        self.notice = ""
        self.follow = False
        self.top = max(0, self.current - CONTEXT_ABOVE)

    # --- drawing ---------------------------------------------------------------------------

    def keys(self) -> KeyHints:
        if self.typing is not None:
            return [("Enter", "search", 0), ("Esc", "cancel", 0)]
        hints: KeyHints = [
            ("j/k PgUp/PgDn", "scroll", 0),
            ("/", "search", 0),
            ("Esc", "back", 0),
            ("g/G", "start/end", 1),
        ]
        if self.query:
            hints.append(("n/N", "next/previous match", 0))
        hints += [("r", "roster", 2), ("c", "connections", 2), ("q", "quit", 1)]
        return hints

    def prompt(self) -> Text | None:
        """The search line under the history: what is typed, or what was found."""
        if self.typing is not None:
            line = Text("/", style="bold")
            line.append_text(untrusted(self.typing))
            line.append("▏")
            return line
        if self.notice:
            return Text("! " + self.notice, style="bold yellow")
        if self.query:
            found = self.matches()
            where = ""
            if self.current is not None and self.current in found:
                where = f"match {found.index(self.current) + 1} of {len(found)}"
            else:
                where = f"{len(found)} match{'' if len(found) == 1 else 'es'}"
            line = Text("/", style="bold")
            line.append_text(untrusted(self.query))
            line.append(f"  {where}")
            return line
        return None

    def body(self, console: Console, width: int, room: int) -> list[RenderableType]:
        self.refresh()
        prompt = self.prompt()
        rows = max(1, room - 1 - (prompt is not None))
        lines = self._lines
        if self.follow:
            self.top = self._top_for_end(console, width, rows)
        self.top = max(0, min(self.top, max(0, len(lines) - 1)))
        shown: list[Text] = []
        used = 0
        index = self.top
        while index < len(lines) and used < rows:
            wrapped = self._marked(index).wrap(console, width)
            shown.extend(wrapped[: rows - used])
            used += len(wrapped)
            index += 1
        self._shown = max(1, index - self.top)
        self._page = max(1, self._lines_above(console, width, rows))
        title = self._title(index)
        filler = [Text("")] * max(0, rows - len(shown))
        out: list[RenderableType] = [heading(title), *shown, *filler]
        if prompt is not None:
            prompt.no_wrap = True
            prompt.overflow = "ellipsis"
            out.append(prompt)
        return out

    def _title(self, end: int) -> Text:
        title = Text(" HISTORY ", style="bold")
        title.append_text(untrusted(self.name, "bold"))
        sessions = f"  {self._sessions} session{'' if self._sessions == 1 else 's'}"
        if self._going:
            sessions += f", {self._going} going on"
        title.append(sessions)
        if self._lines:
            at_end = " (the end: new lines follow)" if self.follow else ""
            title.append(f"  lines {self.top + 1:,}-{end:,} of {len(self._lines):,}{at_end} ")
        return title

    def _marked(self, index: int) -> Text:
        """The line, with every match of the query highlighted."""
        line = self._lines[index]
        needle = self.query.lower()
        if not needle or needle not in self._lowered[index]:
            return line
        line = line.copy()
        style = CURRENT_MATCH_STYLE if index == self.current else SEARCH_STYLE
        text = self._lowered[index]
        start = text.find(needle)
        while start >= 0:
            line.stylize(style, start, start + len(needle))
            start = text.find(needle, start + len(needle))
        return line

    def _top_for_end(self, console: Console, width: int, rows: int) -> int:
        """The first line of the last screenful."""
        used = 0
        index = len(self._lines)
        while index > 0:
            height = len(self._lines[index - 1].wrap(console, width))
            if used + height > rows:
                break
            used += height
            index -= 1
        return min(index, max(0, len(self._lines) - 1))

    def _lines_above(self, console: Console, width: int, rows: int) -> int:
        """How many lines above the top fill a screen (what PgUp goes back)."""
        used = 0
        index = self.top
        while index > 0 and used < rows:
            used += len(self._lines[index - 1].wrap(console, width))
            index -= 1
        return self.top - index
