"""`annotate`: a transcript replayed exchange by exchange, each reply explained in context.

Everything taken from the transcript is untrusted and shown literally through ui.safe:
a `[bold]` in a reply stays those characters, an ESC becomes `\\x1b`. Words carry every
meaning (C:/S:, "TLS", "message data"); colour only adds to them, and `plain` drops the
boxes as well.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.text import Text

from tutor.explain.annotate import Annotation
from tutor.explain.transcript import Note, Step, Transcript
from tutor.ui.common.safe import join, untrusted, untrusted_bytes, untrusted_line

CLASS_STYLE = {2: "green", 3: "cyan", 4: "yellow", 5: "red"}
DATA_PREVIEW_LINES = 40


def render_transcript(t: Transcript, *, plain: bool = False) -> RenderableType:
    parts: list[RenderableType] = [
        Text(f"Transcript read as {t.format} output: {len(t.steps)} exchanges", style="bold")
    ]
    notes = list(t.notes)
    for index, step in enumerate(t.steps):
        parts += [_note(n, t.format) for n in notes if n.before == index]
        parts.append(Text(""))
        parts.append(_step(step, t, plain=plain))
    parts += [_note(n, t.format) for n in notes if n.before >= len(t.steps)]
    parts.append(Text(""))
    parts.append(_summary(t, plain=plain))
    return Group(*parts)


def _note(note: Note, tool: str) -> Text:
    label = f"{tool} error: " if note.error else f"{tool}: "
    return join(Text(label, style="bold red" if note.error else "dim"), untrusted(note.text, "dim"))


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
        line = (
            untrusted_line(exchange.sent)
            if t.line_endings_shown
            else untrusted_bytes(exchange.sent)
        )
        rows.append(join(Text(f"{lock}C: ", style="bold"), line, Text(label, style="dim")))
    code = exchange.code or 0
    for reply_line in exchange.replies:
        rows.append(
            join(Text(f"{lock}S: "), untrusted(reply_line, CLASS_STYLE.get(code // 100, "")))
        )
    if step.unexpected:
        rows.append(Text("   (the tool marked this reply as unexpected)", style="yellow"))
    if step.annotation is None:
        rows.append(Text("   (no reply: the transcript ends before one)", style="dim"))
    else:
        rows.append(Padding(_explanation(step.annotation, code), (0, 0, 0, 3)))
    if step.after.summary() != step.before.summary():
        now = " · ".join(step.after.summary())
        rows.append(join(Text("   server knows: ", style="bold"), untrusted(now, "dim")))
    return Group(*rows)


def _data_lines(sent: bytes, endings_shown: bool, lock: str) -> list[RenderableType]:
    lines = sent.splitlines(keepends=True) if endings_shown else sent.split(b"\n")
    if not endings_shown and lines and lines[-1] == b"":
        lines.pop()
    rows: list[RenderableType] = [
        Text(
            f"{lock}message data ({len(lines)} lines; not commands, whatever they look like):",
            style="bold",
        )
    ]
    for raw in lines[:DATA_PREVIEW_LINES]:
        text = untrusted_line(raw) if endings_shown else untrusted_bytes(raw)
        rows.append(join(Text(f"{lock}C| ", style="bold"), text))
    hidden = len(lines) - DATA_PREVIEW_LINES
    if hidden > 0:
        rows.append(Text(f"{lock}C| … {hidden} more lines", style="dim"))
    return rows


def _explanation(note: Annotation, code: int) -> Text:
    out = join(
        Text("→ ", style="bold"),
        untrusted(note.headline, f"bold {CLASS_STYLE.get(code // 100, '')}"),
    )
    for line in note.detail.splitlines():
        out.append("\n")
        out.append(untrusted(line))
    if note.enhanced and note.enhanced_meaning:
        out.append("\n")
        out.append(untrusted(f"{note.enhanced}: {note.enhanced_meaning}", "dim"))
    out.append("\n")
    out.append(Text("class: " + note.reply_class.split(":", 1)[0], style="dim"))
    out.append(untrusted(f" · see {note.rfc}", "dim"))
    if note.advice:
        out.append("\n")
        out.append(join(Text("next: ", style="italic"), untrusted(note.advice, "italic")))
    return out


def _summary(t: Transcript, *, plain: bool) -> RenderableType:
    s = t.summary
    sender = "(none accepted)" if s.sender is None else f"<{s.sender}>"
    rows = [
        join(Text("envelope sender: ", style="bold"), untrusted(sender)),
        join(Text("recipients accepted: ", style="bold"), untrusted(_addresses(s.accepted))),
        join(Text("recipients refused: ", style="bold"), untrusted(_addresses(s.refused))),
        join(Text("outcome: ", style="bold"), untrusted(s.outcome_text)),
    ]
    if s.problem is not None:
        sent = s.problem.sent or "(nothing: the server spoke first)"
        rows.append(
            join(
                Text("what went wrong: ", style="bold"),
                untrusted(f"{sent} → {s.problem.reply[-1]}"),
                Text(" — "),
                untrusted(s.problem.headline),
            )
        )
    else:
        rows.append(Text("what went wrong: nothing: every reply was a success", style="bold"))
    if plain:
        return Group(Text("== Summary ==", style="bold"), *rows)
    return Panel(Group(*rows), title="Summary", title_align="left", border_style="blue")


def _addresses(addresses: tuple[str, ...]) -> str:
    return ", ".join(f"<{a}>" for a in addresses) if addresses else "none"
