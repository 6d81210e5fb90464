"""The lesson screen's pieces: a step's text, each exchange explained, the envelope view.

Everything the server or the learner produced is untrusted text (ui.safe); lesson text
is Markdown made safe the same way. With `plain`, no boxes and no colour-only meaning:
every mark is also a word.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.text import Text

from tutor.engine import runner
from tutor.engine.checks import mailbox_words
from tutor.engine.model import Lesson, Step
from tutor.engine.runner import LessonRun, Outcome
from tutor.explain.annotate import annotate
from tutor.smtp.events import (
    RELAY_FOLDER,
    BareLineFeed,
    BounceSent,
    Exchange,
    MessageStored,
    TlsStarted,
)
from tutor.smtp.session_state import SessionState
from tutor.smtp.textsafe import wire_lines
from tutor.ui.common.safe import join, lesson_markdown, untrusted, untrusted_block, untrusted_line
from tutor.ui.common.words import counted

if TYPE_CHECKING:  # a stored message's views are imported when one is shown
    from tutor.maildir.mailview import StoredMessage

CLASS_STYLE = {2: "green", 3: "cyan", 4: "yellow", 5: "red"}


def _box(content: RenderableType, title: str, *, plain: bool, style: str = "") -> RenderableType:
    """A titled block; the title may hold lesson text, so it is made safe like any other."""
    heading = untrusted(title, "bold")
    if plain:
        return Group(join(Text("== "), heading, Text(" ==")), content)
    return Panel(content, title=heading, title_align="left", border_style=style or "blue")


def lesson_intro(lesson: Lesson, total: int, *, plain: bool) -> RenderableType:
    parts: list[RenderableType] = []
    if lesson.summary:
        parts.append(untrusted(lesson.summary))
    if lesson.objectives:
        parts.append(Text("You will:", style="bold"))
        parts.append(bullets(lesson.objectives))
    if lesson.misconception:
        parts.append(
            join(
                Text("A common belief this lesson puts to the test: ", style="bold"),
                untrusted(lesson.misconception, "italic"),
            )
        )
    title = f"Lesson {lesson.number} of {total}: {lesson.title}"
    return _box(Group(*parts), title, plain=plain, style="magenta")


def bullets(items: Sequence[str]) -> RenderableType:
    """A list that wraps with a hanging indent (Markdown does that well)."""
    return lesson_markdown("\n".join(f"- {item}" for item in items))


def hint_view(number: int, total: int, hint: str) -> RenderableType:
    """`Hint k/n:` and the hint; a line it offers to type is shown exactly (ui/common/safe.py)."""
    return lesson_markdown(f"**Hint {number}/{total}:** {hint}")


def question_view(number: int, ask: str) -> RenderableType:
    return lesson_markdown(f"**{number}.** {ask}")


def step_intro(step: Step, index: int, total: int, *, plain: bool) -> RenderableType:
    """`Step N/M` opens the step (the screen contract); a step id is the author's name
    for it, never shown."""
    parts: list[RenderableType] = [lesson_markdown(step.explain)]
    if step.kind == "goal" and step.goal:
        parts.append(join(Text("Goal: ", style="bold"), untrusted(step.goal)))
    if step.optional:
        parts.append(Text("(optional: /skip moves on)", style="dim"))
    return _box(Group(*parts), f"Step {index + 1}/{total}", plain=plain)


def sent_line(raw: bytes, *, plain: bool, tls: bool = False) -> Text:
    """The exact bytes the client put on the wire, line ending made visible."""
    arrow = "C:" if plain else "you →"
    lock = " [TLS]" if tls else ""
    return join(Text(f"  {arrow}{lock} ", style="bold"), untrusted_line(raw, "bold"))


def reply_lines(exchange: Exchange, *, plain: bool) -> list[Text]:
    arrow = "S:" if plain else "← server"
    lock = " [TLS]" if exchange.tls else ""
    code = exchange.code or 0
    style = CLASS_STYLE.get(code // 100, "")
    return [join(Text(f"  {arrow}{lock} "), untrusted(line, style)) for line in exchange.replies]


def exchange_view(
    exchange: Exchange,
    before: SessionState,
    *,
    plain: bool,
    show_sent: bool = True,
    brief: bool = False,
) -> RenderableType:
    """One exchange: sent, replied, and what the reply means here (in this state);
    `brief`: only the headline of the meaning (a code already explained in full)."""
    rows: list[RenderableType] = []
    if show_sent and exchange.kind == "command":
        rows.append(sent_line(exchange.sent, plain=plain, tls=exchange.tls))
    elif show_sent and exchange.kind == "auth":
        rows.append(Text("  (AUTH answer sent, base64)", style="dim"))
    elif show_sent and exchange.kind == "data" and exchange.sent:
        # The message lines were shown as they went; the lone dot that ends it is shown
        # here, with its line ending, like every other line.
        last = wire_lines(exchange.sent, keepends=True)[-1]
        rows.append(sent_line(last, plain=plain, tls=exchange.tls))
    rows += reply_lines(exchange, plain=plain)
    reply = exchange.reply
    if reply is None:
        rows.append(Text("  (no reply: the connection ended first)", style="dim"))
        return Group(*rows)
    command = None if exchange.kind in ("greeting", "notice") else exchange.command
    if exchange.kind == "data":
        command = "<end of data>"
    note = annotate(command, reply, before)
    style = CLASS_STYLE.get(reply.code // 100, "")
    explanation = untrusted(note.headline, f"bold {style}")  # may quote the client's words
    if brief:  # the headline; and for a 3xx, what to send next: the server is waiting
        if note.advice and 300 <= reply.code < 400:
            explanation.append(Text("\n")).append(untrusted(note.advice, "italic"))
        rows.append(Padding(explanation, (0, 0, 0, 4)))
        return Group(*rows)
    if note.detail:
        explanation.append(Text("\n")).append(untrusted_block(note.detail))
    facts = [note.reply_class]
    if note.enhanced and note.enhanced_meaning and not note.enhanced.endswith(".0.0"):
        facts.append(f"{note.enhanced}: {note.enhanced_meaning}")  # X.0.0 adds nothing
    if note.rfc:
        facts.append(note.rfc)
    explanation.append(Text("\n")).append(untrusted(" · ".join(facts), "dim"))
    if note.advice:
        explanation.append(Text("\n")).append(untrusted(note.advice, "italic"))
    rows.append(Padding(explanation, (0, 0, 0, 4)))
    return Group(*rows)


def data_line_note(line: str, *, plain: bool) -> RenderableType | None:
    """Dot-stuffing made visible: what the server will do with a line starting with a dot."""
    if not line.startswith(".") or line == ".":
        return None
    note = (
        f"note: this line starts with a dot. The server removes one leading dot from every "
        f"message line (RFC 5321 §4.5.2, transparency), so it stores {line[1:]!r}."
    )
    if not line.startswith(".."):
        note += f" To keep the dot, double it: {'.' + line!r}."
    return Padding(untrusted(note, "yellow"), (0, 0, 0, 4))


def outcome_view(outcome: Outcome, *, plain: bool) -> RenderableType | None:
    step = outcome.step
    if outcome.status == runner.OutcomeStatus.DONE:
        mark = "Done." if plain else "✓ Done."
        parts: list[RenderableType] = [Text(mark, style="bold green")]
        if step.after:
            parts.append(lesson_markdown(step.after))
        return Padding(Group(*parts), (0, 0, 0, 2))
    lines: list[RenderableType] = []
    if outcome.feedback:
        lines.append(lesson_markdown(outcome.feedback))
    if outcome.status == runner.OutcomeStatus.REFUSED and not outcome.feedback:
        lines.append(
            Text(
                "That was the right kind of command, but the server refused it: "
                "read its reply above and try again (/hint helps).",
                style="yellow",
            )
        )
    elif outcome.status == runner.OutcomeStatus.OFF_STEP and not outcome.feedback:
        lines.append(
            Text(
                "That went to the server all the same (see its reply), but it is not "
                "what this step asks for. /hint helps.",
                style="yellow",
            )
        )
    elif outcome.status == runner.OutcomeStatus.PENDING and outcome.missing:
        missing = "; ".join(outcome.missing) + "."
        code = outcome.exchange.code if outcome.exchange is not None else None
        if code is not None and code < 400:  # on the way: a step of several commands
            lines.append(untrusted("On the way; the step still needs: " + missing, "dim"))
        else:
            lines.append(untrusted("Not there yet: " + missing, "yellow"))
    if not lines:
        return None
    return Padding(Group(*lines), (0, 0, 0, 2))


def state_line(state: SessionState, *, plain: bool) -> Text:
    facts = state.summary()
    label = "server knows: " if plain else "server knows · "
    return untrusted(label + (" · ".join(facts) if facts else "nothing yet"), "dim")


def envelope_view(
    stored: MessageStored, copies: Sequence[StoredMessage], *, plain: bool
) -> RenderableType:
    """Where the message went (envelope) beside what it claims (headers), then the stored
    copy: the same pieces `mailbox show` and the dashboard use (ui/common/message_view.py)."""
    from tutor.ui.common.message_view import envelope_table, mismatch_notes

    comparison = stored.comparison
    title = f"Message {stored.queue_id}: envelope against headers"
    parts: list[RenderableType] = [envelope_table(comparison, plain=plain, title=title)]
    got = ", ".join(f"{c.folder} ({c.recipient})" for c in stored.copies)
    parts.append(join(Text("Delivered to: ", style="bold"), untrusted(got)))
    parts += mismatch_notes(comparison)
    if copies:
        parts.append(trace_view(copies[0], plain=plain))
        from tutor.ui.common.mime_view import mime_tree_view

        tree = mime_tree_view(copies[0].raw)  # a MIME message: its parts, decoded
        if tree is not None:
            parts += [Text(""), tree]
    return Group(*parts)


def trace_view(message: StoredMessage, *, plain: bool) -> RenderableType:
    """The stored copy as stored (its first body lines), the server's headers marked."""
    where = (
        f"the {message.folder} folder (kept here, never sent)"
        if message.folder == RELAY_FOLDER
        else mailbox_words(message.folder, address=False)  # its ref follows
    )
    caption = untrusted(
        f"Stored copy in {where} ({message.ref}), line by line; server> marks the trace "
        "fields the server added on top: Return-Path is the envelope sender, Received names "
        "your real address and the envelope, Authentication-Results its verdicts on the "
        "sender, Delivered-To the envelope recipient.",
        "dim",
    )
    from tutor.ui.common.message_view import stored_copy

    copy = stored_copy(message, plain=plain, body_limit=BODY_LINES)
    return Group(Text(""), copy, caption)


BODY_LINES = 12  # of the stored body, below the headers


def event_note(event: object, *, plain: bool) -> Text | None:
    if isinstance(event, BareLineFeed):
        if event.in_data:
            return Text(
                "  The server saw message text ending in LF alone, without CR. In DATA only "
                "CRLF . CRLF ends a message (RFC 5321 §2.3.8, §4.1.1.4): a dot on a line "
                "ended by a bare LF is message text, so the message is not over.",
                style="yellow",
            )
        return Text(
            "  That line ended in LF alone. This server still answers commands sent that "
            "way, but SMTP lines end in CRLF (RFC 5321 §2.3.8), and strict servers refuse.",
            style="yellow",
        )
    if isinstance(event, TlsStarted):
        return Text(f"  TLS started: {event.version}, {event.cipher}", style="magenta")
    if isinstance(event, BounceSent):
        if event.copy is None:
            return Text(
                "  A delivery failed later, but the sender was <>: bounces are never "
                "bounced, so the failure is dropped.",
                style="yellow",
            )
        return join(
            Text(
                "  A delivery failed later: the server sent a bounce (DSN, status "
                f"{event.status}) with MAIL FROM:<> to the envelope sender ",
                style="yellow",
            ),
            untrusted(f"<{event.to}>"),
            Text(f", stored in {event.copy.folder}.", style="yellow"),
        )
    return None


def dns_view(domains: Sequence[str], *, plain: bool) -> RenderableType:
    """Records from the simulated DNS table, labelled as simulated; one block per domain,
    so it reads at 80 columns too."""
    from tutor.world.dnsdata import SIMULATED_NOTE  # the table, with the first step that shows it

    out = Text(f"DNS records from the {SIMULATED_NOTE}", style="bold")
    for domain in domains:
        out.append("\n")
        out.append(untrusted(f"  {domain}", "bold"))
        for label, value in _dns_rows(domain):
            out.append("\n")
            out.append(Text(f"    {label:<6}", style="dim"))
            out.append(untrusted(value))
    return out


def _dns_rows(domain: str) -> list[tuple[str, str]]:
    from tutor.world import dnsdata

    record = dnsdata.lookup(domain)
    if record is None:
        return [("", "not in the table")]
    if not record.exists:
        return [("", "NXDOMAIN: the name does not exist")]
    rows = []
    if record.null_mx:
        rows.append(("MX", "0 .   a null MX: this domain accepts no mail (RFC 7505)"))
    elif record.mx:
        rows += [("MX", f"{preference} {host}") for preference, host in record.mx]
    else:
        fallback = "mail goes to the A record instead (RFC 5321 §5.1)" if record.a else ""
        rows.append(("MX", f"none; {fallback}" if fallback else "none"))
    rows += [("A", address) for address in record.a]
    if record.spf:
        rows.append(("SPF", record.spf))
    if record.dmarc:
        rows.append(("DMARC", record.dmarc))
    return rows


def sequence_diagram(exchanges: Sequence[Exchange], *, plain: bool, width: int = 76) -> Text:
    """The session as arrows between client and server, with the reply codes."""
    out = Text()
    left, right = "you (client)", "mx.tutor.test (server)"
    out.append(left + " " * max(1, width - len(left) - len(right)) + right + "\n", style="bold")
    inner = width - 4
    tls = False
    for index, exchange in enumerate(exchanges):
        if exchange.kind == "greeting" and index > 0:
            out.append(_divider("a new connection: a new session", inner, plain=plain))
            tls = False
        if exchange.tls and not tls:
            out.append(_divider("TLS handshake: encrypted from here on", inner, plain=plain))
        tls = exchange.tls
        if exchange.kind == "command":
            label = exchange.command
            if exchange.verb == "AUTH":
                label = "AUTH " + label.split(" ")[1] if " " in label else label
            out.append(_arrow(label, inner, right_pointing=True, plain=plain))
        elif exchange.kind == "data":
            lines = exchange.sent.count(b"\n")
            out.append(
                _arrow(
                    f"(message: {lines} lines, ending with the lone dot)",
                    inner,
                    right_pointing=True,
                    plain=plain,
                )
            )
        elif exchange.kind == "auth":
            out.append(_arrow("(AUTH answer)", inner, right_pointing=True, plain=plain))
        if exchange.replies:
            label = exchange.replies[0]  # the first line names the reply; "+N" the rest
            if len(exchange.replies) > 1:
                label += f" (+{len(exchange.replies) - 1} lines)"
            arrow = _arrow(label, inner, right_pointing=False, plain=plain)
            arrow.stylize(CLASS_STYLE.get((exchange.code or 0) // 100, ""))
            out.append(arrow)
    return out


def _divider(label: str, inner: int, *, plain: bool) -> Text:
    """A line across the diagram: something that changed the session itself."""
    rule = "=" if plain else "═"
    side = max(2, (inner + 2 - len(label) - 2) // 2)
    body = f"{rule * side} {label} {rule * side}"
    return Text("|" + body[: inner + 2].ljust(inner + 2, rule) + "|\n", style="bold")


def _arrow(label: str, inner: int, *, right_pointing: bool, plain: bool) -> Text:
    from tutor.smtp.textsafe import visible

    label = visible(label)
    if len(label) > inner - 6:
        label = label[: inner - 7] + "…"
    dash = "-" if plain else "─"
    fill = dash * max(2, inner - len(label) - 2)
    if right_pointing:
        body = f" {label} {fill}>" if plain else f" {label} {fill}▶"
    else:
        body = f"<{fill} {label} " if plain else f"◀{fill} {label} "
    return Text("|" + body[: inner + 2].ljust(inner + 2) + "|\n")


def lesson_end(
    lesson: Lesson, run: LessonRun, exchanges: Sequence[Exchange], *, plain: bool
) -> RenderableType:
    parts: list[RenderableType] = [
        Text("Your session, as a sequence diagram:", style="bold"),
        sequence_diagram(exchanges, plain=plain),
    ]
    if lesson.learned:
        parts.append(Text("What you saw happen:", style="bold"))
        parts.append(bullets(lesson.learned))
    helped = len(run.assisted)
    verdict = "done" if not helped else f"done with help on {counted(helped, 'step')}"
    parts.append(Text(f"Lesson {lesson.number} {verdict}.", style="bold green"))
    return _box(
        Group(*parts), f"End of lesson {lesson.number}: {lesson.title}", plain=plain, style="green"
    )
