"""The lesson model: what a lesson file says, as typed values (see docs/lessons.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard, get_args

# Literals, so mypy (strict equality) rejects `step.kind == "comand"`; the loader turns
# the strings of a lesson file into them (is_step_kind, is_check_kind).
StepKind = Literal[
    "connect",
    "command",
    "data",
    "goal",
    "read",
    "library",
    "pipeline",
    "lookup",
    "queue",
    "bounce",
    "inbox",
]
STEP_KINDS: tuple[StepKind, ...] = get_args(StepKind)
CheckKind = Literal[
    "reply",
    "enhanced",
    "stored_in",
    "not_stored_in",
    "copies",
    "to_names",
    "to_excludes",
    "from_differs",
    "mismatch",
    "recipients_refused",
    "bounce_to",
    "bounced",
    "tls",
    "authenticated",
    "envelope_sender",
    "spf",
    "dmarc",
    "client_address",
    "last_stored_in",
    "to_only",
    "refused_alongside",
    "bounce_not_to",
    "helo_claims",
    "body_has_line",
    "body_lacks_line",
    "looked_up",
    "reached",
    "tried",
    "delivered_to",
    "dsn",
    "auth_result",
    "mime_part",
    "decoded_has",
    "attachment",
    "header_has",
    "header_lacks",
    "fields_differ",
]
CHECK_NAMES: tuple[CheckKind, ...] = get_args(CheckKind)

# What each check's value is (docs/lessons.md, the table of checks); the loader refuses
# any other type, so a check never meets a value it cannot judge in the middle of a lesson.
CheckValue = Literal["code", "count", "text", "flag", "flag or text"]
CHECK_VALUES: dict[CheckKind, CheckValue] = {
    "reply": "code",
    "enhanced": "text",
    "stored_in": "text",
    "not_stored_in": "text",
    "copies": "count",
    "to_names": "text",
    "to_excludes": "text",
    "from_differs": "flag",
    "mismatch": "flag",
    "recipients_refused": "count",
    "bounce_to": "text",
    "bounced": "flag",
    "tls": "flag",
    "authenticated": "flag",
    "envelope_sender": "text",
    "spf": "text",
    "dmarc": "text",
    "client_address": "text",
    "last_stored_in": "text",
    "to_only": "text",
    "refused_alongside": "count",
    "bounce_not_to": "text",
    "helo_claims": "flag or text",
    "body_has_line": "text",
    "body_lacks_line": "text",
    "looked_up": "text",
    "reached": "text",
    "tried": "text",
    "delivered_to": "text",
    "dsn": "text",
    "auth_result": "text",
    "mime_part": "text",
    "decoded_has": "text",
    "attachment": "text",
    "header_has": "text",
    "header_lacks": "text",
    "fields_differ": "text",
}


def is_step_kind(text: str) -> TypeGuard[StepKind]:
    return text in STEP_KINDS


def is_check_kind(text: str) -> TypeGuard[CheckKind]:
    return text in CHECK_NAMES


@dataclass(frozen=True)
class Check:
    """A fact about what happened, checked against the server's capture.

    kind is one of CheckKind, judged by CHECK_KINDS (engine/checks.py); value is its
    argument, of the type CHECK_VALUES names for the kind.
    """

    kind: CheckKind
    value: Any
    line: int = 0


@dataclass(frozen=True)
class Step:
    id: str
    kind: StepKind
    explain: str
    after: str = ""
    command: str = ""  # the canonical answer: validate, demo and "show me" use it
    lines: tuple[str, ...] = ()  # data steps: the canonical message lines (without the dot)
    accept: tuple[re.Pattern[str], ...] = ()
    expect: tuple[int, ...] = ()
    hints: tuple[str, ...] = ()
    on_reply: dict[str, str] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()
    goal: str = ""
    predict: bool = False  # ask for the reply class before sending
    optional: bool = False
    counter_example: str = ""
    source: str = ""  # connect steps: the local address to connect from
    open_relay: bool | None = None  # connect steps: switch the server's relay setting
    dns: tuple[str, ...] = ()  # domains whose simulated DNS records the step shows
    host: str = ""  # world connect steps: the host the learner must reach (they choose)
    recipient: str = ""  # queue steps: the address the simulated queue keeps trying
    mailbox: str = ""  # inbox steps: whose mailbox of the world to read (bob@example.org)
    line: int = 0

    def accepts(self, text: str) -> bool:
        """Is this the right kind of command for the step? (Never an exact-string match.)"""
        return not self.accept or any(p.search(text) for p in self.accept)

    def feedback_for(self, code: int, enhanced: str | None) -> str | None:
        """Targeted feedback: most specific key first (5.1.1, then 550, then 55x, then 5xx)."""
        keys = [enhanced or "", str(code), f"{str(code)[:2]}x", f"{str(code)[0]}xx"]
        for key in keys:
            if key and key in self.on_reply:
                return self.on_reply[key]
        return None


@dataclass(frozen=True)
class Question:
    """Asked at the end; the answer is a fact of the learner's own session."""

    ask: str
    fact: str
    line: int = 0


@dataclass(frozen=True)
class Lesson:
    id: str
    number: int
    title: str
    summary: str
    objectives: tuple[str, ...]
    steps: tuple[Step, ...]
    persona: dict[str, Any] = field(default_factory=dict)
    misconception: str = ""
    learned: tuple[str, ...] = ()
    questions: tuple[Question, ...] = ()
    source: str = ""
    world: bool = False  # runs in the simulated internet: DNS and one MTA per host

    def step_index(self, step_id: str) -> int:
        for index, step in enumerate(self.steps):
            if step.id == step_id:
                return index
        raise KeyError(step_id)
