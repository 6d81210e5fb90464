"""Annotations: a reply explained by the command it answers and the state, together."""

from __future__ import annotations

from collections import defaultdict

import pytest

from tests.support import RawClient, reply
from tutor.explain.annotate import Annotation, annotate, annotate_alone, extension_meaning
from tutor.server.replies import TABLE
from tutor.server.runner import TeachingServer
from tutor.smtp.session_state import SessionState

EHLO_REPLY = (
    "250-mx.tutor.test Hello a.b.c [127.0.0.1]",
    "250-SIZE 10485760",
    "250-PIPELINING",
    "250-ENHANCEDSTATUSCODES",
    "250-STARTTLS",
    "250 HELP",
)


class Session:
    """Feed (command, reply) pairs; keep the annotation of each reply in its context."""

    def __init__(self) -> None:
        self.state = SessionState()
        self.notes: list[Annotation] = []

    def __call__(self, command: str | None, *lines: str, kind: str = "command") -> Annotation:
        answer = reply(*lines)
        note = annotate(command, answer, self.state.copy())
        self.state.feed(command, answer, kind=kind)
        self.notes.append(note)
        return note


def greeted(verb: str = "EHLO") -> Session:
    s = Session()
    s(None, "220 mx.tutor.test ESMTP smtp-tutor ready")
    s(f"{verb} a.b.c", *(EHLO_REPLY if verb == "EHLO" else ("250 mx.tutor.test Hello a.b.c",)))
    return s


def with_recipient() -> Session:
    s = greeted()
    s("MAIL FROM:<x@example.test>", "250 2.1.0 <x@example.test> sender address ok")
    s("RCPT TO:<you@tutor.test>", "250 2.1.5 <you@tutor.test> recipient verified")
    return s


# --- the same code, three lessons ---------------------------------------------------------


def test_250_after_mail_rcpt_and_the_dot_are_three_different_lessons() -> None:
    s = greeted()
    mail = s("MAIL FROM:<x@example.test>", "250 2.1.0 <x@example.test> ok")
    rcpt = s("RCPT TO:<you@tutor.test>", "250 2.1.5 <you@tutor.test> ok")
    s("DATA", "354 Enter message")
    dot = s(".", "250 2.0.0 OK id=Q1234", kind="data")
    assert len({mail.headline, rcpt.headline, dot.headline}) == 3
    assert mail.headline.startswith("Sender accepted")
    assert "bounces go here, not to From:" in mail.headline
    assert rcpt.headline.startswith("Recipient accepted: the envelope now has 1 recipient")
    assert "each RCPT is judged on its own" in rcpt.headline
    assert dot.headline.startswith("Message accepted")
    assert "responsibility" in dot.headline and "queue id Q1234" in dot.headline
    assert "§4.1.1.4" in dot.rfc and "§6.1" in dot.rfc
    assert "§4.1.1.2" in mail.rfc and "§4.1.1.3" in rcpt.rfc


def test_the_recipient_count_grows_and_a_refusal_does_not_undo_it() -> None:
    s = with_recipient()
    refused = s("RCPT TO:<nobody@tutor.test>", "550 5.1.1 <nobody@tutor.test> no such mailbox")
    second = s("RCPT TO:<alice@tutor.test>", "250 2.1.5 ok")
    assert "now has 2 recipients" in second.headline
    assert refused.advice is not None and "the 1 accepted so far still stand" in refused.advice


def test_null_sender_is_explained_as_the_bounce_sender() -> None:
    note = greeted()("MAIL FROM:<>", "250 2.1.0 <> ok")
    assert "never be bounced" in note.headline
    assert "§4.5.5" in note.rfc


def test_220_banner_and_220_after_starttls_differ() -> None:
    s = Session()
    banner = s(None, "220 mx.tutor.test ESMTP smtp-tutor ready")
    s("EHLO a.b.c", *EHLO_REPLY)
    tls = s("STARTTLS", "220 2.0.0 Ready to start TLS")
    assert "mx.tutor.test" in banner.headline and "ready" in banner.headline
    assert "TLS handshake" in tls.headline and "EHLO again" in tls.headline
    assert "RFC 3207" in tls.rfc


def test_ehlo_lists_what_the_extensions_mean() -> None:
    note = greeted().notes[-1]
    assert note.headline == "Greeting accepted (EHLO): the server offers 5 extensions"
    assert "SIZE 10485760 — messages up to 10485760 octets (10 MiB)" in note.detail
    assert "PIPELINING — you may send several commands" in note.detail
    assert note.advice is not None and "STARTTLS" in note.advice
    assert greeted("HELO").notes[-1].headline.startswith("Greeting accepted (HELO)")


def test_extension_meanings() -> None:
    assert "RFC 4954" in extension_meaning("AUTH PLAIN LOGIN")
    assert "RFC 3030" in extension_meaning("CHUNKING")
    assert "private" in extension_meaning("XCLIENT NAME ADDR")
    assert "not a standard extension" in extension_meaning("FROBNICATE")


# --- 503: name the missing step -----------------------------------------------------------


def test_503_after_rcpt_without_mail_says_mail_from_first() -> None:
    note = greeted()("RCPT TO:<you@tutor.test>", "503 5.5.1 Bad sequence of commands")
    assert note.headline == "Bad sequence: MAIL FROM first"
    assert note.advice is not None and "MAIL FROM" in note.advice


def test_503_before_any_greeting_says_greet_first() -> None:
    s = Session()
    s(None, "220 mx.tutor.test ESMTP")
    note = s("MAIL FROM:<x@example.test>", "503 5.5.1 Bad sequence of commands")
    assert "greet first" in note.headline and "EHLO" in note.headline


def test_503_after_starttls_says_send_ehlo_again() -> None:
    s = greeted()
    s("STARTTLS", "220 2.0.0 Ready to start TLS")
    note = s("MAIL FROM:<x@example.test>", "503 5.5.1 Bad sequence of commands")
    assert note.headline == "Bad sequence: send EHLO again before MAIL"
    assert "RFC 3207 §4.2" in note.rfc


def test_503_to_data_names_the_refused_recipient() -> None:
    s = greeted()
    s("MAIL FROM:<x@example.test>", "250 2.1.0 ok")
    s("RCPT TO:<nobody@tutor.test>", "550 5.1.1 no such mailbox")
    note = s("DATA", "503 5.5.1 Bad sequence of commands: no valid recipients yet")
    assert note.headline == "Bad sequence: no recipient accepted yet"
    assert "<nobody@tutor.test> (550)" in note.detail


def test_503_to_data_without_mail() -> None:
    note = greeted()("DATA", "503 5.5.1 Bad sequence")
    assert note.headline == "Bad sequence: MAIL FROM first, then RCPT TO, then DATA"


def test_503_second_mail_names_the_sender() -> None:
    s = greeted()
    s("MAIL FROM:<x@example.test>", "250 2.1.0 ok")
    note = s("MAIL FROM:<y@example.test>", "503 5.5.1 sender already given")
    assert "<x@example.test>" in note.headline and note.advice and "RSET" in note.advice


def test_503_starttls_after_helo_and_under_tls() -> None:
    note = greeted("HELO")("STARTTLS", "503 5.5.1 Bad sequence")
    assert "send EHLO first" in note.headline and "HELO offers no extensions" in note.detail
    s = greeted()
    s("STARTTLS", "220 2.0.0 Ready")
    s("EHLO a.b.c", *EHLO_REPLY)
    assert "already active" in s("STARTTLS", "503 5.5.1 TLS is already active").headline


def test_503_auth_already_logged_in() -> None:
    s = greeted()
    s("AUTH PLAIN AHlvdQB0dXRvci1wYXNzd29yZA==", "235 2.7.0 Authentication successful")
    assert "already logged in" in s("AUTH PLAIN AAAA", "503 5.5.1 already").headline


# --- the other replies --------------------------------------------------------------------


def test_354_quit_and_auth() -> None:
    s = with_recipient()
    go = s("DATA", '354 Enter message, ending with "." on a line by itself')
    assert "only a dot" in go.headline and "dot-stuffing" in go.detail
    assert "1 accepted recipient" in go.detail
    assert "Goodbye" in greeted()("QUIT", "221 2.0.0 mx.tutor.test closing connection").headline
    login = greeted()("AUTH PLAIN AHlvdQB0dXRvci1wYXNzd29yZA==", "235 2.7.0 Authentication ok")
    assert login.headline.startswith("Logged in as you")


def test_334_challenges_are_decoded() -> None:
    s = greeted()
    user = s("AUTH LOGIN", "334 VXNlcm5hbWU6")
    password = s("eW91", "334 UGFzc3dvcmQ6", kind="auth")
    done = s("dHV0b3ItcGFzc3dvcmQ=", "235 2.7.0 Authentication successful", kind="auth")
    assert user.headline == "AUTH continues: the server asks for 'Username:'"
    assert "VXNlcm5hbWU6" in user.detail and "not encryption" in user.detail
    assert password.headline == "AUTH continues: the server asks for 'Password:'"
    assert done.headline.startswith("Logged in as you")
    empty = greeted()("AUTH PLAIN", "334 ")
    assert "ready for your credentials" in empty.headline


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("421 4.4.2 mx.tutor.test Idle timeout, closing connection", "Idle timeout"),
        ("421 4.7.0 mx.tutor.test Too many connections, try again later", "Too many connections"),
        ("421 4.7.0 mx.tutor.test Too many unrecognized commands, closing", "Too many errors"),
        ("421 4.3.2 mx.tutor.test Service shutting down, closing connection", "shutting down"),
        ("421 mx.example.test Service not available", "Service not available"),
    ],
)
def test_421_says_why_from_the_text_and_enhanced_code(line: str, expected: str) -> None:
    note = greeted()(None, line, kind="notice")
    assert expected in note.headline
    assert note.advice is not None and "later" in note.advice


def test_temporary_failures() -> None:
    grey = greeted()("RCPT TO:<a@example.test>", "450 4.2.0 <a@example.test>: Greylisted")
    assert grey.headline.startswith("Greylisted") and "RFC 6647" in grey.rfc
    assert (
        "try again later" in greeted()("MAIL FROM:<a@b.example>", "451 4.3.0 Local error").headline
    )
    s = with_recipient()
    many = s("RCPT TO:<b@tutor.test>", "452 4.5.3 Too many recipients")
    assert many.headline == "Too many recipients for one message"
    assert "4xx" in many.reply_class


@pytest.mark.parametrize(
    ("command", "line", "expected"),
    [
        (
            "RCPT TO:<nobody@tutor.test>",
            "550 5.1.1 <nobody@tutor.test> no such mailbox here",
            "No such user: <nobody@tutor.test>",
        ),
        (
            "RCPT TO:<bob@elsewhere.example>",
            "550 5.7.1 <bob@elsewhere.example> relay access denied",
            "Relay denied",
        ),
        (
            "RCPT TO:<bob@example.test>",
            "550 5.7.26 Unauthenticated email is not accepted",
            "failed sender authentication",
        ),
        ("RCPT TO:<bob@example.test>", "550 5.7.1 Message rejected by policy", "Refused by policy"),
        ("MAIL FROM:<a@@b>", "553 5.1.7 Malformed sender address", "Malformed sender address"),
        ("RCPT TO:<a@@b>", "553 5.1.3 Malformed recipient address", "Malformed recipient"),
        (
            "MAIL FROM:<a@b.example> SIZE=99999999999",
            "552 5.3.4 Message size exceeds fixed max",
            "SIZE you declared",
        ),
        ("RCPT TO:<x@nomail.example>", "556 5.1.10 domain nomail.example has a null MX", "Null MX"),
        (
            "MAIL FROM:<x@nomail.example>",
            "550 5.7.27 Sender domain has a null MX",
            "Sender domain has a null MX",
        ),
        (
            "RCPT TO:<a@b.example> NOTIFY=NEVER",
            "555 5.5.4 RCPT TO parameters not recognized",
            "RCPT parameter not recognised",
        ),
        (
            "RCPT TO:<a@b.example>",
            "551 5.1.6 User not local; please try <a@c.example>",
            "Mailbox moved",
        ),
        ("AUTH PLAIN AAAA", "538 5.7.11 Encryption required", "Encrypt first"),
        ("AUTH PLAIN AAAA", "535 5.7.8 Authentication credentials invalid", "wrong user name"),
        ("MAIL FROM:<a@b.example>", "530 5.7.0 Authentication required", "log in first"),
        (
            "MAIL FROM:<a@b.example>",
            "530 5.7.0 Must issue a STARTTLS command first",
            "STARTTLS first",
        ),
        ("MAIL FROM:a@b.example", "501 5.5.4 Syntax: MAIL FROM:<address>", "Angle brackets"),
        ("FROB", "500 5.5.2 Command not recognized: FROB", "Command not recognised: FROB"),
        ("EXPN staff", "502 5.5.1 EXPN not implemented", "not implemented"),
        ("VRFY bob", "252 2.0.0 Cannot VRFY user", "without confirming it"),
        ("HELP frob", "504 5.5.1 No help for frob", "Parameter not implemented"),
    ],
)
def test_failures_are_read_with_their_enhanced_codes(
    command: str, line: str, expected: str
) -> None:
    note = with_recipient()(command, line)
    assert expected in note.headline, note


def test_after_the_dot_a_refusal_refuses_the_whole_message() -> None:
    s = with_recipient()
    s("DATA", "354 go ahead")
    note = s(
        ".", "552 5.3.4 Message exceeds fixed maximum of 10485760 octets; not stored", kind="data"
    )
    assert note.headline == "Message too big for this server"
    assert "SIZE 10485760" in note.detail and "no recipient gets it" in note.detail
    s = with_recipient()
    s("DATA", "354 go ahead")
    spam = s(".", "554 5.7.1 Message refused: looks like spam", kind="data")
    assert spam.headline.startswith("Refused by policy")


def test_enhanced_codes_are_read_and_a_class_mismatch_is_flagged() -> None:
    note = with_recipient()("RCPT TO:<a@tutor.test>", "550 5.1.1 no such user")
    assert note.enhanced == "5.1.1"
    assert note.enhanced_meaning is not None
    assert note.enhanced_meaning.startswith("Bad destination mailbox address (permanent failure")
    odd = with_recipient()("RCPT TO:<a@tutor.test>", "550 4.1.1 no such user")
    assert odd.enhanced_meaning is not None and "does not match reply 550" in odd.enhanced_meaning
    vendor = with_recipient()("RCPT TO:<a@tutor.test>", "550 5.7.606 Access denied, banned IP")
    assert vendor.enhanced_meaning is not None
    assert "Not in the IANA registry" in vendor.enhanced_meaning


def test_codes_without_special_words_fall_back_to_the_catalogue() -> None:
    status = greeted()("STAT", "211 System status ok")
    assert status.headline.startswith("Status")
    unlisted = greeted()("XYZZY", "259 nothing")
    assert unlisted.headline.startswith("Unlisted reply 259")
    assert unlisted.reply_class.startswith("2xx")


def test_annotate_alone_uses_the_words_around_a_bounce() -> None:
    line = reply("550 5.1.1 <bob@example.test>: Recipient address rejected")
    note = annotate_alone(line, hint="host mx.example.test said: (in reply to RCPT TO command)")
    assert note.headline == "No such user: <bob@example.test> does not exist at this domain"
    assert note.advice is not None and "judged on their own" in note.advice
    data = annotate_alone(reply("554 5.7.1 spam"), hint="(in reply to end of DATA command)")
    assert "no recipient gets it" in data.detail
    alone = annotate_alone(reply("503 5.5.1 Bad sequence of commands"))
    assert alone.headline.startswith("Bad sequence")


def test_every_reply_of_the_servers_table_gets_an_explanation() -> None:
    fields: defaultdict[str, str] = defaultdict(lambda: "x")
    fields.update(host="mx.tutor.test", address="bob@example.test", queue_id="Q1")
    for spec in TABLE:
        line = f"{spec.code} " + (f"{spec.enhanced} " if spec.enhanced else "")
        note = annotate_alone(reply(line + spec.text.format_map(fields)))
        assert note.headline and note.detail and note.rfc, spec.key
        if spec.enhanced:
            assert note.enhanced == spec.enhanced
            assert note.enhanced_meaning and "Not an enhanced" not in note.enhanced_meaning


# --- the real server ----------------------------------------------------------------------


def test_real_replies_in_context(server: TeachingServer) -> None:
    s = Session()
    with RawClient(server.address) as client:
        s(None, *client.greeting)
        for command in (
            "MAIL FROM:<x@example.test>",
            "EHLO a.b.c",
            "RCPT TO:<you@tutor.test>",
            "MAIL FROM:<x@example.test>",
            "RCPT TO:<you@tutor.test>",
            "RCPT TO:<bob@elsewhere.example>",
            "DATA",
        ):
            s(command, *client.cmd(command))
        client.sock.sendall(b"550 looks like a reply\r\n.\r\n")
        s(".", *client.reply(), kind="data")
        s("QUIT", *client.cmd("QUIT"))
    headlines = [note.headline for note in s.notes]
    assert headlines[0].startswith("Greeting: mx.tutor.test")
    assert headlines[1] == "Bad sequence: greet first; send EHLO (or HELO) before MAIL"
    assert headlines[3] == "Bad sequence: MAIL FROM first"
    assert headlines[4].startswith("Sender accepted")
    assert headlines[5].startswith("Recipient accepted: the envelope now has 1 recipient")
    assert headlines[6].startswith("Relay denied")
    assert headlines[7].startswith("Go ahead")
    assert headlines[8].startswith("Message accepted") and "queue id" in headlines[8]
    assert headlines[9].startswith("Goodbye")
