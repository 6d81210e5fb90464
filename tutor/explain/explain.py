"""`explain`: every reply code and enhanced status code in a piece of text, in words.

The text may be a bare code (`354`, `5.7.1`, `X.1.1`), a reply line
(`550 5.1.1 <bob@example.test>: Recipient address rejected`) or a whole bounce pasted
from a mail client: multi-line replies (`550-5.7.26 …`), a DSN's `Status: 5.1.1` and
`Diagnostic-Code: smtp; 550 …`. Each code is explained once, in the order it first
appears; a whole reply is also explained as a reply (code, enhanced code and text
together). Stdlib only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tutor.errors import UserError
from tutor.explain.annotate import Annotation, annotate_alone
from tutor.smtp.codes import (
    enhanced_class,
    enhanced_code,
    enhanced_subject,
    reply_category,
    reply_class,
    reply_code,
)
from tutor.smtp.textsafe import wire_lines
from tutor.smtp.wire import Reply, ReplyLine

LIST_HINT = "`smtp-tutor codes` lists them"
ENHANCED_HINT = "`smtp-tutor codes 5.x.x` lists them"


@dataclass(frozen=True)
class Explained:
    kind: str  # "reply" | "enhanced"
    code: str  # as explained: "550", "5.1.1", "X.7.26", "5.X.X"
    title: str
    meaning: str
    when: str  # reply: when servers send it; enhanced: the reply codes it comes with
    action: str  # what to do about it
    rfc: str
    first: str  # what the first digit (reply) or the class (enhanced) says
    second: str  # what the second digit (reply) or the subject (enhanced) says
    found_in: str | None = None  # the reply or line of the text it was found in
    in_context: Annotation | None = None  # a whole reply, explained as one


def explain(text: str) -> list[Explained]:
    """Explain each code found in `text`; UserError if none is found or one is unknown."""
    stripped = text.strip()
    if not stripped:
        raise UserError(
            "nothing to explain: give a reply code (550), an enhanced status code (5.1.1), "
            "a reply line or a bounce"
        )
    tokens = stripped.split()
    if all(_TOKEN.fullmatch(token) for token in tokens) and not _looks_like_reply(tokens):
        return _unique(explain_code(token) for token in tokens)
    found = _scan(stripped)
    if not found:
        raise UserError(
            "no SMTP reply code (such as 550) or enhanced status code (such as 5.1.1) "
            f"found in the text; {LIST_HINT}"
        )
    return _unique(found)


def explain_args(args: list[str], read_stdin: Callable[[], str]) -> list[Explained]:
    """`explain ARG...`: the arguments joined with spaces, or standard input for a lone "-"."""
    if args == ["-"]:
        return explain(read_stdin())
    return explain(" ".join(args))


def explain_code(token: str) -> Explained:
    """One bare code: a reply code (`550`) or an enhanced code (`5.1.1`, `X.1.1`, `5.X.X`)."""
    if token.isdigit():
        return _reply(int(token))
    return _enhanced(token)


# --- finding codes in text ----------------------------------------------------------------

_TOKEN = re.compile(r"\d{3}|[0-9Xx]\.(?:\d{1,3}|[Xx]{1,3})\.(?:\d{1,3}|[XxYy]{1,3})")
_WILDCARD = re.compile(r"[245Xx]\.(?:\d{1,3}|[Xx]{1,3})\.(?:\d{1,3}|[XxYy]{1,3})")

# A reply code at the start of a line, or after "said:", "smtp;", a quote or "(" as in
# Postfix's, DSNs' and smtplib's reports. The code shape is checked afterwards, so that
# a line such as "299 x" is reported as an unknown code rather than ignored.
_REPLY_AT = re.compile(
    r"(?:^|(?<=[:;'\"(#]))[ \t]*(?P<code>\d{3})(?P<sep>[ -]|,\s*b?['\"]|$)(?P<text>.*)$"
)
# An enhanced code anywhere, but not inside an IP address, a version or "RFC 5321 §4.1.2".
_ENHANCED_AT = re.compile(r"(?<![\d.§])(?P<code>\d\.\d{1,3}\.\d{1,3})(?![\d]|\.\d)")
_SECTION_BEFORE = re.compile(r"(?:section|§|rfc\s*\d+)\s*$", re.IGNORECASE)


def _looks_like_reply(tokens: list[str]) -> bool:
    """ "550 5.1.1" is a reply line, explained together, not two unrelated codes."""
    return len(tokens) == 2 and tokens[0].isdigit() and not tokens[1].isdigit()


def _scan(text: str) -> list[Explained]:
    lines = wire_lines(text)
    single_line = len(lines) == 1
    found: list[tuple[tuple[int, int], Explained]] = []
    reply_lines: list[tuple[int, int, ReplyLine]] = []  # (line, column, parsed)
    for number, line in enumerate(lines):
        match = _REPLY_AT.search(line)
        if match is not None and (single_line or _reply_shaped(match.group("code"))):
            code = int(match.group("code"))
            final = not match.group("sep").startswith("-")
            parsed = ReplyLine(code, final, match.group("text").strip())
            reply_lines.append((number, match.start("code"), parsed))
        for enhanced in _ENHANCED_AT.finditer(line):
            if _SECTION_BEFORE.search(line[: enhanced.start()]):
                continue
            token = enhanced.group("code")
            if not single_line and token[0] not in "245":
                continue  # in prose only the three real classes count as codes
            found.append(((number, enhanced.start()), _found(_enhanced(token), line)))
    for position, last, reply in _group_replies(reply_lines):
        wire = "\n".join(reply.wire_lines())
        explained = _reply(reply.code)
        number, column = position
        # Bounces name the command a reply answered just before it ("after RCPT TO:") or
        # in a wrapped line after it ("(in reply to end of / DATA command)").
        around = [*lines[max(0, number - 1) : number], lines[number][:column], reply.text]
        around += lines[last + 1 : last + 2]
        context = annotate_alone(reply, hint=" ".join(around))
        found.append((position, _found(explained, wire, context)))
    return [item for _, item in sorted(found, key=lambda pair: pair[0])]


def _reply_shaped(code: str) -> bool:
    return code[0] in "2345" and code[1] in "012345"


def _group_replies(
    lines: list[tuple[int, int, ReplyLine]],
) -> list[tuple[tuple[int, int], int, Reply]]:
    """Continuation lines (`550-…`) and the final line (`550 …`) form one reply.

    Each reply comes with where it starts (line, column) and the number of its last line.
    """
    replies: list[tuple[tuple[int, int], int, Reply]] = []
    current: list[ReplyLine] = []
    start, last = (0, 0), 0
    for number, column, line in lines:
        if current and (line.code != current[-1].code or current[-1].final):
            replies.append((start, last, Reply(tuple(current))))
            current = []
        if not current:
            start = (number, column)
        current.append(line)
        last = number
    if current:
        replies.append((start, last, Reply(tuple(current))))
    return replies


def _found(item: Explained, where: str, context: Annotation | None = None) -> Explained:
    return Explained(
        item.kind,
        item.code,
        item.title,
        item.meaning,
        item.when,
        item.action,
        item.rfc,
        item.first,
        item.second,
        where.strip(),
        context,
    )


def _unique(items: Iterable[Explained]) -> list[Explained]:
    seen: set[str] = set()
    out: list[Explained] = []
    for item in items:
        if item.code.upper() not in seen:
            seen.add(item.code.upper())
            out.append(item)
    return out


# --- the catalogue, in words --------------------------------------------------------------


def _reply(code: int) -> Explained:
    entry = reply_code(code)
    if entry is None:
        if not (200 <= code < 600 and code // 10 % 10 <= 5):
            raise UserError(
                f"unknown reply code {code}: valid reply codes are 2xx–5xx; {LIST_HINT}"
            )
        raise UserError(
            f"unknown reply code {code}: not defined by RFC 5321 or the extensions "
            f"smtp-tutor knows; {LIST_HINT}"
        )
    return Explained(
        "reply",
        str(code),
        entry.title,
        entry.meaning,
        entry.when,
        entry.action,
        entry.rfc,
        reply_class(code),
        reply_category(code),
    )


_ACTIONS = {
    "2": "Nothing to do: it reports success.",
    "4": "Temporary: the same message may get through later; a mail server retries by itself.",
    "5": "Permanent: something must change (the address, the content, the sender's set-up) "
    "before sending again.",
}


def enhanced_reference(registry_code: str, rfc: str) -> str:
    """RFC 3463 with its section: §2 for classes and subjects, §3.n for subject n-1."""
    if rfc != "RFC 3463":
        return rfc
    parts = registry_code.split(".")
    if parts[1].isdigit() and parts[2].isdigit():
        return f"RFC 3463 §3.{int(parts[1]) + 1}"
    return "RFC 3463 §2"


def _enhanced(token: str) -> Explained:
    text = token.upper()
    klass, subject, detail = text.split(".")
    if klass not in "245X" or len(klass) != 1:
        raise UserError(
            f"unknown enhanced status code {token}: the first number is the class, 2 "
            f"(success), 4 (temporary) or 5 (permanent); {ENHANCED_HINT}"
        )
    if subject.isdigit() and int(subject) > 7:
        raise UserError(
            f"unknown enhanced status code {token}: subjects run from 0 to 7 "
            f"(x.1 addressing … x.7 security or policy); {ENHANCED_HINT}"
        )
    code = ".".join(str(int(p)) if p.isdigit() else p for p in (klass, subject, detail))
    if not _WILDCARD.fullmatch(code):
        raise UserError(f"unknown enhanced status code {token}; {ENHANCED_HINT}")
    entry = enhanced_code(code)
    if entry is None and subject.isdigit() and detail.isdigit():
        subject_entry = enhanced_code(f"X.{int(subject)}.YYY")
        assert subject_entry is not None  # subjects 0-7 are all registered
        return Explained(
            "enhanced",
            code,
            "not in the IANA registry",
            f"Subject {int(subject)} ({subject_entry.title}) is registered, but detail "
            f"{int(detail)} is not: probably this provider's own code. The words after the "
            "code say what it means.",
            "",
            _ACTIONS.get(klass, ""),
            "RFC 3463 §2",
            enhanced_class(code),
            enhanced_subject(code),
        )
    if entry is None:
        raise UserError(f"unknown enhanced status code {token}; {ENHANCED_HINT}")
    used = ", ".join(str(c) for c in entry.used_with)
    return Explained(
        "enhanced",
        code,
        entry.title,
        entry.description,
        f"The registry pairs it with reply {used}." if used else "",
        _ACTIONS.get(klass, ""),
        enhanced_reference(entry.code, entry.rfc),
        enhanced_class(code),
        enhanced_subject(code),
    )
