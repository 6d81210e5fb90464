"""The teaching server held against a real Postfix, live.

Every sequence of tests/data/postfix-corpus.toml is played over a raw socket against a
private Postfix (tests/postfix_server.py, configured like the persona) and against the
teaching server. For each reply compared, the class (first digit) and the enhanced status
code must agree (the class only for the greeting, HELO and EHLO: RFC 2034 gives those no
enhanced code), or the difference must be listed in docs/server.md under "Where the
teaching server differs from Postfix, and why". A listed difference that no longer occurs
fails too, so the list stays true; sequences marked must_agree cannot be listed at all.
"""

from __future__ import annotations

import re
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.postfix_server import PostfixServer, postfix_server, postfix_version
from tests.support import RawClient

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "postfix-corpus.toml"
SERVER_DOC = ROOT / "docs" / "server.md"
DOC_HEADING = "## Where the teaching server differs from Postfix, and why"
CATEGORIES = (
    "greetings",
    "helo",
    "syntax",
    "unknown-verbs",
    "parameters",
    "recipients-unknown",
    "recipients-relay",
    "recipients-valid",
    "data-order",
    "vrfy-expn",
    "rset-noop",
    "auth-before-tls",
    "pipelining",
    "limits",
)
# These must agree with Postfix and can never be documented away, with the
# enhanced code each must carry (None: any, as long as both agree).
MUST_AGREE = {
    "auth-plain-before-tls": "5.5.1",  # AUTH before TLS
    "auth-login-before-tls": "5.5.1",
    "auth-unknown-mechanism-before-tls": "5.5.1",
    "mail-unknown-parameter": "5.5.4",  # an unsupported parameter
    "rcpt-unknown-parameter": "5.5.4",
    "mail-priority-parameter-not-offered": "5.5.4",
    "vrfy-local-user": "2.0.0",  # VRFY of a local user
    "vrfy-local-part-after-helo": "2.0.0",
    "expn-a-list": None,  # EXPN
    "expn-without-argument": None,
    "relay-to-other-domain": "5.7.1",  # a relay attempt
    "relay-with-a-local-sender": "5.7.1",
    "relay-to-address-literal": "5.7.1",
    "unknown-user": "5.1.1",  # an unknown local user
    "unknown-user-from-null-sender": "5.1.1",
    "mail-before-helo": "5.5.1",  # sequence errors
    "rcpt-before-mail": "5.5.1",
    "data-before-mail": "5.5.1",
    "data-before-rcpt": "5.5.1",
    "nested-mail": "5.5.1",
}
CLASS_ONLY = ("(connect)", "HELO", "EHLO")  # RFC 2034 §3: no enhanced code on these
TEXT_LINE = 998  # octets of message text per line for {bulk = N}

pytestmark = pytest.mark.slow
__all__ = ["postfix_server"]  # the fixture, imported so that this module can use it


def load_corpus() -> list[dict[str, Any]]:
    sequences: list[dict[str, Any]] = tomllib.loads(CORPUS.read_text("utf-8"))["sequence"]
    return sequences


SEQUENCES = load_corpus()


# --- playing a sequence ------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    command: str  # the line it answers; "(connect)" for the greeting
    code: str  # "250", or "(closed)" / "(no reply)"
    enhanced: str | None  # "2.1.5", or None when the reply carries none
    text: str  # the first line, for messages

    def key(self) -> tuple[str, str | None]:
        """What must agree: the class, and the enhanced code unless RFC 2034 exempts it."""
        verb = self.command.split(" ", 1)[0].upper()
        if self.command in CLASS_ONLY or verb in CLASS_ONLY:
            return (self.code[:1], None)
        return (self.code[:1], self.enhanced)


def parse_reply(command: str, lines: list[str]) -> Reply:
    first = lines[0]
    match = re.match(r"(\d\.\d{1,3}\.\d{1,3})(?: |$)", first[4:])
    return Reply(command, first[:3], match.group(1) if match else None, first)


def expand_lines(item: str | list[Any] | dict[str, Any]) -> list[str]:
    if isinstance(item, str):
        return [item]
    if isinstance(item, list):
        return [line for part in item for line in expand_lines(part)]
    line = str(item["line"])
    if "length" in item:
        line = line + "x" * (int(item["length"]) - len(line))
    return [line] * int(item.get("times", 1))


@dataclass(frozen=True)
class Write:
    """One write of the client: lines (CRLF added), or `bulk` octets of message text."""

    lines: list[str]
    bulk: int = 0
    only_text: bool = False  # message text after a DATA: held back if DATA is refused


def writes_of(sequence: dict[str, Any]) -> list[Write]:
    """The corpus's `send`, with each line marked as message text or not. A message is what
    follows a DATA up to the lone dot, when a lone dot comes before the next DATA."""
    items = sequence["send"]
    flat = [
        line
        for item in items
        if not isinstance(item, dict) or "bulk" not in item
        for line in expand_lines(item)
    ]
    text_lines: set[int] = set()  # positions in `flat`
    for position, line in enumerate(flat):
        if line.upper() != "DATA":
            continue
        rest = flat[position + 1 :]
        dots = [i for i, later in enumerate(rest) if later == "."]
        datas = [i for i, later in enumerate(rest) if later.upper() == "DATA"]
        if dots and (not datas or dots[0] < datas[0]):
            text_lines.update(range(position + 1, position + 2 + dots[0]))
    writes, position = [], 0
    for item in items:
        if isinstance(item, dict) and "bulk" in item:
            writes.append(Write([], int(item["bulk"]), only_text=True))
            continue
        lines = expand_lines(item)
        marks = range(position, position + len(lines))
        writes.append(Write(lines, only_text=all(i in text_lines for i in marks)))
        position += len(lines)
    return writes


def bulk_text(octets: int) -> bytes:
    line = b"x" * TEXT_LINE + b"\r\n"
    return line * (octets // len(line) + 1)


class Session:
    """Plays one sequence, reading replies as the protocol says (one per command, none for
    message text after a 354, one for the lone dot), as a careful client would: message
    text is held back when DATA was refused, and nothing is sent after a 421 or a close."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.client = RawClient(address)
        self.replies = [parse_reply("(connect)", self.client.greeting)]
        self.in_data = False  # the server said 354: lines are message text until "."
        self.closed = False

    def play(self, writes: list[Write]) -> list[Reply]:
        try:
            for write in writes:
                if self.closed:
                    break
                if write.only_text and not self.in_data:
                    continue  # DATA was refused: the message is not sent
                self.write(write)
        finally:
            self.client.close()
        return self.replies

    def write(self, write: Write) -> None:
        if write.bulk:
            data = bulk_text(write.bulk)
        else:
            data = b"".join(line.encode("utf-8") + b"\r\n" for line in write.lines)
        try:
            self.client.send_raw(data)
        except OSError:  # the server has gone: what was sent so far is the transcript
            self.closed = True
            return
        for line in write.lines:
            if self.in_data:
                if line == ".":
                    self.in_data = False
                    self.read(line)
                continue
            reply = self.read(line)
            if reply is None:
                return
            if line.upper() == "DATA":
                self.in_data = reply.code == "354"

    def read(self, command: str) -> Reply | None:
        try:
            reply = parse_reply(command, self.client.reply())
        except ConnectionError:
            reply = Reply(command, "(closed)", None, "")
        except TimeoutError:
            reply = Reply(command, "(no reply)", None, "")
        self.replies.append(reply)
        self.closed = reply.code in ("421", "521", "(closed)", "(no reply)") or (
            reply.code == "221" and command.upper().startswith("QUIT")
        )
        return None if self.closed else reply


def play(address: tuple[str, int], sequence: dict[str, Any]) -> list[Reply]:
    return Session(address).play(writes_of(sequence))


# --- the documented differences ----------------------------------------------------------


@dataclass(frozen=True)
class Documented:
    sequence: str
    command: str
    postfix: tuple[str, str | None]
    ours: tuple[str, str | None]


def code_of(cell: str) -> tuple[str, str | None]:
    match = re.search(r"(\d{3}|\(closed\)|\(no reply\))(?: (\d\.\d{1,3}\.\d{1,3}))?", cell)
    assert match, f"no reply code in {cell!r}"
    return (match.group(1), match.group(2))


def documented_differences() -> list[Documented]:
    """The rows of the table under DOC_HEADING in docs/server.md."""
    text = SERVER_DOC.read_text("utf-8")
    assert DOC_HEADING in text, f"docs/server.md lacks the heading {DOC_HEADING!r}"
    section = text.split(DOC_HEADING, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    found = []
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert len(cells) == 6, f"a row needs 6 cells: {row}"
        found.append(
            Documented(
                cells[0].strip("`"), cells[1].strip("`"), code_of(cells[2]), code_of(cells[3])
            )
        )
    return found


def full_key(reply: Reply) -> tuple[str, str | None]:
    return (reply.code, reply.enhanced)


@dataclass(frozen=True)
class Difference:
    number: int  # 0 = the greeting
    command: str
    postfix: Reply
    ours: Reply

    def __str__(self) -> str:
        postfix = self.postfix.text or self.postfix.code
        ours = self.ours.text or self.ours.code
        return f"reply {self.number} to `{self.command}`: Postfix `{postfix}`, ours `{ours}`"


def differences(
    theirs: list[Reply], ours: list[Reply], compare: list[int] | None
) -> list[Difference]:
    """Each compared reply whose class or enhanced code differs."""
    missing = Reply("(nothing)", "(no reply)", None, "")
    found = []
    for number in range(max(len(theirs), len(ours))):
        if compare is not None and number not in compare:
            continue
        postfix = theirs[number] if number < len(theirs) else missing
        teaching = ours[number] if number < len(ours) else missing
        if postfix.key() != teaching.key():
            command = postfix.command if postfix is not missing else teaching.command
            found.append(Difference(number, command, postfix, teaching))
    return found


def same_command(documented: str, sent: str) -> bool:
    """A documented command ending in "…" stands for every line it begins (a long line)."""
    if documented.endswith("…"):
        return sent.startswith(documented[:-1])
    return documented == sent


def explained(found: list[Difference], name: str) -> tuple[list[Difference], list[Documented]]:
    """The differences no row of the doc covers, and the doc's rows that covered none."""
    rows = [row for row in documented_differences() if row.sequence == name]
    used: set[Documented] = set()
    unexplained = []
    for difference in found:
        match = [
            row
            for row in rows
            if same_command(row.command, difference.command)
            and row.postfix == full_key(difference.postfix)
            and row.ours == full_key(difference.ours)
        ]
        used.update(match)
        if not match:
            unexplained.append(difference)
    return unexplained, [row for row in rows if row not in used]


# --- the tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("sequence", SEQUENCES, ids=[s["name"] for s in SEQUENCES])
def test_the_teaching_server_answers_like_postfix(
    sequence: dict[str, Any], postfix_server: PostfixServer, start_server: Any
) -> None:
    ours_server = start_server()
    theirs = play(postfix_server.address, sequence)
    ours = play(ours_server.address, sequence)
    transcript = "\n".join(
        f"  {p.command!r}: Postfix {p.text!r} | ours {o.text!r}"
        for p, o in zip(theirs, ours, strict=False)
    )
    compare = sequence.get("compare")
    for command, enhanced in sequence.get("expect", {}).items():
        for side, replies in (("Postfix", theirs), ("ours", ours)):
            answers = [r.enhanced for r in replies if r.command == command]
            assert answers and all(a == enhanced for a in answers), (
                f"{side} answered {command!r} with {answers}, expected {enhanced}\n{transcript}"
            )
    found = differences(theirs, ours, compare)
    if sequence.get("must_agree"):
        assert not found, (
            "these replies must agree with Postfix (they cannot be documented away):\n"
            + "\n".join(map(str, found))
            + f"\n{transcript}"
        )
    unexplained, stale = explained(found, sequence["name"])
    assert not unexplained, (
        f"differences not listed in docs/server.md ({DOC_HEADING[3:]}):\n"
        + "\n".join(map(str, unexplained))
        + f"\n{transcript}"
    )
    assert not stale, f"docs/server.md lists differences that no longer occur: {stale}"


def normalised(sequence: dict[str, Any]) -> str:
    """The sequence with every address made the same, to find near-duplicates."""
    text = repr(sequence["send"])
    text = re.sub(r"<[^<>]*>", "<ADDRESS>", text)
    text = re.sub(r"[^\s<>'\",\[\]]+@[^\s<>'\",]+", "ADDRESS", text)
    return re.sub(r"(?i)\b(VRFY|EXPN) [^'\"]+", r"\1 ADDRESS", text)


def test_the_corpus_is_large_varied_and_without_near_duplicates() -> None:
    names = [s["name"] for s in SEQUENCES]
    assert len(SEQUENCES) >= 60
    assert len(set(names)) == len(names), "sequence names must be unique"
    categories = Counter(s["category"] for s in SEQUENCES)
    assert set(categories) == set(CATEGORIES), set(categories) ^ set(CATEGORIES)
    assert min(categories.values()) >= 4, categories
    shapes = Counter(normalised(s) for s in SEQUENCES)
    twins = [
        [s["name"] for s in SEQUENCES if normalised(s) == shape] for shape, n in shapes.items()
    ]
    assert all(len(group) == 1 for group in twins), [g for g in twins if len(g) > 1]


def test_the_mandatory_agreements_stay_mandatory() -> None:
    """Nobody can document these away by editing the corpus either."""
    by_name = {s["name"]: s for s in SEQUENCES}
    for name, enhanced in MUST_AGREE.items():
        assert by_name[name].get("must_agree") is True, name
        if enhanced is not None:
            assert enhanced in by_name[name].get("expect", {}).values(), name
    for category in ("auth-before-tls", "recipients-unknown", "recipients-relay", "data-order"):
        sequences = [s for s in SEQUENCES if s["category"] == category]
        assert sum(bool(s.get("must_agree")) for s in sequences) >= 4, category


def test_the_reference_postfix_delivers_to_its_maildirs(postfix_server: PostfixServer) -> None:
    """The instance is a working MTA, not only a reply generator: a message to a persona
    mailbox reaches that mailbox's Maildir."""
    sequence = next(s for s in SEQUENCES if s["name"] == "valid-full-message")
    replies = play(postfix_server.address, sequence)
    assert replies[-2].code == "250", replies

    def arrived() -> bool:  # other sequences deliver to `you` too
        texts = (path.read_bytes() for path in postfix_server.delivered("you"))
        return any(b"Hello from the differential test." in text for text in texts)

    deadline = time.monotonic() + 60
    while not arrived() and time.monotonic() < deadline:
        time.sleep(0.1)  # polling for the queue manager's delivery, which is asynchronous
    assert arrived(), postfix_server.log()


def test_the_documented_differences_name_real_sequences_that_may_differ() -> None:
    by_name = {s["name"]: s for s in SEQUENCES}
    rows = documented_differences()
    for row in rows:
        assert row.sequence in by_name, f"docs/server.md names an unknown sequence {row.sequence}"
        assert not by_name[row.sequence].get("must_agree"), (
            f"{row.sequence} must agree with Postfix; it cannot be documented as a difference"
        )
    assert len(set(rows)) == len(rows), "a difference is listed twice"


def test_the_doc_records_the_postfix_version_compared_against() -> None:
    text = SERVER_DOC.read_text("utf-8").split(DOC_HEADING, 1)[1]
    assert f"Postfix {postfix_version()}" in text
