"""`annotate`: a transcript replayed exchange by exchange, each reply explained in context.

Everything taken from the transcript is untrusted and shown literally through ui.safe:
a `[bold]` in a reply stays those characters, an ESC becomes `\\x1b`. Words carry every
meaning (C:/S:, "TLS", "message data"); colour only adds to them, and `plain` drops the
boxes as well.
"""

from __future__ import annotations

from collections import Counter

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.text import Text

from tutor.explain.annotate import Annotation
from tutor.explain.transcript import Note, Step, Transcript
from tutor.smtp.textsafe import clipped, clipped_bytes, wire_lines
from tutor.ui.common.safe import join, untrusted, untrusted_bytes, untrusted_line

CLASS_STYLE = {2: "green", 3: "cyan", 4: "yellow", 5: "red"}
# What one exchange shows at most, so that the view costs the same per exchange however
# long a line or a reply is (docs/server.md, "Text from the wire on screen"):
DATA_PREVIEW_LINES = 40
REPLY_LINES_SHOWN = 40  # of one reply (an EHLO reply lists a dozen extensions)
LINE_SHOWN = 1000  # characters of a line: RFC 5321 §4.5.3.1.6 (a text line), so any legal one
NAMES_SHOWN = 20  # addresses in the summary
NOTES_SHOWN = 20  # of the tool's own lines in a row
# A transcript shows its first and its last exchanges one by one and sums up the middle
# by kind: a real session has dozens, a script's or an attack's may have a million.
HEAD_EXCHANGES = 200
TAIL_EXCHANGES = 50
KINDS_SHOWN = 8


def render_transcript(t: Transcript, *, plain: bool = False) -> RenderableType:
    parts: list[RenderableType] = [
        Text(f"Transcript read as {t.format} output: {len(t.steps)} exchanges", style="bold")
    ]
    notes: dict[int, list[Note]] = {}  # the tool's own lines, by the exchange they precede
    for note in t.notes:
        notes.setdefault(min(note.before, len(t.steps)), []).append(note)
    middle = range(HEAD_EXCHANGES, max(HEAD_EXCHANGES, len(t.steps) - TAIL_EXCHANGES))
    for index, step in enumerate(t.steps):
        if index in middle:
            if index == middle.start:
                parts += [Text(""), _summed_up(t, middle, notes)]
            continue
        parts += _notes(notes.get(index, []), t.format)
        parts.append(Text(""))
        parts.append(_step(step, t, plain=plain))
    parts += _notes(notes.get(len(t.steps), []), t.format)
    parts.append(Text(""))
    parts.append(_summary(t, plain=plain))
    return Group(*parts)


def _notes(notes: list[Note], tool: str) -> list[RenderableType]:
    rows: list[RenderableType] = [_note(n, tool) for n in notes[:NOTES_SHOWN]]
    if len(notes) > NOTES_SHOWN:
        more = f"{tool}: … {len(notes) - NOTES_SHOWN:,} more lines of its own"
        rows.append(Text(more, style="dim"))
    return rows


def _summed_up(t: Transcript, middle: range, notes: dict[int, list[Note]]) -> Text:
    """The exchanges of the middle, counted by kind: `39,750 × RCPT → 250`."""
    kinds = Counter(_kind(t.steps[index]) for index in middle)
    own = sum(len(notes.get(index, ())) for index in middle)
    shown = [f"{count:,} × {kind}" for kind, count in kinds.most_common(KINDS_SHOWN)]
    if len(kinds) > KINDS_SHOWN:
        shown.append(f"{len(kinds) - KINDS_SHOWN:,} other kinds")
    text = (
        f"… exchanges {middle.start + 1:,} to {middle.stop:,} are not shown one by one "
        f"({len(middle):,} of them): " + "; ".join(shown)
    )
    if own:
        text += f"; and {own:,} lines of {t.format}'s own"
    return _shown(text, "bold")


def _kind(step: Step) -> str:
    exchange = step.exchange
    what = {"data": "message data", "auth": "AUTH answer"}.get(exchange.kind, exchange.kind)
    if exchange.kind == "command":
        what = exchange.verb[:20] or "(empty line)"
    return f"{what} → {exchange.code or 'no reply'}"


def _shown(text: str, style: str = "") -> Text:
    """A line of the transcript, made visible and cut after LINE_SHOWN characters."""
    return untrusted(clipped(text, LINE_SHOWN), style)


def _shown_bytes(raw: bytes, *, ending_shown: bool = False) -> Text:
    start, note = clipped_bytes(raw, LINE_SHOWN)
    text = untrusted_line(start) if ending_shown and not note else untrusted_bytes(start)
    return join(text, Text(note, style="dim"))


def _note(note: Note, tool: str) -> Text:
    label = f"{tool} error: " if note.error else f"{tool}: "
    return join(Text(label, style="bold red" if note.error else "dim"), _shown(note.text, "dim"))


def _tls(tls: bool) -> str:
    return "TLS " if tls else ""


def _step(step: Step, t: Transcript, *, plain: bool) -> RenderableType:
    exchange = step.exchange
    rows: list[RenderableType] = []
    lock = _tls(exchange.tls)
    if exchange.kind == "greeting":
        rows.append(Text(f"{lock}(connected: the server speaks first)", style="dim"))
    elif exchange.kind == "notice":
        rows.append(Text(f"{lock}(a reply nobody asked for)", style="dim"))
    elif exchange.kind == "data":
        rows += _data_lines(exchange.sent, t.line_endings_shown, lock)
    else:
        label = (
            " (AUTH answer: base64, an encoding anyone can undo)" if exchange.kind == "auth" else ""
        )
        line = _shown_bytes(exchange.sent, ending_shown=t.line_endings_shown)
        rows.append(join(Text(f"{lock}C: ", style="bold"), line, Text(label, style="dim")))
    code = exchange.code or 0
    rows += _reply_lines(exchange.replies, code, lock)
    if step.unexpected:
        rows.append(Text("   (the tool marked this reply as unexpected)", style="yellow"))
    if step.annotation is None:
        rows.append(Text("   (no reply: the transcript ends before one)", style="dim"))
    else:
        rows.append(Padding(_explanation(step.annotation, code), (0, 0, 0, 3)))
    if step.after.summary != step.before.summary:
        now = " · ".join(step.after.summary)
        rows.append(join(Text("   server knows: ", style="bold"), _shown(now, "dim")))
    return Group(*rows)


def _reply_lines(replies: tuple[str, ...], code: int, lock: str) -> list[RenderableType]:
    """The reply's lines: a long one as its first lines, how many more, and its last."""
    style = CLASS_STYLE.get(code // 100, "")
    shown = list(replies)
    hidden = len(replies) - REPLY_LINES_SHOWN
    if hidden > 0:
        shown = [*replies[: REPLY_LINES_SHOWN - 1], replies[-1]]
    rows: list[RenderableType] = [join(Text(f"{lock}S: "), _shown(line, style)) for line in shown]
    if hidden > 0:
        more = Text(f"{lock}S: … {hidden:,} more lines of this reply", style="dim")
        rows.insert(len(rows) - 1, more)
    return rows


def _data_lines(sent: bytes, endings_shown: bool, lock: str) -> list[RenderableType]:
    lines = wire_lines(sent, keepends=True) if endings_shown else sent.split(b"\n")
    if not endings_shown and lines and lines[-1] == b"":
        lines.pop()
    rows: list[RenderableType] = [
        Text(
            f"{lock}message data ({len(lines)} lines; not commands, whatever they look like):",
            style="bold",
        )
    ]
    for raw in lines[:DATA_PREVIEW_LINES]:
        rows.append(
            join(Text(f"{lock}C| ", style="bold"), _shown_bytes(raw, ending_shown=endings_shown))
        )
    hidden = len(lines) - DATA_PREVIEW_LINES
    if hidden > 0:
        rows.append(Text(f"{lock}C| … {hidden} more lines", style="dim"))
    return rows


def _explanation(note: Annotation, code: int) -> Text:
    out = join(
        Text("→ ", style="bold"),
        _shown(note.headline, f"bold {CLASS_STYLE.get(code // 100, '')}"),
    )
    detail = wire_lines(note.detail)
    for line in detail[:REPLY_LINES_SHOWN]:
        out.append("\n")
        out.append(_shown(line))
    if len(detail) > REPLY_LINES_SHOWN:
        out.append(Text(f"\n… {len(detail) - REPLY_LINES_SHOWN:,} more lines", style="dim"))
    if note.enhanced and note.enhanced_meaning:
        out.append("\n")
        out.append(untrusted(f"{note.enhanced}: {note.enhanced_meaning}", "dim"))
    out.append("\n")
    out.append(Text("class: " + note.reply_class.split(":", 1)[0], style="dim"))
    out.append(untrusted(f" · see {note.rfc}", "dim"))
    if note.advice:
        out.append("\n")
        out.append(join(Text("next: ", style="italic"), _shown(note.advice, "italic")))
    return out


def _summary(t: Transcript, *, plain: bool) -> RenderableType:
    s = t.summary
    sender = "(none accepted)" if s.sender is None else f"<{s.sender}>"
    rows = [
        join(Text("envelope sender: ", style="bold"), untrusted(sender)),
        join(Text("recipients accepted: ", style="bold"), untrusted(_addresses(s.accepted))),
        join(Text("recipients refused: ", style="bold"), untrusted(_addresses(s.refused))),
        join(Text("outcome: ", style="bold"), _shown(s.outcome_text)),
    ]
    if s.problem is not None:
        sent = s.problem.sent or "(nothing: the server spoke first)"
        rows.append(
            join(
                Text("what went wrong: ", style="bold"),
                _shown(f"{sent} → {s.problem.reply[-1]}"),
                Text(" — "),
                _shown(s.problem.headline),
            )
        )
    else:
        rows.append(Text("what went wrong: nothing: every reply was a success", style="bold"))
    if plain:
        return Group(Text("== Summary ==", style="bold"), *rows)
    return Panel(Group(*rows), title="Summary", title_align="left", border_style="blue")


def _addresses(addresses: tuple[str, ...]) -> str:
    if not addresses:
        return "none"
    named = ", ".join(f"<{clipped(a, LINE_SHOWN)}>" for a in addresses[:NAMES_SHOWN])
    more = len(addresses) - NAMES_SHOWN
    return f"{named} and {more:,} more" if more > 0 else named
