"""Presentation mode: one step per screen, the reply code large, for a projector.

Each reply is shown once: the exchange as the lesson screen shows it (sent, replied,
the headline), then the code in a block font with its verdict in words, then the rest
of its meaning. The block and the verdict use only bold and reverse video, which read
on light and dark backgrounds alike; the words always say what a colour would.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text

from tutor.explain.annotate import annotate
from tutor.smtp.events import Exchange
from tutor.smtp.session_state import SessionState
from tutor.ui.common import lesson_view as view
from tutor.ui.common.safe import untrusted, untrusted_block

# A 3x5 block font for the digits of a reply code.
_DIGITS = {
    "0": ["███", "█ █", "█ █", "█ █", "███"],
    "1": [" █ ", "██ ", " █ ", " █ ", "███"],
    "2": ["███", "  █", "███", "█  ", "███"],
    "3": ["███", "  █", " ██", "  █", "███"],
    "4": ["█ █", "█ █", "███", "  █", "  █"],
    "5": ["███", "█  ", "███", "  █", "███"],
    "6": ["███", "█  ", "███", "█ █", "███"],
    "7": ["███", "  █", " █ ", " █ ", " █ "],
    "8": ["███", "█ █", "███", "█ █", "███"],
    "9": ["███", "█ █", "███", "  █", "███"],
}
VERDICT = {2: "DONE", 3: "GO ON", 4: "NOT NOW, TRY LATER", 5: "REFUSED"}


def big_code(code: int) -> Text:
    """The three digits, five lines high, two columns per block for square-ish pixels."""
    rows = []
    for row in range(5):
        rows.append(
            "   ".join(_DIGITS[d][row].replace("█", "██").replace(" ", "  ") for d in str(code))
        )
    return Text("\n".join(rows), style="bold")


def present_exchange(exchange: Exchange, before: SessionState, *, plain: bool) -> RenderableType:
    """An exchange on the projector, each thing once: what was sent and the exact reply
    with its headline (as on the lesson screen), then the code large with its verdict in
    words, then the rest of its meaning."""
    rows: list[RenderableType] = [view.exchange_view(exchange, before, plain=plain, brief=True)]
    reply = exchange.reply
    if reply is None:
        return Group(*rows)
    command = None if exchange.kind in ("greeting", "notice") else exchange.command
    note = annotate("<end of data>" if exchange.kind == "data" else command, reply, before)
    verdict = VERDICT.get(reply.code // 100, "")
    rows += [
        Padding(big_code(reply.code), (1, 0, 0, 4)),
        Padding(Text(f" {reply.code} · {verdict} ", style="bold reverse"), (1, 0, 0, 4)),
    ]
    facts = [note.reply_class]
    if note.enhanced and note.enhanced_meaning and not note.enhanced.endswith(".0.0"):
        facts.append(f"{note.enhanced}: {note.enhanced_meaning}")  # X.0.0 adds nothing
    if note.rfc:
        facts.append(note.rfc)
    meaning = [untrusted(" · ".join(facts))]
    if note.detail and note.detail.count("\n") < _DETAIL_LINES:  # an EHLO's list is on screen
        meaning.insert(0, untrusted_block(note.detail))
    if note.advice:
        meaning.append(untrusted(note.advice, "bold"))
    rows.append(Padding(Group(*meaning), (1, 0, 1, 4)))
    return Group(*rows)


_DETAIL_LINES = 3  # a longer detail would push the reply off a projected screen


def step_banner(lesson_number: int, title: str, index: int, total: int) -> Text:
    return untrusted(
        f" Lesson {lesson_number} · {title} · step {index + 1} of {total} ", "bold reverse"
    )
