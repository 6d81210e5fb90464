"""Reading an SMTP transcript: swaks output, a telnet or nc log, smtplib's debug output.

Two steps. First each line becomes a turn: who wrote it (client, server, or the tool
itself), its text, and whether it travelled under TLS. Then the turns become the same
exchanges the server captures (client line -> reply lines), so every view and every
explanation works on both. Client lines are paired with replies in order, which also
untangles pipelined commands; the lines between a 354 and the lone dot are message data
even when they look like replies. Stdlib only.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from tutor.errors import UserError
from tutor.explain.annotate import Annotation, annotate
from tutor.smtp.events import Exchange, ExchangeKind
from tutor.smtp.session_state import SessionState, queue_id
from tutor.smtp.textsafe import wire_lines
from tutor.smtp.wire import parse_reply_line

MessageOutcome = Literal["accepted", "refused", "never sent"]  # what became of the message


class Turn(NamedTuple):
    direction: str  # "client" | "server" | "info" (the tool's own line) | "error" (swaks ***)
    text: str  # the line without its ending
    tls: bool  # the transcript says this line crossed under TLS
    ending: str = ""  # "\r\n" or "\n" where the transcript shows it (smtplib), else ""
    unexpected: bool = False  # swaks marked it with '*': not the reply it hoped for


@dataclass(frozen=True)
class Note:
    """A line of the tool's own (swaks's "=== TLS started…", telnet's "Connected to…")."""

    text: str
    error: bool
    before: int  # how many exchanges came before it


@dataclass(frozen=True)
class Known:
    """What the server knew at one point of the transcript: the facts the views use, taken
    from the one SessionState that follows the session. A copy of the whole state per
    step made `annotate` quadratic: a state holds every recipient and message so far."""

    summary: tuple[str, ...]  # SessionState.summary()
    greeted: bool
    tls: bool
    in_data: bool
    sender: str | None
    auth_user: str | None

    @classmethod
    def of(cls, state: SessionState) -> Known:
        return cls(
            tuple(state.summary()),
            state.greeted,
            state.tls,
            state.in_data,
            state.sender,
            state.auth_user,
        )


@dataclass(frozen=True)
class Step:
    """One exchange in context: what the server knew before and after, and the reply explained."""

    exchange: Exchange
    before: Known
    after: Known
    annotation: Annotation | None  # None: no reply came
    unexpected: bool = False


@dataclass(frozen=True)
class Problem:
    """The first reply that went wrong."""

    sent: str  # the command it answered ("" for a greeting or a notice)
    reply: tuple[str, ...]
    headline: str


@dataclass(frozen=True)
class Summary:
    sender: str | None  # None: no sender accepted; "": the null sender <>
    accepted: tuple[str, ...]
    refused: tuple[str, ...]
    outcome: MessageOutcome
    outcome_text: str
    queue_ids: tuple[str, ...]
    problem: Problem | None


@dataclass(frozen=True)
class Transcript:
    format: str  # "swaks" | "smtplib" | "telnet" | "nc" (a bare terminal log)
    turns: tuple[Turn, ...]
    steps: tuple[Step, ...]
    notes: tuple[Note, ...]
    line_endings_shown: bool  # only smtplib's output shows the exact bytes, CRLF included
    summary: Summary

    @property
    def exchanges(self) -> tuple[Exchange, ...]:
        return tuple(step.exchange for step in self.steps)


def parse(text: str) -> Transcript:
    """Read a transcript in any supported format (detected from its lines)."""
    lines = wire_lines(text)
    kind = detect_format(lines)
    turns = tuple(read_turns(lines, kind))
    if not any(turn.direction == "server" for turn in turns):
        raise UserError(
            "no SMTP reply found: expected a transcript from swaks, telnet, nc or "
            "smtplib's set_debuglevel(1), with lines such as `250 OK`"
        )
    built, notes = build_exchanges(turns, explicit_tls=kind == "swaks")
    envelope = _Envelope()
    steps = tuple(_steps(built, envelope))
    summary = _summarise(steps, envelope)
    return Transcript(kind, turns, steps, tuple(notes), kind == "smtplib", summary)


def read(source: str, read_stdin: Callable[[], str]) -> Transcript:
    """Parse the file `source`, or standard input for "-" (what `annotate FILE|-` takes)."""
    if source == "-":
        return parse(read_stdin())
    try:
        text = Path(source).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as error:
        raise UserError(f"cannot read {source}: {error.strerror or error}") from error
    return parse(text)


# --- which tool wrote it ------------------------------------------------------------------

_SWAKS = re.compile(r"^\s*(<~\*|<\*\*|<~|<-|\*~>|\*\*>|~>|->|===|\*\*\*)(?: (.*)|$)")
_SMTPLIB = re.compile(r"^(?:\d{2}:\d{2}:\d{2}\.\d+ )?(send|reply|data|connect|connect fail): (.*)$")
_TELNET_META = re.compile(
    r"^(Trying \S+\.\.\.|Connected to \S+\.|Escape character is .+|"
    r"Connection closed by foreign host\.|Connection closed\.|telnet> .*|telnet: .*|\^\])$"
)
_NC_META = re.compile(
    r"^(Connection to \S+ \d+ port .*succeeded!|(?:nc|ncat|Ncat|netcat): .*|"
    r"\S*[$#%] (?:telnet|nc|ncat|netcat|socat|openssl)\b.*|(?:telnet|nc|ncat|netcat) \S.*)$"
)


def detect_format(lines: list[str]) -> str:
    """ "swaks", "smtplib", "telnet" (with telnet's own lines) or "nc" (a bare log)."""
    meaningful = [line for line in lines if line.strip()]
    if not meaningful:
        raise UserError("the transcript is empty")
    smtplib = [m.group(1) for line in meaningful if (m := _SMTPLIB.match(line))]
    if "send" in smtplib and "reply" in smtplib:
        return "smtplib"
    swaks = sum(1 for line in meaningful if _SWAKS.match(line))
    if swaks * 2 >= len(meaningful):
        return "swaks"
    if any(_TELNET_META.match(line.strip()) for line in meaningful):
        return "telnet"
    return "nc"


def read_turns(lines: list[str], kind: str) -> Iterable[Turn]:
    if kind == "swaks":
        return _swaks_turns(lines)
    if kind == "smtplib":
        return _smtplib_turns(lines)
    return _plain_turns(lines)


# --- swaks --------------------------------------------------------------------------------


def _swaks_turns(lines: list[str]) -> Iterable[Turn]:
    # swaks prefixes each line: "<-" read, "->" sent; "~" under TLS, "*" unexpected;
    # "===" its own information and "***" its own errors.
    for line in lines:
        match = _SWAKS.match(line)
        if match is None:
            if line.strip():
                yield Turn("info", line.strip(), False)
            continue
        marker, rest = match.group(1), match.group(2) or ""
        tls, unexpected = "~" in marker, "*" in marker
        if marker == "===":
            yield Turn("info", rest.strip(), False)
        elif marker == "***":
            yield Turn("error", rest.strip(), False)
        elif marker.startswith("<"):
            yield Turn("server", rest.lstrip(" "), tls, "", unexpected)
        else:
            yield Turn("client", rest, tls, "", unexpected)


# --- smtplib's debug output ---------------------------------------------------------------


def _literal(text: str) -> str | bytes | None:
    """A Python str or bytes literal as smtplib printed it; None if it is not one."""
    if not re.match(r"^b?(['\"])", text):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, (str, bytes)) else None


def _smtplib_turns(lines: list[str]) -> Iterable[Turn]:
    # set_debuglevel(1) prints "send: 'ehlo x\r\n'" and "reply: b'250-…\r\n'"; level 2
    # adds a timestamp. "reply: retcode (…); Msg: …" and "data: (…)" only sum up what
    # was already shown, so they are skipped.
    for line in lines:
        match = _SMTPLIB.match(line)
        if match is None:
            if line.strip():
                yield Turn("info", line.strip(), False)
            continue
        what, rest = match.groups()
        if what == "data" or (what == "reply" and rest.startswith("retcode")):
            continue
        if what.startswith("connect"):
            yield Turn("info", f"{what}: {rest}", False)
            continue
        value = _literal(rest)
        if value is None:
            yield Turn("info", line.strip(), False)
            continue
        raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
        direction = "client" if what == "send" else "server"
        for piece in wire_lines(raw, keepends=True):
            body = piece.rstrip(b"\r\n")
            ending = piece[len(body) :].decode("ascii")
            yield Turn(direction, body.decode("utf-8", "surrogateescape"), False, ending)


# --- telnet and nc: a terminal's view -----------------------------------------------------


def _plain_turns(lines: list[str]) -> Iterable[Turn]:
    # A terminal shows both sides without marks: a line shaped like a reply ("250 x",
    # "250-x") is the server's, any other line the client's, the tools' own lines are
    # information - except between a 354 and the lone dot, where every line is message
    # text, "550 is a reply code" included.
    in_data = False
    answered = _reply_follows(lines)
    for index, line in enumerate(lines):
        if in_data:
            yield Turn("client", line, False)
            in_data = line != "."
            continue
        stripped = line.strip()
        if _TELNET_META.match(stripped) or _NC_META.match(stripped):
            yield Turn("info", stripped, False)
            continue
        reply = parse_reply_line(line)
        if reply is not None:
            yield Turn("server", line, False)
            in_data = reply.final and reply.code == 354
        elif stripped or answered[index]:
            yield Turn("client", line, False)


def _reply_follows(lines: list[str]) -> list[bool]:
    """For each line, whether the next line that is not blank is a reply: an empty line
    counts as sent only if a reply follows it (500: empty command). One pass from the
    end; looking ahead from each blank line made 80,000 of them take minutes."""
    follows = [False] * len(lines)
    reply_next = False
    for index in range(len(lines) - 1, -1, -1):
        follows[index] = reply_next
        if lines[index].strip():
            reply_next = parse_reply_line(lines[index]) is not None
    return follows


# --- turns into exchanges -----------------------------------------------------------------


@dataclass(frozen=True)
class _Pending:
    kind: ExchangeKind
    sent: bytes
    tls: bool
    unexpected: bool


def _to_bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def build_exchanges(
    turns: Iterable[Turn], *, explicit_tls: bool
) -> tuple[list[tuple[Exchange, bool]], list[Note]]:
    """Pair client lines with replies, first in first out: (exchange, unexpected) pairs.

    Without explicit TLS marks, a 220 to STARTTLS means the rest travelled under TLS.
    """
    built: list[tuple[Exchange, bool]] = []
    notes: list[Note] = []
    pending: deque[_Pending] = deque()
    reply: list[str] = []
    reply_unexpected = False
    data: list[bytes] | None = None  # message lines, once a 354 has come
    data_tls = False
    expect_auth = False
    tls_on = False

    def close_data() -> None:
        nonlocal data
        if data:
            pending.append(_Pending("data", b"".join(data), data_tls, False))
        data = None

    for turn in turns:
        if turn.direction in ("info", "error"):
            notes.append(Note(turn.text, turn.direction == "error", len(built)))
            continue
        tls = turn.tls or tls_on
        raw = _to_bytes(turn.text) + turn.ending.encode("ascii")
        if turn.direction == "client":
            if data is not None:
                data.append(raw if turn.ending else raw + b"\n")
                if turn.text == ".":
                    close_data()
                continue
            kind: ExchangeKind = "auth" if expect_auth else "command"
            pending.append(_Pending(kind, raw, tls, turn.unexpected))
            expect_auth = False
            continue
        if data is not None:
            close_data()  # the tool did not show the dot (swaks -n sums the data up)
        reply.append(turn.text)
        reply_unexpected = reply_unexpected or turn.unexpected
        line = parse_reply_line(turn.text)
        if line is None or not line.final:
            continue
        if pending:
            sent = pending.popleft()
        else:  # nothing asked: the greeting, or a notice such as 421 on timeout
            sent = _Pending("notice" if built else "greeting", b"", tls, False)
        exchange = Exchange(0, kind=sent.kind, sent=sent.sent, replies=tuple(reply), tls=sent.tls)
        built.append((exchange, sent.unexpected or reply_unexpected))
        reply, reply_unexpected = [], False
        expect_auth = line.code == 334
        if line.code == 354 and exchange.kind == "command":
            data, data_tls = [], tls
        if not explicit_tls and exchange.verb == "STARTTLS" and line.code == 220:
            tls_on = True
    close_data()
    for sent in pending:  # never answered: the session ended first
        unanswered = Exchange(0, kind=sent.kind, sent=sent.sent, replies=(), tls=sent.tls)
        built.append((unanswered, sent.unexpected))
    if reply:  # a reply cut off before its last line
        built.append((Exchange(0, kind="notice", sent=b"", replies=tuple(reply)), False))
    return built, notes


# --- in context ---------------------------------------------------------------------------


class _Envelope:
    """Every recipient accepted or refused in the transcript, in order, each once."""

    def __init__(self) -> None:
        self.accepted: dict[str, None] = {}  # a dict: ordered, and a lookup in constant time
        self.refused: dict[str, None] = {}

    def take(self, state: SessionState, accepted_before: int, refused_before: int) -> None:
        """The recipients one exchange added (a list that grew is one that was appended to)."""
        for address in state.accepted[accepted_before:]:
            self.accepted.setdefault(address)
        for refused in state.refused[refused_before:]:
            self.refused.setdefault(refused.address)


def _steps(built: list[tuple[Exchange, bool]], envelope: _Envelope) -> Iterable[Step]:
    """Each exchange with what the server knew before and after: one SessionState fed in
    order, its facts taken at each step (constant work per step, not a copy of it all)."""
    state = SessionState()
    before = Known.of(state)
    for exchange, unexpected in built:
        reply = exchange.reply
        command = None if exchange.kind in ("greeting", "notice") else exchange.command
        annotation = annotate(command, reply, state) if reply is not None else None
        counts = len(state.accepted), len(state.refused)
        state.feed_exchange(exchange)
        envelope.take(state, *counts)
        after = Known.of(state)
        yield Step(exchange, before, after, annotation, unexpected)
        before = after


def _summarise(steps: tuple[Step, ...], envelope: _Envelope) -> Summary:
    sender: str | None = None
    accepted = list(envelope.accepted)
    refused = list(envelope.refused)
    queue_ids: list[str] = []
    refusal: Step | None = None
    problem: Problem | None = None
    for step in steps:
        if step.after.sender is not None:
            sender = step.after.sender
        reply = step.exchange.reply
        if reply is None:
            continue
        if step.before.in_data and reply.code == 250:
            queue_ids.append(queue_id(reply) or "")
        elif step.before.in_data and refusal is None:
            refusal = step
        if reply.code >= 400 and problem is None and step.annotation is not None:
            sent = "" if step.exchange.kind in ("greeting", "notice") else _sent_label(step)
            problem = Problem(sent, tuple(reply.wire_lines()), step.annotation.headline)
    outcome, text = _outcome(steps, (accepted, refused), queue_ids, refusal, problem)
    return Summary(
        sender, tuple(accepted), tuple(refused), outcome, text, tuple(queue_ids), problem
    )


def _sent_label(step: Step) -> str:
    if step.exchange.kind == "data":
        return "(the message data, ended by the lone dot)"
    return step.exchange.command


def _outcome(
    steps: tuple[Step, ...],
    envelope: tuple[list[str], list[str]],
    queue_ids: list[str],
    refusal: Step | None,
    problem: Problem | None,
) -> tuple[MessageOutcome, str]:
    accepted, refused = envelope
    if queue_ids:
        ids = ", ".join(q or "no id given" for q in queue_ids)
        if len(queue_ids) == 1:
            return "accepted", f"message accepted (queue id {ids})"
        return "accepted", f"{len(queue_ids)} messages accepted (queue ids {ids})"
    if refusal is not None and refusal.exchange.reply is not None:
        how = "temporarily" if refusal.exchange.reply.code < 500 else "permanently"
        last = refusal.exchange.reply.wire_lines()[-1]
        return "refused", f"message refused {how} after the data: {last}"
    unanswered = [
        s.exchange for s in steps if s.exchange.kind == "data" and not s.exchange.answered
    ]
    if unanswered and wire_lines(unanswered[-1].sent)[-1:] != [b"."]:
        why = "the message data never ended with a lone dot"
    elif unanswered:
        why = "the message got no reply before the session ended"
    elif refused and not accepted:
        why = "no recipient was accepted"
    elif problem is not None:
        why = problem.headline
    else:
        why = "the session ended before a message was sent"
    return "never sent", f"message never sent: {why}"
