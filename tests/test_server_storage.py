"""Where accepted mail ends up, and what the server adds to it (docs/server.md, Storage).

One Maildir per local mailbox, one copy per accepted recipient, trace headers on top
of each copy (Return-Path, Received with RFC 3848 protocol names, Delivered-To),
captured relay mail in its own folder, and real DSNs (RFC 3464) for relayed mail that
cannot be delivered. Everything is read back from the files, as a mail reader would.
"""

from __future__ import annotations

import base64
import email
import email.utils
import mailbox
import queue
import re
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from tests.support import RawClient
from tutor.server.persona import DEMO_ACCOUNTS, Persona
from tutor.server.runner import TeachingServer
from tutor.smtp.events import BounceSent, Event, MessageStored

WAIT = 5.0
SEED = (
    b"From: Bugs Bunny\r\n"
    b"To: Daffy Duck\r\n"
    b"Subject: What's up, doc?\r\n"
    b"\r\n"
    b"The envelope decides where this goes; these headers are just text.\r\n"
)
LOCAL_FOLDERS = ("you", "alice", "bob", "postmaster")


# --- helpers ------------------------------------------------------------------------------------


def send(
    server: TeachingServer,
    sender: str,
    recipients: list[str],
    message: bytes = SEED,
    *,
    greeting: str = "EHLO",
    tls: bool = False,
    auth: bool = False,
) -> str:
    """One complete transaction over a socket; returns the queue id from the 250 reply."""
    with RawClient(server.address) as client:
        assert client.code(f"{greeting} client.example").startswith("250 ")
        if tls:
            assert client.code("STARTTLS").startswith("220 2.0.0")
            client.starttls()
            assert client.code(f"{greeting} client.example").startswith("250 ")
        if auth:
            token = base64.b64encode(f"\0you\0{DEMO_ACCOUNTS['you']}".encode()).decode()
            assert client.code(f"AUTH PLAIN {token}").startswith("235 2.7.0")
        assert client.code(f"MAIL FROM:<{sender}>").startswith("250 2.1.0")
        for recipient in recipients:
            assert client.code(f"RCPT TO:<{recipient}>").startswith("250 2.1.5"), recipient
        assert client.code("DATA").startswith("354 ")
        final = client.code(message + b".")
        assert client.code("QUIT").startswith("221 ")
    match = re.fullmatch(r"250 2\.0\.0 OK id=(\S+)", final)
    assert match, final
    return match.group(1)


def files_in(server: TeachingServer, folder: str) -> list[Path]:
    return sorted((server.maildir / folder).glob("new/*"))


def only_file(server: TeachingServer, folder: str) -> bytes:
    (path,) = files_in(server, folder)
    return path.read_bytes()


def header_fields(raw: bytes) -> list[tuple[str, str]]:
    """The header section in order, each field unfolded: [(name, value), ...]."""
    head = raw.decode("utf-8").split("\n\n", 1)[0]
    fields: list[tuple[str, str]] = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t"):
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip()}")
        else:
            name, _, value = line.partition(":")
            fields.append((name, value.strip()))
    return fields


def next_event(server: TeachingServer, kind: type[Event]) -> Any:
    """The next event of a kind from the capture's queue (blocks, with a timeout)."""
    while True:
        try:
            event = server.capture.events.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail(f"no {kind.__name__} event within {WAIT}s")
        if isinstance(event, kind):
            return event


def stored_event(server: TeachingServer, queue_id: str) -> MessageStored:
    event: MessageStored = next_event(server, MessageStored)
    while event.queue_id != queue_id:
        event = next_event(server, MessageStored)
    return event


# --- the seed's forged message ----------------------------------------------------------------


def test_forged_seed_message_is_stored_with_trace_headers_on_top(server: TeachingServer) -> None:
    sender = "bugs@looney.example"
    queue_id = send(server, sender, ["you@tutor.test"], greeting="HELO")

    raw = only_file(server, "you")
    fields = header_fields(raw)
    names = [name for name, _ in fields]
    assert names == [
        "Return-Path",
        "Received",
        "Authentication-Results",
        "Delivered-To",
        "From",
        "To",
        "Subject",
    ]

    assert fields[0] == ("Return-Path", f"<{sender}>")
    received = fields[1][1]
    assert received.startswith("from client.example ([127.0.0.1])")
    assert f"(envelope-from <{sender}>)" in received
    assert f"by mx.tutor.test with SMTP id {queue_id}" in received
    assert "for <you@tutor.test>;" in received
    date = received.rsplit(";", 1)[1].strip()
    assert email.utils.parsedate_to_datetime(date).tzinfo is not None
    assert fields[2] == (
        "Authentication-Results",
        "mx.tutor.test; spf=none smtp.mailfrom=looney.example; dmarc=none (simulated DNS)",
    )
    assert fields[3] == ("Delivered-To", "you@tutor.test")

    # Below the trace headers: the message exactly as sent (Maildir keeps LF endings).
    assert raw.endswith(SEED.replace(b"\r\n", b"\n"))
    assert b"\r\n" not in raw


def test_trace_headers_typed_by_the_client_are_kept_below_ours(server: TeachingServer) -> None:
    forged = b"Received: from trusted.example by mx.bank.example; Mon, 1 Jan 2024 08:00 +0000\r\n"
    send(server, "bugs@looney.example", ["you@tutor.test"], forged + SEED)
    names = [name for name, _ in header_fields(only_file(server, "you"))]
    assert names[:5] == [
        "Return-Path",
        "Received",
        "Authentication-Results",
        "Delivered-To",
        "Received",
    ]
    assert "from trusted.example" in header_fields(only_file(server, "you"))[4][1]


@pytest.mark.parametrize(
    ("sender", "header_from", "verdict"),
    [
        (
            "you@tutor.test",
            "you@tutor.test",
            "spf=pass smtp.mailfrom=tutor.test; dmarc=pass (p=reject) header.from=tutor.test",
        ),
        (
            "victim@innocent.example",
            "Victim <victim@innocent.example>",
            "spf=fail smtp.mailfrom=innocent.example; dmarc=fail (p=reject) "
            "header.from=innocent.example policy.dmarc=reject",
        ),
        (
            "you@tutor.test",
            "boss@innocent.example",
            "spf=pass smtp.mailfrom=tutor.test; "
            "dmarc=fail (p=reject) header.from=innocent.example policy.dmarc=reject",
        ),
    ],
)
def test_spf_and_dmarc_verdicts_from_the_simulated_dns(
    server: TeachingServer, sender: str, header_from: str, verdict: str
) -> None:
    message = f"From: {header_from}\r\nTo: you@tutor.test\r\nSubject: checks\r\n\r\nhi\r\n".encode()
    send(server, sender, ["you@tutor.test"], message)
    fields = dict(header_fields(only_file(server, "you")))
    assert fields["Authentication-Results"] == f"mx.tutor.test; {verdict} (simulated DNS)"


def test_null_sender_gets_an_empty_return_path(server: TeachingServer) -> None:
    send(server, "", ["postmaster"])
    fields = dict(header_fields(only_file(server, "postmaster")))
    assert fields["Return-Path"] == "<>"
    assert "(envelope-from <>)" in fields["Received"]
    assert "for <postmaster>;" in fields["Received"]


# --- one copy per recipient -----------------------------------------------------------------------


def test_each_local_recipient_gets_its_own_copy(server: TeachingServer) -> None:
    send(server, "bugs@looney.example", ["you@tutor.test", "alice@tutor.test"])
    for mailbox_name, other in (("you", "alice"), ("alice", "you")):
        raw = only_file(server, mailbox_name)
        fields = dict(header_fields(raw))
        assert f"for <{mailbox_name}@tutor.test>;" in fields["Received"]
        assert fields["Delivered-To"] == f"{mailbox_name}@tutor.test"
        assert f"{other}@tutor.test".encode() not in raw, "one recipient per copy: no Bcc leak"
    assert files_in(server, "bob") == []


@pytest.mark.parametrize(
    "recipients",
    [
        ["you@tutor.test", "you@tutor.test"],
        ["you@tutor.test", "YOU@Tutor.Test"],
        ["you@tutor.test", "you@mx.tutor.test"],
    ],
    ids=["same-address", "other-case", "host-name-domain"],
)
def test_same_mailbox_twice_gets_one_copy(server: TeachingServer, recipients: list[str]) -> None:
    send(server, "bugs@looney.example", recipients)
    assert len(files_in(server, "you")) == 1


# --- protocol names (RFC 3848) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("greeting", "tls", "auth", "protocol"),
    [
        ("HELO", False, False, "SMTP"),
        ("EHLO", False, False, "ESMTP"),
        ("EHLO", True, False, "ESMTPS"),
        ("EHLO", True, True, "ESMTPSA"),
    ],
)
def test_received_names_the_protocol(
    server: TeachingServer, greeting: str, tls: bool, auth: bool, protocol: str
) -> None:
    queue_id = send(
        server, "you@tutor.test", ["alice@tutor.test"], greeting=greeting, tls=tls, auth=auth
    )
    received = dict(header_fields(only_file(server, "alice")))["Received"]
    assert f" with {protocol} id {queue_id}" in received


# --- the capture agrees with the files ------------------------------------------------------------


def test_message_stored_event_matches_the_files(server: TeachingServer) -> None:
    queue_id = send(server, "bugs@looney.example", ["you@tutor.test", "bob@tutor.test"])
    event = stored_event(server, queue_id)

    assert event.sender == "bugs@looney.example"
    assert event.recipients == ("you@tutor.test", "bob@tutor.test")
    assert event.header_from == "Bugs Bunny"
    assert event.header_to == "Daffy Duck"
    assert event.subject == "What's up, doc?"
    assert event.size == len(SEED)
    assert sorted(c.folder for c in event.copies) == ["bob", "you"]
    for copy in event.copies:
        path = server.maildir / copy.folder / "new" / copy.key
        assert path.is_file(), path
        assert dict(header_fields(path.read_bytes()))["Delivered-To"] == copy.recipient
        assert [p.name for p in files_in(server, copy.folder)] == [copy.key]


# --- relay and bounces ----------------------------------------------------------------------------


def test_open_relay_mail_is_captured_not_sent(start_server: Any) -> None:
    server = start_server(Persona(open_relay=True))
    send(server, "bugs@looney.example", ["x@example.test"])
    raw = only_file(server, "captured-relay")
    assert dict(header_fields(raw))["Delivered-To"] == "x@example.test"
    for folder in LOCAL_FOLDERS:
        assert files_in(server, folder) == []


def dsn_recipient_fields(message: Message) -> Message:
    """The per-recipient block (the one with Status:) of the message/delivery-status part."""
    status_part = next(
        part for part in message.walk() if part.get_content_type() == "message/delivery-status"
    )
    blocks = status_part.get_payload()
    assert isinstance(blocks, list)
    return next(b for b in blocks if isinstance(b, Message) and b.get("Status"))


def test_relay_to_a_domain_that_does_not_exist_bounces_to_the_envelope_sender(
    start_server: Any,
) -> None:
    server = start_server(Persona(open_relay=True))
    headers_say = SEED.replace(b"From: Bugs Bunny", b"From: Bugs Bunny <bugs@looney.example>")
    queue_id = send(server, "you@tutor.test", ["someone@nowhere.invalid"], headers_say)

    bounce: BounceSent = next_event(server, BounceSent)
    assert bounce.original_queue_id == queue_id
    assert bounce.to == "you@tutor.test"
    assert bounce.failed == ("someone@nowhere.invalid",)
    assert bounce.status == "5.1.2"
    assert bounce.copy is not None and bounce.copy.folder == "you"

    assert len(files_in(server, "captured-relay")) == 1, "the relayed copy was captured"
    raw = only_file(server, "you")
    fields = dict(header_fields(raw))
    assert fields["Return-Path"] == "<>"
    assert fields["Delivered-To"] == "you@tutor.test"

    dsn = email.message_from_bytes(raw)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    recipient = dsn_recipient_fields(dsn)
    assert recipient["Status"] == "5.1.2"
    assert recipient["Final-Recipient"] == "rfc822; someone@nowhere.invalid"
    assert recipient["Action"] == "failed"
    assert b"Status: 5.1.2" in raw
    assert b"Final-Recipient: rfc822; someone@nowhere.invalid" in raw
    assert b"bugs@looney.example" not in raw.split(b"\n\n", 1)[0], "never to the From: header"


def test_failing_message_from_the_null_sender_is_dropped_not_bounced(start_server: Any) -> None:
    server = start_server(Persona(open_relay=True))
    queue_id = send(server, "", ["someone@nowhere.invalid"])

    bounce: BounceSent = next_event(server, BounceSent)
    assert bounce.original_queue_id == queue_id
    assert bounce.copy is None
    assert bounce.failed == ("someone@nowhere.invalid",)
    for folder in LOCAL_FOLDERS:
        assert files_in(server, folder) == [], f"nothing may be stored in {folder}"
    assert len(files_in(server, "captured-relay")) == 1


# --- any mail reader can open the folders ------------------------------------------------------


def test_every_mailbox_is_a_maildir_before_mail_arrives(server: TeachingServer) -> None:
    for folder in LOCAL_FOLDERS:
        for sub in ("cur", "new", "tmp"):
            assert (server.maildir / folder / sub).is_dir(), f"{folder}/{sub}"


def test_messages_are_readable_with_stdlib_mailbox(start_server: Any) -> None:
    server = start_server(Persona(open_relay=True))
    send(server, "bugs@looney.example", ["you@tutor.test", "alice@tutor.test", "x@example.test"])
    duck_season = SEED.replace(b"What's up", b"Duck season")
    send(server, "daffy@looney.example", ["you@tutor.test"], duck_season)

    expected = {"you": 2, "alice": 1, "bob": 0, "postmaster": 0, "captured-relay": 1}
    for folder, count in expected.items():
        box = mailbox.Maildir(server.maildir / folder, factory=None, create=False)
        messages = list(box)
        assert len(messages) == count, folder
        for message in messages:
            assert message["From"] == "Bugs Bunny"
            if folder == "captured-relay":  # relayed, not delivered: RFC 5321 §4.4
                assert message["Return-Path"] is None
                assert "(envelope-from <bugs@looney.example>)" in message["Received"]
            else:
                senders = ("<bugs@looney.example>", "<daffy@looney.example>")
                assert message["Return-Path"] in senders
            assert message["Delivered-To"].endswith(("@tutor.test", "@example.test"))
    subjects = sorted(m["Subject"] for m in mailbox.Maildir(server.maildir / "you", create=False))
    assert subjects == ["Duck season, doc?", "What's up, doc?"]
