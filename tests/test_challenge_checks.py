"""The check kinds added for challenges, judged on hand-made event sequences."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tutor.engine.checks import CHECK_KINDS, Verdict, evaluate, helo_claim_problem
from tutor.engine.model import CHECK_NAMES
from tutor.smtp.events import BounceSent, Copy, Event, Exchange, MessageStored

DOCS = Path(__file__).resolve().parent.parent / "docs" / "lessons.md"


def message(
    *folders: str,
    to: str = "bob@tutor.test",
    cc: str = "",
    helo: str = "mail.innocent.example",
    client: str = "127.0.0.1",
    queue_id: str = "Q1",
) -> MessageStored:
    copies = tuple(Copy(f, f"key-{f}", f"{f}@tutor.test") for f in folders)
    return MessageStored(
        1,
        queue_id,
        "you@tutor.test",
        tuple(c.recipient for c in copies),
        copies,
        "you@tutor.test",
        to,
        cc,
        "subject",
        100,
        client_address=client,
        helo=helo,
    )


def command(line: str, reply: str) -> Exchange:
    return Exchange(1, "command", line.encode() + b"\r\n", (reply,))


def data(queue_id: str = "Q1") -> Exchange:
    return Exchange(1, "data", b"Subject: x\r\n\r\nhi\r\n.\r\n", (f"250 2.0.0 OK id={queue_id}",))


def check(kind: str, value: object, events: list[Event]) -> Verdict:
    return evaluate(kind, value, events)


def test_last_stored_in_looks_at_the_last_message_only() -> None:
    events: list[Event] = [message("alice", queue_id="Q1"), message("bob", queue_id="Q2")]
    assert check("stored_in", "alice", events).ok  # any message of the step
    verdict = check("last_stored_in", "alice", events)
    assert not verdict.ok
    assert verdict.why == "the last message should reach alice's mailbox (it went to bob)"
    assert check("last_stored_in", "bob", events).ok
    assert check("last_stored_in", "bob", []).why == "no message has reached bob's mailbox yet"


@pytest.mark.parametrize(
    ("to", "ok"),
    [
        ("bob@tutor.test", True),
        ("Bob <BOB@tutor.test>", True),
        ("bob@tutor.test, bob@tutor.test", True),
        ("bob@tutor.test, carol@tutor.test", False),
        ("Bob", False),
        ("", False),
    ],
)
def test_to_only(to: str, ok: bool) -> None:
    verdict = check("to_only", "bob@tutor.test", [message("alice", to=to)])
    assert verdict.ok is ok
    if to == "Bob":
        assert verdict.why == "To: should name only bob@tutor.test (it names no address)"


def test_refused_alongside_counts_only_the_delivered_messages_transaction() -> None:
    before: list[Event] = [
        command("helo a.b.c", "250 mx.tutor.test Hello"),
        command("mail from:<you@tutor.test>", "250 2.1.0 ok"),
        command("rcpt to:<carol@tutor.test>", "550 5.1.1 no such mailbox"),
        command("rset", "250 2.0.0 OK"),
        command("mail from:<you@tutor.test>", "250 2.1.0 ok"),
        command("rcpt to:<alice@tutor.test>", "250 2.1.5 ok"),
        command("rcpt to:<bob@tutor.test>", "250 2.1.5 ok"),
    ]
    tail: list[Event] = [command("data", "354 go ahead"), data(), message("alice", "bob")]
    events = before + tail
    assert check("recipients_refused", 1, events).ok  # anywhere in the step
    verdict = check("refused_alongside", 1, events)
    assert not verdict.ok and "(in its own transaction; 0 were)" in verdict.why
    greylisted = command("rcpt to:<you@tutor.test>", "451 4.7.1 greylisted")
    assert check("refused_alongside", 1, [*before, greylisted, *tail]).ok
    assert not check("refused_alongside", 2, [*before, greylisted, *tail]).ok
    assert check("refused_alongside", 1, before).why == "no message stored yet"


def bounce(to: str, *, dropped: bool = False) -> BounceSent:
    copy = None if dropped else Copy("captured-relay", "k", to)
    return BounceSent(1, "B1", "Q1", to, ("nobody@nowhere.invalid",), "5.1.2", copy)


def test_bounce_not_to() -> None:
    mine = check("bounce_not_to", "you@tutor.test", [bounce("YOU@tutor.test")])
    assert not mine.ok
    assert mine.why == (
        "a bounce should go to someone other than you@tutor.test (it went to YOU@tutor.test)"
    )
    assert check("bounce_not_to", "you@tutor.test", [bounce("victim@innocent.example")]).ok
    dropped = check("bounce_not_to", "you@tutor.test", [bounce("", dropped=True)])
    assert not dropped.ok and "the sender was <>" in dropped.why
    assert check("bounce_not_to", "you@tutor.test", []).why.startswith("no bounce has been sent")


@pytest.mark.parametrize(
    ("helo", "client", "problem"),
    [
        ("mail.innocent.example", "127.0.0.1", ""),
        ("MAIL.Innocent.Example.", "::1", ""),
        ("a.b.c", "127.0.0.1", ""),
        ("localhost", "127.0.0.1", "localhost is this machine's own name"),
        ("pc.localhost", "127.0.0.1", "pc.localhost is this machine's own name"),
        ("[127.0.0.1]", "127.0.0.1", "[127.0.0.1] is an address literal"),
        ("bankserver", "127.0.0.1", "bankserver is not a full domain name"),
        ("mx.tutor.test", "127.0.0.1", "mx.tutor.test points at 127.0.0.1 in the simulated DNS"),
        ("mx.tutor.test", "127.0.0.2", ""),
        ("", "127.0.0.1", "the message has no HELO name"),
    ],
)
def test_helo_claim_problem(helo: str, client: str, problem: str) -> None:
    found = helo_claim_problem(helo, client)
    assert found.startswith(problem) if problem else found == ""


def test_helo_claims_the_machines_own_name_is_not_a_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "Box.Home.example")
    problem = helo_claim_problem("box.home.example", "127.0.0.1")
    assert problem == "box.home.example is this machine's own host name"
    assert helo_claim_problem("other.home.example", "127.0.0.1") == ""


def test_helo_claims_check() -> None:
    forged = [message("you", helo="mail.innocent.example")]
    honest = [message("you", helo="localhost")]
    assert check("helo_claims", True, forged).ok
    verdict = check("helo_claims", True, honest)
    assert not verdict.ok
    assert verdict.why == (
        "the Received: line should name a host not yours: localhost is this machine's own name"
    )
    assert check("helo_claims", "innocent.example", forged).ok
    narrowed = check("helo_claims", "bank.example", forged)
    assert not narrowed.ok and "should be a host in bank.example" in narrowed.why
    assert check("helo_claims", False, honest).ok
    assert not check("helo_claims", False, forged).ok
    assert check("helo_claims", True, []).why == "no message stored yet"


def test_every_check_kind_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("| check | value | holds when |")
    table = text[start : text.index("\n\n", start)]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE))
    assert documented == set(CHECK_KINDS), set(CHECK_KINDS) ^ documented


def test_every_check_kind_has_a_judge() -> None:
    """The loader accepts the CheckKind names; each needs its entry in CHECK_KINDS."""
    assert set(CHECK_NAMES) == set(CHECK_KINDS)
