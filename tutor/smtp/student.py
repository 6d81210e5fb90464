"""Who a student is, in a class: the name a session gives itself, and that name made safe
for a file name (docs/teaching.md).

A student at telnet names themselves with `NOOP student=NAME`. NOOP takes an argument
(RFC 5321 §4.1.1.9: "If a parameter string is specified, servers SHOULD ignore it"); the
teaching server reads this one form and still answers 250, as it does any NOOP. Without
it a session is known by its AUTH user, else its HELO/EHLO name, else its client address.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

NAME_LIMIT = 40  # characters: a roster column, a folder name
_ARGUMENT = re.compile(r"student=(.*)\Z", re.IGNORECASE | re.DOTALL)
_PUNCTUATION = " .-_'"  # allowed in a name beside letters and digits
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_RESERVED = re.compile(r"(con|prn|aux|nul|com\d|lpt\d)(\..*)?\Z", re.IGNORECASE)


class NameSource(StrEnum):
    """Where a session's student name came from, strongest first."""

    NOOP = "noop"
    AUTH = "auth"
    HELO = "helo"
    ADDRESS = "address"


@dataclass(frozen=True)
class StudentArgument:
    """What a NOOP argument says about the student: a name, or why none was taken."""

    name: str | None
    problem: str | None = None


def noop_student(argument: str | None) -> StudentArgument | None:
    """The `student=NAME` form of a NOOP argument; None for any other argument (ignored,
    as the RFC asks)."""
    if not argument:
        return None
    match = _ARGUMENT.match(argument.strip())
    if match is None:
        return None
    name = " ".join(match.group(1).split())
    if not name:
        return StudentArgument(None, "no name after student=")
    if len(name) > NAME_LIMIT:
        return StudentArgument(None, f"a name of at most {NAME_LIMIT} characters")
    if not all(c.isalnum() or c in _PUNCTUATION for c in name):
        return StudentArgument(None, "letters, digits, spaces and . - _ ' only")
    return StudentArgument(unicodedata.normalize("NFC", name))


def file_safe(name: str) -> str:
    """The name as one path component on any system: ASCII letters, digits, `.`, `-` and
    `_`, never hidden or reserved. A name that had to change gets a short hash of the
    original, so that two names never share a folder ("Zoë" and "Zoe" stay apart)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    safe = _SAFE.sub("-", ascii_name).strip(".-_")[:NAME_LIMIT] or "student"
    if _WINDOWS_RESERVED.match(safe):
        safe = f"student-{safe}"
    if safe != name:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:6]
        safe = f"{safe}-{digest}"
    return safe
