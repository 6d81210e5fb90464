"""A step's canonical answer: what "show me", resuming and validate all send."""

from __future__ import annotations

from dataclasses import dataclass

from tutor.engine.model import Step
from tutor.smtp.textsafe import wire_lines


@dataclass(frozen=True)
class Answer:
    action: str  # "advance" | "connect" | "library" | "pipeline" | "lines" | "queue"
    lines: tuple[str, ...] = ()


def canonical_lines(text: str) -> list[str]:
    """A goal step's canonical answer: several commands separated by newlines."""
    return [line for line in wire_lines(text) if line.strip()]


def canonical(step: Step) -> Answer:
    if step.kind == "read":
        return Answer("advance")
    if step.kind == "connect" and step.host:  # a world lesson: the learner picks the host
        return Answer("lines", (f"connect {step.host}",))
    if step.kind == "connect":
        return Answer("connect")
    if step.kind in ("queue", "bounce", "inbox"):
        return Answer("queue")
    if step.kind in ("library", "pipeline"):
        return Answer(step.kind, step.lines)
    if step.kind == "data":
        return Answer("lines", (*step.lines, "."))
    lines = canonical_lines(step.command)
    if step.lines:  # a goal whose answer includes a message
        lines += [*step.lines, "."]
    return Answer("lines", tuple(lines))
