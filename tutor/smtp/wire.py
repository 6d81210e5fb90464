"""SMTP on the wire, stdlib only: line limits, reply lines, paths, dot-stuffing, hosts.

Everything here is pure: bytes and strings in, values out. The server, the client and
the transcript readers all share these rules, so they agree on what a line means.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import overload

CRLF = b"\r\n"

# RFC 5321 §4.5.3.1.4 and §4.5.3.1.6: both limits count the CRLF.
COMMAND_LINE_LIMIT = 512
TEXT_LINE_LIMIT = 1000
# §4.5.3.1.8: a server must accept at least 100 recipients.
RECIPIENT_LIMIT = 100
LOCAL_PART_LIMIT = 64  # §4.5.3.1.1
DOMAIN_LIMIT = 255  # §4.5.3.1.2
PATH_LIMIT = 256  # §4.5.3.1.3

_REPLY_LINE = re.compile(r"^(?P<code>[2-5][0-5][0-9])(?P<sep>[ -]|$)(?P<text>.*)$")
_ENHANCED = re.compile(r"^(?P<code>[245]\.\d{1,3}\.\d{1,3})(?:\s+|$)")


# --- replies -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyLine:
    """One line of a reply as it crossed the wire, without its CRLF."""

    code: int
    final: bool  # "250 x" ends a reply; "250-x" is a continuation line
    text: str

    @property
    def enhanced(self) -> str | None:
        """The RFC 3463 enhanced status code at the start of the text, if any."""
        match = _ENHANCED.match(self.text)
        return match.group("code") if match else None


def parse_reply_line(line: str) -> ReplyLine | None:
    """Parse one reply line; None if it is not of the form `DDD[ -]text`."""
    match = _REPLY_LINE.match(line.rstrip("\r\n"))
    if match is None:
        return None
    return ReplyLine(int(match["code"]), match["sep"] != "-", match["text"])


@dataclass(frozen=True)
class Reply:
    """A complete reply: one or more lines sharing a code, the last one final."""

    lines: tuple[ReplyLine, ...]

    @property
    def code(self) -> int:
        return self.lines[-1].code

    @property
    def enhanced(self) -> str | None:
        return self.lines[0].enhanced

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def wire_lines(self) -> list[str]:
        return [f"{line.code}{' ' if line.final else '-'}{line.text}" for line in self.lines]


def format_reply(code: int, texts: list[str]) -> list[str]:
    """Lay out a (possibly multi-line) reply: `250-a`, `250-b`, `250 c`."""
    if not texts:
        return [str(code)]
    *head, last = texts
    return [f"{code}-{t}" for t in head] + [f"{code} {last}"]


# --- line endings and data ------------------------------------------------------------


def line_ending(line: bytes) -> str:
    """Name the ending of a raw line: "CRLF", "LF" (bare), "CR" or "" (none)."""
    if line.endswith(b"\r\n"):
        return "CRLF"
    if line.endswith(b"\n"):
        return "LF"
    if line.endswith(b"\r"):
        return "CR"
    return ""


def has_bare_lf(data: bytes, previous: bytes = b"") -> bool:
    """True if `data` holds an LF not preceded by CR; `previous` is the byte before it."""
    joined = previous[-1:] + data
    start = len(joined) - len(data)  # LFs of `data` only; the carried byte is context
    while True:
        index = joined.find(b"\n", start)
        if index < 0:
            return False
        if index == 0 or joined[index - 1 : index] != b"\r":
            return True
        start = index + 1


def dot_stuff(body: bytes) -> bytes:
    """Prepare message text for DATA (RFC 5321 §4.5.2): double leading dots, end CRLF."""
    lines = body.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
    return b"".join(line + CRLF for line in stuffed)


def dot_unstuff(line: bytes) -> bytes:
    """Undo transparency for one received DATA line."""
    return line[1:] if line.startswith(b".") else line


# --- paths (RFC 5321 §4.1.2) ----------------------------------------------------------

_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~"
_ATOM_ASCII = re.compile(rf"[{_ATEXT}]+\Z")
_ATOM_UTF8 = re.compile(rf"(?:[{_ATEXT}]|[^\x00-\x7f])+\Z")
_QUOTED = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e]|[^\x00-\x7f])*"\Z')
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\Z")
_LABEL_UTF8 = re.compile(
    r"(?:[A-Za-z0-9]|[^\x00-\x7f])(?:(?:[A-Za-z0-9-]|[^\x00-\x7f])*"
    r"(?:[A-Za-z0-9]|[^\x00-\x7f]))?\Z"
)
_IPV4 = re.compile(
    r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\Z"
)
_PARAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*(?:=[\x21-\x3c\x3e-\x7e]+)?\Z")


class PathError(ValueError):
    """Why a MAIL/RCPT argument was refused; `kind` picks the reply."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind  # "syntax" | "brackets" | "address" | "non_ascii" | "params"
        self.detail = detail


@dataclass(frozen=True)
class Path:
    """A parsed reverse-path or forward-path with its ESMTP parameters."""

    address: str  # "" for the null reverse-path <>
    local: str
    domain: str
    params: dict[str, str | bool] = field(default_factory=dict)

    @property
    def is_null(self) -> bool:
        return self.address == ""

    @property
    def is_ascii(self) -> bool:
        return self.address.isascii()


def _valid_domain(domain: str, utf8: bool) -> bool:
    if domain.startswith("[") and domain.endswith("]"):
        literal = domain[1:-1]
        if literal.lower().startswith("ipv6:"):
            import ipaddress

            try:
                ipaddress.IPv6Address(literal[5:])
            except ValueError:
                return False
            return True
        return _IPV4.match(literal) is not None
    if not domain or len(domain) > DOMAIN_LIMIT:
        return False
    label = _LABEL_UTF8 if utf8 else _LABEL
    return all(label.match(part) for part in domain.split("."))


def _valid_local(local: str, utf8: bool) -> bool:
    if not local or len(local.encode("utf-8", "surrogateescape")) > LOCAL_PART_LIMIT:
        return False
    if local.startswith('"'):
        return _QUOTED.match(local) is not None
    atom = _ATOM_UTF8 if utf8 else _ATOM_ASCII
    return all(atom.match(part) for part in local.split("."))


def parse_path(
    argument: str, keyword: str, *, allow_null: bool, allow_postmaster: bool, utf8: bool = False
) -> Path:
    """Parse `FROM:<a@b> PARAMS` or `TO:<a@b> PARAMS` (the text after MAIL / RCPT).

    Strict where RFC 5321 is strict (angle brackets, a domain), lenient where real
    servers are (a space after the colon, any case). Raises PathError.
    """
    if argument[: len(keyword)].upper() != keyword:
        raise PathError("syntax", f"expected {keyword}<address>")
    rest = argument[len(keyword) :].lstrip(" ")
    if not rest.startswith("<"):
        raise PathError("brackets", "the address must be inside angle brackets: <you@tutor.test>")
    close = _closing_bracket(rest)
    if close < 0:
        raise PathError("brackets", "the closing '>' is missing")
    inner, tail = rest[1:close], rest[close + 1 :]
    if tail and not tail.startswith(" "):
        raise PathError("syntax", "parameters must be separated from the address by a space")
    params = _parse_params(tail.split())
    if "SMTPUTF8" in params and params["SMTPUTF8"] is not True:
        raise PathError("params", "SMTPUTF8 takes no value")
    utf8 = utf8 or params.get("SMTPUTF8") is True
    if inner == "":
        if allow_null:
            return Path("", "", "", params)
        raise PathError("address", "an empty address <> is only allowed as a sender")
    if len(inner) + 2 > PATH_LIMIT:
        raise PathError("address", "the path is longer than 256 octets")
    if ":" in inner and inner.startswith("@"):
        inner = inner.split(":", 1)[1]  # a source route: RFC 5321 says ignore it (§4.1.2)
    if allow_postmaster and inner.lower() == "postmaster":
        return Path("postmaster", "postmaster", "", params)
    local, at, domain = inner.rpartition("@")
    if not at:
        raise PathError("address", "an address needs a local part, '@' and a domain")
    if not inner.isascii() and not utf8:
        raise PathError("non_ascii", "non-ASCII addresses need the SMTPUTF8 parameter")
    if not _valid_local(local, utf8) or not _valid_domain(domain, utf8):
        raise PathError("address", "the address is not valid RFC 5321 syntax")
    return Path(inner, local, domain, params)


def _closing_bracket(text: str) -> int:
    """Index of the '>' that closes the path, skipping quoted local parts."""
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
    return -1


def _parse_params(words: list[str]) -> dict[str, str | bool]:
    params: dict[str, str | bool] = {}
    for word in words:
        if not _PARAM.match(word):
            raise PathError("syntax", f"malformed parameter {word!r}")
        name, eq, value = word.partition("=")
        params[name.upper()] = value if eq else True
    return params


@overload
def split_command(line: bytes) -> tuple[bytes, bytes]: ...


@overload
def split_command(line: str) -> tuple[str, str]: ...


def split_command(line: bytes | str) -> tuple[bytes, bytes] | tuple[str, str]:
    """A command line (terminator removed) split as the server splits it: the verb before
    the first space, in ASCII capitals, and the rest without its spaces ("mail FROM:<a@b>"
    -> ("MAIL", "FROM:<a@b>")). Whoever follows a session from the client's side splits it
    the same way, so a line the server cannot read is one the follower does not act on."""
    if isinstance(line, str):
        verb, argument = split_command(line.encode("utf-8", "surrogateescape"))
        return verb.decode("utf-8", "surrogateescape"), argument.decode("utf-8", "surrogateescape")
    verb, _, argument = line.partition(b" ")
    return verb.upper(), argument.strip(b" ")


# --- hosts ---------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Loopback by its spelling alone (no DNS: asking DNS would already leave the machine).

    127.0.0.0/8 and ::1, bracketed or not, "localhost" and any name under it (RFC 6761
    §6.3), each with or without the trailing dot of a fully qualified name.
    """
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_port(host: str, port: int) -> str:
    """`127.0.0.1:2525`, `[::1]:2525`: an IPv6 address in brackets, as `ss` or a log writes it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def address_literal(host: str) -> str:
    """An IP address as it stands in brackets (RFC 5321 §4.1.3): 127.0.0.1 or IPv6:::1."""
    return f"IPv6:{host}" if ":" in host else host
