"""Submission fix-ups (server/fixups.py, docs/server.md "Submission fix-ups"), on the real
server: a client that logged in gets its Bcc: lines removed and a missing Date: and
Message-ID: added, in the stored copies and in what the checks read; a client that did
not log in has its message stored as it came."""

from __future__ import annotations

import re
import smtplib
from pathlib import Path

import pytest

from tests.test_real_clients import (
    DEMO_PASSWORD,
    DEMO_USER,
    TIMEOUT,
    files_in,
    no_verify,
    wait_for_messages,
)
from tutor.engine.checks import CHECK_KINDS
from tutor.server.fixups import HEADER_LINES, header_lines, read_header_section
from tutor.server.runner import TeachingServer
from tutor.server.spool import SPOOL_THRESHOLD

BCC_MESSAGE = (
    b"From: You <you@tutor.test>\r\n"
    b"To: Alice <alice@tutor.test>\r\n"
    b"Bcc: Bob <bob@tutor.test>\r\n"
    b"Subject: Lunch\r\n"
    b"\r\n"
    b"Noon at the usual place.\r\n"
)


def send(server: TeachingServer, content: bytes, recipients: list[str], *, login: bool) -> None:
    with smtplib.SMTP(*server.address, timeout=TIMEOUT) as smtp:
        smtp.ehlo("client.example")
        if login:
            smtp.starttls(context=no_verify())
            smtp.ehlo("client.example")
            smtp.login(DEMO_USER, DEMO_PASSWORD)
        assert smtp.sendmail("you@tutor.test", recipients, content) == {}


def message_of(path: Path) -> bytes:
    """A stored copy without the trace fields the server prepends at delivery."""
    raw = path.read_bytes()
    start = raw.index(b"\nDelivered-To: ")
    return raw[raw.index(b"\n", start + 1) + 1 :]


def test_a_logged_in_client_loses_bcc_and_gains_date_and_message_id(
    server: TeachingServer,
) -> None:
    send(server, BCC_MESSAGE, ["alice@tutor.test", "bob@tutor.test"], login=True)
    (stored,) = wait_for_messages(server, 1)
    for folder in ("alice", "bob"):
        (path,) = files_in(server, folder)
        text = message_of(path).decode()
        assert "Bcc:" not in text and "bob@tutor.test" not in text.split("\n\n")[0]
        assert re.search(r"^Date: \w{3}, \d+ \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$", text, re.M)
        message_id = rf"^Message-ID: <\d{{14}}\.{stored.queue_id}@mx\.tutor\.test>$"
        assert re.search(message_id, text, re.M), text
        assert text.endswith("\n\nNoon at the usual place.\n"), "the body is unchanged"
    # what the checks read is what was stored
    events = [stored]
    assert CHECK_KINDS["header_lacks"](events, "Bcc").ok
    assert CHECK_KINDS["header_has"](events, "Message-ID").ok
    assert CHECK_KINDS["header_has"](events, f"Message-ID: {stored.queue_id}@").ok
    assert CHECK_KINDS["header_has"](events, "Subject: lunch").ok
    assert not CHECK_KINDS["header_has"](events, "Reply-To").ok
    assert stored.size == len(message_of(files_in(server, "alice")[0]).replace(b"\n", b"\r\n"))


def test_date_and_message_id_are_added_only_when_missing(server: TeachingServer) -> None:
    content = (
        b"From: you@tutor.test\r\n"
        b"date: Tue, 1 Dec 2026 09:00:00 +0100\r\n"
        b"Message-Id:\r\n <mine@client.example>\r\n"
        b"\r\n"
        b"Hi\r\n"
    )
    send(server, content, ["alice@tutor.test"], login=True)
    wait_for_messages(server, 1)
    (path,) = files_in(server, "alice")
    assert message_of(path) == content.replace(b"\r\n", b"\n"), "nothing to fix: as it came"


def test_a_client_that_did_not_log_in_is_stored_as_it_came(server: TeachingServer) -> None:
    send(server, BCC_MESSAGE, ["alice@tutor.test", "bob@tutor.test"], login=False)
    (stored,) = wait_for_messages(server, 1)
    (path,) = files_in(server, "alice")
    assert message_of(path) == BCC_MESSAGE.replace(b"\r\n", b"\n")
    assert CHECK_KINDS["header_has"]([stored], "Bcc: bob@tutor.test").ok
    assert not CHECK_KINDS["header_has"]([stored], "Date").ok


def test_hostile_bcc_fields_go_and_look_alikes_stay(server: TeachingServer) -> None:
    content = (
        b"From: you@tutor.test\r\n"
        b"BCC :\r\n\tcarol@tutor.test,\r\n bob@tutor.test\r\n"
        b"X-Bcc: kept@tutor.test\r\n"
        b"Resent-Bcc: bob@tutor.test\r\n"
        b"Bccx: kept\r\n"
        b"\r\n"
        b"Bcc: a body line, not a field\r\n"
    )
    send(server, content, ["alice@tutor.test"], login=True)
    wait_for_messages(server, 1)
    text = message_of(files_in(server, "alice")[0]).decode()
    header, body = text.split("\n\n", 1)
    assert "bob@" not in header and "carol@" not in header and "Resent-Bcc" not in header
    assert "X-Bcc: kept@tutor.test" in header and "Bccx: kept" in header
    assert body == "Bcc: a body line, not a field\n"


def test_a_message_with_no_header_section_gets_one(server: TeachingServer) -> None:
    send(server, b"Just a line of text\r\nand another\r\n", ["alice@tutor.test"], login=True)
    wait_for_messages(server, 1)
    text = message_of(files_in(server, "alice")[0]).decode()
    header, body = text.split("\n\n", 1)
    assert header.startswith("Date: ") and "\nMessage-ID: <" in header
    assert body == "Just a line of text\nand another\n"


@pytest.mark.slow
def test_a_message_spooled_to_a_file_keeps_its_body(server: TeachingServer) -> None:
    line = b"x" * 900 + b"\r\n"
    body = line * (SPOOL_THRESHOLD // len(line) + 20)
    send(server, b"Bcc: bob@tutor.test\r\n\r\n" + body, ["alice@tutor.test"], login=True)
    wait_for_messages(server, 1)
    stored = message_of(files_in(server, "alice")[0])
    header, _, rest = stored.partition(b"\n\n")
    assert b"Bcc" not in header and b"Message-ID: <" in header
    assert rest == body.replace(b"\r\n", b"\n")


def test_the_header_section_ends_where_the_fields_do() -> None:
    section = read_header_section(b"A: 1\r\n b\r\nB: 2\r\n\r\nbody\r\n", whole=True)
    assert section is not None and section.separated and section.end == 18
    assert [name for name, _ in section.fields] == [b"a", b"b"]
    assert read_header_section(b"A: 1\r\nB: 2", whole=False) is None, "cut: more follows"
    unseparated = read_header_section(b"A: 1\r\nplain text\r\n", whole=True)
    assert unseparated is not None and not unseparated.separated and unseparated.end == 6


def test_a_field_folded_over_a_million_octets_is_read_in_one_pass() -> None:
    # Built up line by line, this field would copy its text once per line: terabytes.
    head = b"X-Long: start\r\n" + b" x\r\n" * (SPOOL_THRESHOLD // 4) + b"\r\nbody\r\n"
    section = read_header_section(head, whole=True)
    assert section is not None and section.separated
    [(name, text)] = section.fields
    assert name == b"x-long" and len(text) == len(head) - len(b"\r\nbody\r\n")
    assert len(header_lines(head)) == HEADER_LINES
