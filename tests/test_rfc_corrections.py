"""The teaching server's replies corrected against the RFCs and a real Postfix.

Each correction is checked where it matters: the live reply on a raw socket, and, where a
lesson teaches it, the text the learner reads (`smtp-tutor learn N --script FILE --plain`).
The Postfix replies quoted in comments were read from Postfix 3.7.11 configured like the
persona (docs/server.md).
"""

from __future__ import annotations

import email
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support import RawClient, run_cli
from tutor.server.persona import Persona
from tutor.server.runner import TeachingServer
from tutor.smtp.wire import COMMAND_LINE_LIMIT

PLAIN_YOU = "AHlvdQB0dXRvci1wYXNzd29yZA=="  # base64 of \0you\0tutor-password


def greeted(server: TeachingServer, verb: str = "EHLO") -> RawClient:
    client = RawClient(server.address)
    assert client.code(f"{verb} client.example").startswith("250 ")
    return client


def learn(tmp_path: Path, lesson: str, *lines: str) -> str:
    script = tmp_path / f"lesson-{lesson}.txt"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli("learn", lesson, "--script", str(script), "--plain")
    return result.stdout


# --- 1. AUTH before STARTTLS: 503 5.5.1, never 538 ---------------------------------------------


def test_auth_is_not_advertised_before_tls(server: TeachingServer) -> None:
    with RawClient(server.address) as client:
        ehlo = client.cmd("EHLO client.example")
        assert not any(line[4:].startswith("AUTH") for line in ehlo), ehlo
        assert "250-STARTTLS" in ehlo


@pytest.mark.parametrize("mechanism", ["PLAIN " + PLAIN_YOU, "LOGIN", "CRAM-MD5"])
def test_auth_before_tls_is_503_5_5_1_for_any_mechanism(
    server: TeachingServer, mechanism: str
) -> None:
    # Postfix: 503 5.5.1 Error: authentication not enabled
    with greeted(server) as client:
        reply = client.code("AUTH " + mechanism)
        assert reply.startswith("503 5.5.1 "), reply
        assert "not enabled" in reply
        assert client.code("NOOP") == "250 2.0.0 OK", "the session goes on"


def test_auth_after_helo_is_503_5_5_1(server: TeachingServer) -> None:
    with greeted(server, "HELO") as client:
        assert client.code("AUTH PLAIN " + PLAIN_YOU).startswith("503 5.5.1 ")


def test_an_unknown_mechanism_under_tls_is_504_5_5_4(server: TeachingServer) -> None:
    with greeted(server) as client:
        assert client.code("STARTTLS").startswith("220 ")
        client.starttls()
        ehlo = client.cmd("EHLO client.example")
        assert "250-AUTH PLAIN LOGIN" in ehlo
        assert client.code("AUTH CRAM-MD5").startswith("504 5.5.4 ")


def test_no_reply_of_the_table_is_538() -> None:
    from tutor.server.replies import TABLE

    assert not [spec.key for spec in TABLE if spec.code == 538]


def test_lesson_11_shows_503_before_tls(tmp_path: Path) -> None:
    out = learn(tmp_path, "11", "ehlo client.example", f"auth plain {PLAIN_YOU}")
    assert "S: 503 5.5.1 Authentication not enabled" in out
    assert "S: 538" not in out


# --- 2. Unsupported parameters: 555 5.5.4 ------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "option"),
    [
        ("MAIL FROM:<you@tutor.test> FOO=bar", "FOO=bar"),  # Postfix: the same reply
        ("MAIL FROM:<you@tutor.test> foo", "foo"),
        ("MAIL FROM:<you@tutor.test> BODY=9BIT", "BODY=9BIT"),
    ],
)
def test_an_unsupported_mail_parameter_is_555(
    server: TeachingServer, line: str, option: str
) -> None:
    with greeted(server) as client:
        reply = client.code(line)
        assert reply.startswith(f"555 5.5.4 Unsupported option: {option}"), reply


def test_an_rcpt_parameter_is_555(server: TeachingServer) -> None:
    with greeted(server) as client:
        assert client.code("MAIL FROM:<you@tutor.test>").startswith("250 ")
        reply = client.code("RCPT TO:<alice@tutor.test> FOO=bar")
        assert reply == "555 5.5.4 Unsupported option: FOO=bar"


@pytest.mark.parametrize("parameter", ["SIZE=1000", "BODY=8BITMIME", "SMTPUTF8"])
def test_any_parameter_after_helo_is_555(server: TeachingServer, parameter: str) -> None:
    with greeted(server, "HELO") as client:
        reply = client.code(f"MAIL FROM:<you@tutor.test> {parameter}")
        assert reply.startswith(f"555 5.5.4 Unsupported option: {parameter} "), reply
        assert client.code("MAIL FROM:<you@tutor.test>").startswith("250 2.1.0")
        assert client.code(f"RCPT TO:<alice@tutor.test> {parameter}").startswith("555 5.5.4 ")


@pytest.mark.parametrize(
    "line",
    [
        "MAIL FROM:<you@tutor.test> SIZE=abc",  # Postfix: 501 5.5.4 Bad message size syntax
        "MAIL FROM:<you@tutor.test> =bar",
        "MAIL FROM:<you@tutor.test>SIZE=10",
        "MAIL FROM:<you@tutor.test> AUTH",
    ],
)
def test_real_syntax_errors_stay_501(server: TeachingServer, line: str) -> None:
    with greeted(server) as client:
        assert client.code(line).startswith("501 5.5.4 ")


def test_auth_parameter_is_accepted_after_ehlo(server: TeachingServer) -> None:
    # RFC 4954 §5: a server that offers AUTH takes AUTH= on MAIL (Postfix: 250 too).
    with greeted(server) as client:
        assert client.code("MAIL FROM:<you@tutor.test> AUTH=<>").startswith("250 2.1.0")


def test_lesson_8_shows_555_for_a_parameter_after_helo(tmp_path: Path) -> None:
    out = learn(tmp_path, "8", "helo client.example", "mail from:<you@tutor.test> SIZE=1000")
    assert "S: 555 5.5.4 Unsupported option: SIZE=1000" in out
    assert "S: 501" not in out


# --- 5. VRFY: 252 2.0.0 ------------------------------------------------------------------------


@pytest.mark.parametrize("argument", ["alice@tutor.test", "<alice@tutor.test>", "alice", "YOU"])
def test_vrfy_of_a_local_user_is_252_2_0_0(server: TeachingServer, argument: str) -> None:
    # Postfix with VRFY on: 252 2.0.0 alice@tutor.test
    with greeted(server) as client:
        assert client.code(f"VRFY {argument}").startswith("252 2.0.0 <")


def test_vrfy_of_an_unknown_local_user_is_550_5_1_1(server: TeachingServer) -> None:
    # Postfix: 550 5.1.1 <nobody@tutor.test>: Recipient address rejected: User unknown …
    with greeted(server) as client:
        assert client.code("VRFY nobody@tutor.test").startswith("550 5.1.1 <nobody@tutor.test>")


def test_vrfy_elsewhere_follows_the_relay_rule(start_server: Any) -> None:
    closed = start_server()
    with greeted(closed) as client:
        assert client.code("VRFY friend@example.test").startswith("550 5.7.1 ")
    open_relay = start_server(Persona(open_relay=True))
    with greeted(open_relay) as client:
        assert client.code("VRFY friend@example.test").startswith("252 2.0.0 ")


def test_vrfy_without_an_address_is_501(server: TeachingServer) -> None:
    with greeted(server) as client:
        assert client.code("VRFY").startswith("501 5.5.4 ")
        assert client.code("VRFY a b c").startswith("501 5.5.4 ")


def test_no_reply_of_the_table_uses_the_syntax_error_code_for_success() -> None:
    from tutor.server.replies import TABLE

    assert not [spec.key for spec in TABLE if spec.enhanced == "2.5.2"]


# --- 10. EXPN: 502, "not implemented", Postfix's enhanced code ---------------------------------


@pytest.mark.parametrize("line", ["EXPN staff", "EXPN"])
def test_expn_is_502_not_implemented(server: TeachingServer, line: str) -> None:
    # Postfix has no EXPN: 500 5.5.2 Error: command not recognized. Same class and
    # enhanced code; 502 because this server knows the command (RFC 5321 §4.2.4).
    with greeted(server) as client:
        assert client.code(line) == "502 5.5.2 EXPN not implemented"


def test_lesson_6_shows_expn_not_implemented(tmp_path: Path) -> None:
    out = learn(
        tmp_path,
        "6",
        "hello mx.tutor.test",
        "mail from:<you@tutor.test>",
        "ehlo client.example",
        "mail from:you@tutor.test",
        "expn staff",
    )
    assert "S: 502 5.5.2 EXPN not implemented" in out
    assert "switched off" not in out


# --- 7. 552 5.3.4 cites the right sections -----------------------------------------------------


def test_552_rows_cite_the_limits_section_and_rfc_1870() -> None:
    from tutor.server.replies import REPLIES

    for key in ("mail_too_big", "data_too_big"):
        spec = REPLIES[key]
        assert (spec.code, spec.enhanced) == (552, "5.3.4")
        assert "RFC 5321 §4.5.3.1.9" in spec.rfc and "RFC 1870 §6" in spec.rfc
        assert "4.5.3.1.10" not in spec.rfc


def test_size_over_the_limit_is_552_5_3_4(server: TeachingServer) -> None:
    with greeted(server) as client:
        assert client.code("MAIL FROM:<you@tutor.test> SIZE=99999999").startswith("552 5.3.4 ")


# --- 11. The MAIL line allowance covers every advertised parameter ------------------------------


def mail_line(length: int) -> str:
    """A MAIL line of exactly `length` octets with its CRLF, made long by AUTH=."""
    head = "MAIL FROM:<you@tutor.test> SIZE=1000 BODY=8BITMIME SMTPUTF8 AUTH="
    return head + "x" * (length - len(head) - 2)


def test_mail_may_be_longer_by_every_advertised_parameter(server: TeachingServer) -> None:
    longest = COMMAND_LINE_LIMIT + 26 + 10 + 500 + 14
    with greeted(server) as client:
        assert client.code(mail_line(longest)).startswith("250 2.1.0 "), "AUTH= counted"
        assert client.code("RSET").startswith("250 ")
        assert client.code(mail_line(longest + 1)).startswith("500 5.5.2 Line too long")


def test_the_allowance_is_for_mail_after_ehlo_only(server: TeachingServer) -> None:
    with greeted(server, "HELO") as client:
        assert client.code(mail_line(COMMAND_LINE_LIMIT + 1)).startswith("500 5.5.2 Line too")


# --- HELO names: accepted, as Postfix does without HELO restrictions ----------------------------


@pytest.mark.parametrize("name", ["a b", "-x", "[1.2.3.4]", "a_b.example", "localhost"])
def test_any_helo_name_is_accepted(server: TeachingServer, name: str) -> None:
    with RawClient(server.address) as client:
        assert client.code(f"HELO {name}").startswith("250 mx.tutor.test Hello ")
        assert client.code("MAIL FROM:<you@tutor.test>").startswith("250 ")
        assert client.code("RCPT TO:<alice@tutor.test>").startswith("250 ")


@pytest.mark.parametrize("verb", ["HELO", "EHLO"])
def test_a_missing_helo_name_is_501(server: TeachingServer, verb: str) -> None:
    # Postfix: 501 Syntax: HELO hostname (no enhanced code, RFC 2034 §4)
    with RawClient(server.address) as client:
        assert client.code(verb) == f"501 Syntax: {verb} hostname"


# --- DSN and Return-Path -----------------------------------------------------------------------


def relay_to_nowhere(server: TeachingServer, sender: str) -> None:
    with greeted(server) as client:
        assert client.code(f"MAIL FROM:<{sender}>").startswith("250 ")
        assert client.code("RCPT TO:<someone@nowhere.invalid>").startswith("250 ")
        assert client.code("DATA").startswith("354 ")
        client.send_raw(b"From: you@tutor.test\r\nSubject: lost\r\n\r\nHello\r\n.\r\n")
        assert client.reply()[-1].startswith("250 2.0.0 ")
        assert client.code("QUIT").startswith("221 ")


def wait_for_files(folder: Path, count: int) -> list[Path]:
    import time

    from tests.support import TIMEOUT

    deadline = time.monotonic() + TIMEOUT
    while True:
        files = sorted((folder / "new").glob("*")) if (folder / "new").is_dir() else []
        if len(files) >= count or time.monotonic() > deadline:
            return files
        time.sleep(0.05)


def test_a_local_dns_failure_is_not_called_an_smtp_reply(start_server: Any) -> None:
    server = start_server(Persona(open_relay=True))
    relay_to_nowhere(server, "you@tutor.test")
    [bounce] = wait_for_files(server.maildir / "you", 1)
    raw = bounce.read_bytes()
    assert re.search(rb"Diagnostic-Code: X-smtp-tutor; Host or domain name not found", raw)
    assert b"Diagnostic-Code: smtp;" not in raw
    assert raw.startswith(b"Return-Path: <>\n"), "the bounce was delivered: it has one"


def test_relayed_copies_have_no_return_path(start_server: Any) -> None:
    server = start_server(Persona(open_relay=True))
    with greeted(server) as client:
        assert client.code("MAIL FROM:<bugs@looney.example>").startswith("250 ")
        assert client.code("RCPT TO:<daffy@example.test>").startswith("250 ")
        assert client.code("RCPT TO:<alice@tutor.test>").startswith("250 ")
        assert client.code("DATA").startswith("354 ")
        client.send_raw(b"Subject: two copies\r\n\r\nHello\r\n.\r\n")
        assert client.reply()[-1].startswith("250 2.0.0 ")
    [relayed] = wait_for_files(server.maildir / "captured-relay", 1)
    [delivered] = wait_for_files(server.maildir / "alice", 1)
    relayed_copy = email.message_from_bytes(relayed.read_bytes())
    assert relayed_copy["Return-Path"] is None
    assert "(envelope-from <bugs@looney.example>)" in relayed_copy["Received"]
    assert email.message_from_bytes(delivered.read_bytes())["Return-Path"] == (
        "<bugs@looney.example>"
    )


def test_the_mailbox_view_still_reads_a_relayed_copys_envelope(start_server: Any) -> None:
    from tutor.maildir.mailview import read_folder

    server = start_server(Persona(open_relay=True))
    relay_to_nowhere(server, "bugs@looney.example")
    wait_for_files(server.maildir / "captured-relay", 2)  # the message and its bounce
    messages = read_folder(server.maildir, "captured-relay")
    relayed = next(m for m in messages if m.envelope_recipient == "someone@nowhere.invalid")
    assert relayed.envelope_sender == "bugs@looney.example"
    assert relayed.ours == 3  # Received, Authentication-Results, Delivered-To
