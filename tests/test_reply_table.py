"""Every row of the one reply table, triggered over a real socket (docs/server.md, "Every reply").

TRIGGERS holds one small scenario per row of tutor.server.replies.TABLE. Each scenario
talks to a real teaching server and returns the reply lines that the row produced; the
test then checks the reply code, the enhanced code, the text template, and the RFC 2034
rule: with ENHANCEDSTATUSCODES advertised every 2xx/4xx/5xx reply starts with an
enhanced code of the same class, except the greeting and the replies to HELO/EHLO, and
the 3xx replies (354, 334) carry none. A new row without a trigger fails the suite.
"""

from __future__ import annotations

import base64
import re
import shutil
import string
from collections.abc import Callable, Iterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest

from tests.support import RawClient
from tutor.server.persona import DEMO_ACCOUNTS, Persona
from tutor.server.replies import REPLIES, TABLE, ReplySpec
from tutor.server.runner import TeachingServer
from tutor.smtp.events import MessageStored, SessionClosed
from tutor.smtp.wire import RECIPIENT_LIMIT, parse_reply_line

USER = "you"
PASSWORD = DEMO_ACCOUNTS[USER]
MESSAGE = b"From: Bugs Bunny\r\nTo: Daffy Duck\r\nSubject: reply table\r\n\r\nWhat's up, doc?\r\n"

# Rows exempt from the enhanced-code rule: the greeting and the replies to HELO/EHLO.
NO_ENHANCED_CODE = {"greeting", "helo", "ehlo", "helo_syntax", "ehlo_syntax"}


class Lab:
    """Servers and clients for one scenario; everything is closed after the test."""

    def __init__(
        self,
        start_server: Callable[..., TeachingServer],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self._start_server = start_server
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self._default: TeachingServer | None = None
        self._own_servers: list[TeachingServer] = []
        self._clients: list[RawClient] = []

    # --- servers --------------------------------------------------------------------------

    @property
    def server(self) -> TeachingServer:
        if self._default is None:
            self._default = self._start_server()
        return self._default

    def start(self, persona: Persona) -> TeachingServer:
        return self._start_server(persona)

    def start_without_tls(self) -> TeachingServer:
        """A server with no TLS at all (conftest's start_server always passes a context)."""
        root = self.tmp_path / "no-tls" / "Maildir"
        server = TeachingServer(root, Persona(tls=False), tls_context=None)
        self._own_servers.append(server.start())
        return server

    # --- clients ----------------------------------------------------------------------------

    def connect(self, server: TeachingServer | None = None) -> RawClient:
        client = RawClient((server or self.server).address)
        self._clients.append(client)
        return client

    def greeted(self, server: TeachingServer | None = None, verb: str = "EHLO") -> RawClient:
        client = self.connect(server)
        assert client.code(f"{verb} client.example").startswith("250 ")
        return client

    def with_sender(self, server: TeachingServer | None = None, verb: str = "EHLO") -> RawClient:
        client = self.greeted(server, verb)
        assert client.code("MAIL FROM:<sender@example.test>").startswith("250 2.1.0")
        return client

    def with_recipient(self, server: TeachingServer | None = None) -> RawClient:
        client = self.with_sender(server)
        assert client.code("RCPT TO:<you@tutor.test>").startswith("250 2.1.5")
        return client

    def in_data(self, server: TeachingServer | None = None) -> RawClient:
        client = self.with_recipient(server)
        assert client.code("DATA").startswith("354 ")
        return client

    def under_tls(self, server: TeachingServer | None = None) -> RawClient:
        client = self.greeted(server)
        assert client.code("STARTTLS") == "220 2.0.0 Ready to start TLS"
        client.starttls()
        assert client.code("EHLO client.example").startswith("250 ")
        return client

    def authenticated(self) -> RawClient:
        client = self.under_tls()
        assert client.code("AUTH PLAIN " + plain(USER, PASSWORD)).startswith("235 ")
        return client

    def stored_messages(self, server: TeachingServer) -> list[Path]:
        return sorted(server.maildir.glob("*/new/*")) + sorted(server.maildir.glob("*/cur/*"))

    def close(self) -> None:
        for client in self._clients:
            client.close()
        for server in self._own_servers:
            server.stop()


@pytest.fixture
def lab(start_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    lab = Lab(start_server, tmp_path, monkeypatch)
    yield lab
    lab.close()


def plain(user: str, password: str) -> str:
    return b64(f"\0{user}\0{password}")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- the scenarios, one per row ---------------------------------------------------------------

Trigger = Callable[[Lab], list[str]]
TRIGGERS: dict[str, Trigger] = {}


def trigger(key: str) -> Callable[[Trigger], Trigger]:
    def register(function: Trigger) -> Trigger:
        assert key not in TRIGGERS, f"two triggers for {key}"
        TRIGGERS[key] = function
        return function

    return register


def simple(key: str, setup: str, line: str | bytes) -> None:
    """A row triggered by one command line after a standard setup (a Lab method name)."""

    def run(lab: Lab) -> list[str]:
        client = getattr(lab, setup)() if setup else lab.connect()
        return client.cmd(line)

    trigger(key)(run)


# connection


@trigger("greeting")
def _greeting(lab: Lab) -> list[str]:
    return lab.connect().greeting


@trigger("too_many_connections")
def _too_many_connections(lab: Lab) -> list[str]:
    server = lab.start(Persona(max_connections=2))
    first, second = lab.connect(server), lab.connect(server)
    assert first.greeting[0].startswith("220 ")
    assert second.greeting[0].startswith("220 ")
    third = lab.connect(server)
    assert third.at_eof(), "the refused connection must be closed"
    assert first.code("NOOP") == "250 2.0.0 OK", "the admitted clients are still served"
    return third.greeting


@trigger("busy")
def _busy(lab: Lab) -> list[str]:
    client = lab.connect(lab.start(Persona(busy=True)))
    assert client.at_eof(), "a busy host closes the connection after its 421"
    return client.greeting


def _outsider(lab: Lab) -> RawClient:
    """A client of a server that serves 10.0.0.0/8 only (serve --lan's check): loopback
    is outside it."""
    return lab.connect(lab.start(Persona(clients=(ip_network("10.0.0.0/8"),))))


@trigger("not_on_network")
def _not_on_network(lab: Lab) -> list[str]:
    client = _outsider(lab)
    assert client.code("QUIT").startswith("221 "), "RFC 5321 §3.1: it waits for QUIT"
    return client.greeting


@trigger("not_on_network_command")
def _not_on_network_command(lab: Lab) -> list[str]:
    return _outsider(lab).cmd("EHLO client.example")


@trigger("idle_timeout")
def _idle_timeout(lab: Lab) -> list[str]:
    server = lab.start(Persona(idle_timeout=0.5))
    client = lab.connect(server)
    notice = client.reply()  # unsolicited: the client sent nothing
    assert client.at_eof()
    return notice


@trigger("too_many_unknown")
def _too_many_unknown(lab: Lab) -> list[str]:
    client = lab.greeted()
    limit = Persona().max_unknown_commands
    for number in range(1, limit):
        assert client.code(f"BOGUS{'X' * number}").startswith("500 5.5.2"), number
    last = client.cmd("BOGUS")
    assert client.at_eof()
    return last


@trigger("shutdown")
def _shutdown(lab: Lab) -> list[str]:
    server = lab.start(Persona())
    client = lab.greeted(server)
    server.stop()
    notice = client.reply()  # unsolicited
    assert client.at_eof()
    return notice


simple("quit", "greeted", "QUIT")
simple("quit_syntax", "greeted", "QUIT now")

# command-line syntax
simple("unknown", "greeted", "FROB")
simple("empty_line", "greeted", "")
simple("bad_verb", "greeted", "M\u00c4IL FROM:<a@example.test>")
simple("nul_byte", "greeted", b"NOOP\x00")
simple("command_too_long", "greeted", "NOOP " + "x" * (513 - len("NOOP \r\n")))
simple("bad_utf8", "greeted", b"MAIL FROM:<caf\xe9@example.test>")

# greetings
simple("helo", "", "HELO client.example")
simple("ehlo", "", "EHLO client.example")
simple("helo_syntax", "", "HELO")
simple("ehlo_syntax", "", "EHLO")

# MAIL
simple("mail_ok", "greeted", "MAIL FROM:<sender@example.test>")
simple("mail_need_helo", "", "MAIL FROM:<sender@example.test>")
simple("mail_nested", "with_sender", "MAIL FROM:<other@example.test>")
simple("mail_syntax", "greeted", "MAIL TO:<sender@example.test>")
simple("mail_brackets", "greeted", "MAIL FROM:sender@example.test")
simple("mail_bad_address", "greeted", "MAIL FROM:<not an address>")
simple("mail_non_ascii", "greeted", "MAIL FROM:<j\u00f6rg@example.test>")
simple("mail_params", "greeted", "MAIL FROM:<sender@example.test> FROBNICATE=yes")
simple("mail_body", "greeted", "MAIL FROM:<sender@example.test> BODY=BINARYMIME")


@trigger("mail_params_helo")
def _mail_params_helo(lab: Lab) -> list[str]:
    return lab.greeted(verb="HELO").cmd("MAIL FROM:<sender@example.test> SIZE=1000")


simple("mail_null_mx", "greeted", "MAIL FROM:<a@nomail.example>")


@trigger("mail_too_big")
def _mail_too_big(lab: Lab) -> list[str]:
    client = lab.greeted(lab.start(Persona(max_message_size=1000)))
    return client.cmd("MAIL FROM:<sender@example.test> SIZE=1001")


# RCPT
simple("rcpt_ok", "with_sender", "RCPT TO:<you@tutor.test>")
simple("rcpt_need_helo", "", "RCPT TO:<you@tutor.test>")
simple("rcpt_need_mail", "greeted", "RCPT TO:<you@tutor.test>")
simple("rcpt_syntax", "with_sender", "RCPT FROM:<you@tutor.test>")
simple("rcpt_brackets", "with_sender", "RCPT TO:you@tutor.test")
simple("rcpt_bad_address", "with_sender", "RCPT TO:<you at tutor.test>")
simple("rcpt_non_ascii", "with_sender", "RCPT TO:<j\u00f6rg@tutor.test>")
simple("rcpt_params", "with_sender", "RCPT TO:<you@tutor.test> NOTIFY=NEVER")
simple("rcpt_unknown", "with_sender", "RCPT TO:<nobody@tutor.test>")
simple("rcpt_relay_denied", "with_sender", "RCPT TO:<friend@example.test>")


@trigger("rcpt_greylisted")
def _rcpt_greylisted(lab: Lab) -> list[str]:
    server = lab.start(Persona(greylist=True))
    client = lab.with_sender(server)
    first = client.cmd("RCPT TO:<you@tutor.test>")
    assert client.code("RCPT TO:<you@tutor.test>").startswith("250 2.1.5")  # the retry passes
    return first


@trigger("data_spam")
def _data_spam(lab: Lab) -> list[str]:
    client = lab.in_data()
    gtube = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n"
    result = client.cmd(MESSAGE + gtube + b".")
    assert lab.stored_messages(lab.server) == []
    return result


@trigger("rcpt_relay_ok")
def _rcpt_relay_ok(lab: Lab) -> list[str]:
    client = lab.with_sender(lab.start(Persona(open_relay=True)))
    return client.cmd("RCPT TO:<friend@example.test>")


@trigger("rcpt_null_mx")
def _rcpt_null_mx(lab: Lab) -> list[str]:
    client = lab.with_sender(lab.start(Persona(open_relay=True)))
    return client.cmd("RCPT TO:<a@nomail.example>")


@trigger("rcpt_too_many")
def _rcpt_too_many(lab: Lab) -> list[str]:
    client = lab.with_sender(lab.start(Persona(open_relay=True)))
    for number in range(RECIPIENT_LIMIT):
        assert client.code(f"RCPT TO:<r{number}@example.test>").startswith("250 2.1.5"), number
    return client.cmd(f"RCPT TO:<r{RECIPIENT_LIMIT}@example.test>")


# DATA
simple("data_go", "with_recipient", "DATA")
simple("data_need_helo", "", "DATA")
simple("data_need_rcpt", "with_sender", "DATA")
simple("data_syntax", "with_recipient", "DATA now")


@trigger("data_ok")
def _data_ok(lab: Lab) -> list[str]:
    client = lab.in_data()
    return client.cmd(MESSAGE + b".")


@trigger("data_too_big")
def _data_too_big(lab: Lab) -> list[str]:
    server = lab.start(Persona(max_message_size=1000))
    client = lab.in_data(server)
    body = b"".join(b"line %02d " % n + b"x" * 90 + b"\r\n" for n in range(12))  # > 1000
    result = client.cmd(MESSAGE + body + b".")
    assert lab.stored_messages(server) == []
    return result


@trigger("data_line_too_long")
def _data_line_too_long(lab: Lab) -> list[str]:
    client = lab.in_data()
    result = client.cmd(MESSAGE + b"y" * 1200 + b"\r\n.")
    assert lab.stored_messages(lab.server) == []
    return result


@trigger("data_storage_full")
def _data_storage_full(lab: Lab) -> list[str]:
    server = lab.server
    client = lab.in_data(server)
    mailbox_folder = server.maildir / "you"
    shutil.rmtree(mailbox_folder)
    mailbox_folder.write_text("a file where the Maildir should be\n")  # even root cannot write
    result = client.cmd(MESSAGE + b".")
    assert lab.stored_messages(server) == []
    record = server.capture.find_peer(*client.sock.getsockname()[:2])
    assert record is not None and record.messages == []
    assert client.code("NOOP") == "250 2.0.0 OK", "the session goes on"
    return result


# other commands
simple("rset", "with_sender", "RSET")
simple("rset_syntax", "greeted", "RSET now")
simple("noop", "greeted", "NOOP")
simple("noop_student", "greeted", "NOOP student=Ada Lovelace")
simple("noop_student_refused", "greeted", "NOOP student=<script>")
simple("vrfy", "greeted", "VRFY you")
simple("vrfy_unknown", "greeted", "VRFY <nobody@tutor.test>")
simple("vrfy_relay_denied", "greeted", "VRFY friend@example.test")
simple("vrfy_syntax", "greeted", "VRFY")
simple("expn", "greeted", "EXPN staff")
simple("help", "greeted", "HELP")
simple("help_unknown", "greeted", "HELP FROB")

# STARTTLS
simple("starttls_need_ehlo", "", "STARTTLS")
simple("starttls_active", "under_tls", "STARTTLS")
simple("starttls_syntax", "greeted", "STARTTLS now")


@trigger("starttls_ready")
def _starttls_ready(lab: Lab) -> list[str]:
    client = lab.greeted()
    result = client.cmd("STARTTLS")
    client.starttls()
    assert client.cmd("EHLO client.example")[0].startswith("250-")
    return result


@trigger("starttls_unavailable")
def _starttls_unavailable(lab: Lab) -> list[str]:
    client = lab.connect(lab.start_without_tls())
    ehlo = client.cmd("EHLO client.example")
    assert not any("STARTTLS" in line for line in ehlo), "STARTTLS must not be offered"
    return client.cmd("STARTTLS")


# AUTH
simple("auth_before_tls", "greeted", "AUTH PLAIN " + plain(USER, PASSWORD))
simple("auth_need_ehlo", "", "AUTH PLAIN " + plain(USER, PASSWORD))
simple("auth_already", "authenticated", "AUTH PLAIN " + plain(USER, PASSWORD))
simple("auth_syntax", "under_tls", "AUTH")
simple("auth_mechanism", "under_tls", "AUTH CRAM-MD5")
simple("auth_ok", "under_tls", "AUTH PLAIN " + plain(USER, PASSWORD))
simple("auth_failed", "under_tls", "AUTH PLAIN " + plain(USER, "not-the-password"))
simple("auth_base64", "under_tls", "AUTH PLAIN not*base64!")
simple("auth_split", "under_tls", "AUTH PLAIN " + b64("you-and-no-separators"))


@trigger("auth_in_transaction")
def _auth_in_transaction(lab: Lab) -> list[str]:
    client = lab.under_tls()
    assert client.code("MAIL FROM:<you@tutor.test>").startswith("250 2.1.0")
    return client.cmd("AUTH PLAIN " + plain(USER, PASSWORD))


@trigger("auth_challenge")
def _auth_challenge(lab: Lab) -> list[str]:
    client = lab.under_tls()
    challenge = client.cmd("AUTH LOGIN")
    assert challenge == ["334 VXNlcm5hbWU6"]  # base64 of "Username:"
    assert client.cmd(b64(USER)) == ["334 UGFzc3dvcmQ6"]  # "Password:"
    assert client.code(b64(PASSWORD)).startswith("235 2.7.0")
    return challenge


@trigger("auth_aborted")
def _auth_aborted(lab: Lab) -> list[str]:
    client = lab.under_tls()
    assert client.code("AUTH LOGIN").startswith("334 ")
    result = client.cmd("*")
    assert client.code("NOOP") == "250 2.0.0 OK", "exactly one reply to the '*'"
    return result


# errors of the server itself


@trigger("internal_error")
def _internal_error(lab: Lab) -> list[str]:
    # No real trigger is known: the store is made to fail in an unexpected way.
    server = lab.server

    def broken_copies(*args: object, **kwargs: object) -> object:
        raise RuntimeError("simulated bug in the store")

    lab.monkeypatch.setattr(server.context.store, "_copies", broken_copies)
    client = lab.in_data(server)
    result = client.cmd(MESSAGE + b".")
    assert lab.stored_messages(server) == []
    return result


# --- the checks ---------------------------------------------------------------------------------


def text_pattern(spec: ReplySpec) -> str:
    """A regex for the row's text: literal parts exact, each {field} one or more chars."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(spec.text):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(".+")
    return "".join(parts)


def line_pattern(spec: ReplySpec) -> re.Pattern[str]:
    enhanced = re.escape(spec.enhanced) + " " if spec.enhanced else ""
    return re.compile(f"{spec.code}[ -]{enhanced}{text_pattern(spec)}")


def test_every_row_has_a_trigger() -> None:
    assert set(TRIGGERS) == set(REPLIES)


@pytest.mark.parametrize("spec", TABLE, ids=lambda spec: spec.key)
def test_row_follows_rfc_2034(spec: ReplySpec) -> None:
    """The table itself: enhanced codes present, of the right class, only where allowed."""
    if spec.code // 100 == 3 or spec.key in NO_ENHANCED_CODE:
        assert spec.enhanced is None
    else:
        assert spec.enhanced is not None
        assert re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", spec.enhanced)
        assert spec.enhanced[0] == str(spec.code)[0]


@pytest.mark.parametrize("spec", TABLE, ids=lambda spec: spec.key)
def test_row_is_sent_over_a_socket(spec: ReplySpec, lab: Lab) -> None:
    lines = TRIGGERS[spec.key](lab)

    assert lines, "no reply"
    parsed = []
    for line in lines:
        reply_line = parse_reply_line(line)
        assert reply_line is not None, f"not a reply line: {line!r}"
        parsed.append(reply_line)
    assert {p.code for p in parsed} == {spec.code}, lines
    assert [p.final for p in parsed] == [False] * (len(parsed) - 1) + [True], lines
    pattern = line_pattern(spec)
    assert any(pattern.fullmatch(line) for line in lines), f"{lines!r} !~ {pattern.pattern}"

    # RFC 2034 §4, on what crossed the wire.
    if spec.code // 100 == 3:
        assert all(p.enhanced is None for p in parsed), lines
    elif spec.key not in NO_ENHANCED_CODE:
        for p in parsed:
            assert p.enhanced == spec.enhanced, lines
            assert p.enhanced is not None and p.enhanced[0] == str(p.code)[0], lines


def test_replies_are_captured_as_sent(lab: Lab) -> None:
    """The capture records each reply line exactly as the client received it."""
    client = lab.greeted()
    sent = client.cmd("HELP")
    client.cmd("QUIT")
    record = lab.server.capture.find_peer(*client.sock.getsockname()[:2])
    assert record is not None
    assert lab.server.capture.wait_for(
        lambda: any(isinstance(e, SessionClosed) for e in record.events), timeout=5
    )
    help_exchange = next(e for e in record.exchanges if e.verb == "HELP")
    assert list(help_exchange.replies) == sent
    assert not [e for e in record.events if isinstance(e, MessageStored)]
