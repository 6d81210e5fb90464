"""The sandbox core over real sockets: STARTTLS for real, AUTH, the wire, other servers.

The built-in server is the tutor's own (fixture `server`); "external" servers are
aiosmtpd's stock Sink and Postfix's smtp-sink, always on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import io
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.sandbox_servers import (
    PostfixSink,
    StockSink,
    dropping_server,
    refused_port,
    silent_listener,
    smtp_sink_binary,
)
from tests.test_client import Relay
from tutor.client.client import TapRecord
from tutor.client.tlsfacts import tls_facts
from tutor.client.wiredump import hexdump, printable, sides
from tutor.errors import UsageError, UserError
from tutor.explain.annotate import Annotation, annotate
from tutor.sandbox.sandbox import (
    BUILTIN,
    Result,
    Sandbox,
    SlashError,
    Target,
    parse_slash,
    parse_target,
    pipe_lines,
)
from tutor.server.persona import Persona
from tutor.server.runner import TeachingServer
from tutor.server.tlsmaterial import ensure_certificate
from tutor.smtp.authcodec import auth_note, auth_plain, b64_report, decode_auth, shown
from tutor.smtp.events import RELAY_FOLDER, MessageStored, TlsStarted
from tutor.ui.common.lesson_view import exchange_view
from tutor.ui.common.sandbox_view import tls_panel, wire_view

WAIT = 5.0
PLAIN_YOU = "AHlvdQB0dXRvci1wYXNzd29yZA=="  # \0you\0tutor-password
PLAIN_WRONG = "AHlvdQB3cm9uZw=="  # \0you\0wrong


def render(renderable: Any) -> str:
    console = Console(record=True, width=100, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def codes(result: Result) -> list[int]:
    return [s.exchange.code or 0 for s in result.shown]


def annotation(result: Result, index: int = -1) -> Annotation:
    shown_ = result.shown[index]
    reply = shown_.exchange.reply
    assert reply is not None
    command = None if shown_.exchange.kind == "greeting" else shown_.exchange.command
    return annotate(command, reply, shown_.before)


def headline(result: Result, index: int = -1) -> str:
    return annotation(result, index).headline


def wait_until_every_session_closed(server: TeachingServer) -> None:
    capture = server.capture
    assert capture.wait_for(lambda: all(r.closed for r in capture.sessions()), WAIT)


@pytest.fixture
def sandbox(server: TeachingServer) -> Iterator[Sandbox]:
    """The sandbox on the built-in server (the test's own), connected and greeted by it."""
    box = Sandbox(BUILTIN, server=server)
    box.open()
    yield box
    box.close()
    wait_until_every_session_closed(server)


def to_tls(box: Sandbox) -> Result:
    assert codes(box.send("EHLO client.example")) == [250]
    result = box.send("STARTTLS")
    assert codes(result) == [220] and result.tls is not None and not result.error
    return result


# --- TLS facts -------------------------------------------------------------------------------


def test_tls_facts_name_the_certificate_and_the_local_ca(sandbox: Sandbox, tls_dir: Path) -> None:
    result = to_tls(sandbox)
    assert result.tls is not None
    cert_path, _ = ensure_certificate("mx.tutor.test", tls_dir)
    der = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
    facts = tls_facts(result.tls)
    assert facts.version in {"TLSv1.2", "TLSv1.3"} and facts.cipher_bits >= 128
    assert facts.verified is True and facts.ca_file == str(tls_dir / "smtp-tutor-ca.pem")
    cert = facts.cert
    assert cert is not None
    assert cert.subject.startswith("CN=mx.tutor.test")
    assert cert.common_name == "mx.tutor.test"
    assert cert.names == ("DNS:mx.tutor.test", "IP:127.0.0.1", "IP:::1")
    assert not cert.self_signed and cert.issuer_common_name == "smtp-tutor local CA"
    assert cert.sha256.replace(":", "").lower() == hashlib.sha256(der).hexdigest()
    assert cert.not_before < cert.not_after and not cert.expired()
    text = render(tls_panel(result.tls, builtin=True, plain=True))
    assert "CN=mx.tutor.test" in text and "CN=smtp-tutor local CA" in text
    flat = " ".join(text.split())
    assert (
        "Verified: the certificate for mx.tutor.test was signed by the smtp-tutor local CA "
        "you trust" in flat
    )
    assert "RFC 8314 §5.3" in flat
    assert cert.sha256[:20] in text
    # the note tells the learner to greet again (RFC 3207 §4.2)
    assert any("send EHLO again (RFC 3207 §4.2)" in note for note in result.notes)
    assert sandbox.state.tls and not sandbox.state.greeted


def test_exchanges_after_tls_are_marked_encrypted(sandbox: Sandbox) -> None:
    to_tls(sandbox)
    result = sandbox.send("EHLO client.example")
    assert result.shown[0].exchange.tls
    ehlo = result.shown[0].exchange.replies
    assert "250-AUTH PLAIN LOGIN" in ehlo and "250-STARTTLS" not in ehlo
    text = render(exchange_view(result.shown[0].exchange, result.shown[0].before, plain=True))
    assert "C: [TLS] EHLO client.example␍␊" in text
    assert "after STARTTLS" in text  # the annotation knows it is the second greeting


# --- the wire --------------------------------------------------------------------------------


@pytest.fixture
def relay(server: TeachingServer) -> Iterator[Relay]:
    relay = Relay(server.address)
    yield relay
    relay.close()
    wait_until_every_session_closed(server)


def test_the_wire_view_shows_what_a_relay_in_the_middle_saw(relay: Relay) -> None:
    box = Sandbox(Target(*relay.address), insecure=True)  # another server, as far as it knows
    taps: list[TapRecord] = []
    try:
        box.open()
        taps += box.last_tap
        for line in ("EHLO relay.example", "STARTTLS", "EHLO relay.example", "NOOP"):
            result = box.send(line)
            assert not result.error, result.error
            taps += box.last_tap
        client_to_server, server_to_client = relay.seen("c2s"), relay.seen("s2c")
        last = list(box.last_tap)
        box.send("QUIT")
    finally:
        box.close()
    groups = sides(taps)
    assert b"".join(g.wire for g in groups if g.direction == "sent") == client_to_server
    assert b"".join(g.wire for g in groups if g.direction == "received") == server_to_client
    # the last exchange (NOOP under TLS): text beside the ciphertext the relay carried
    [sent, received] = sides(last)
    assert sent.plaintext == b"NOOP\r\n" and sent.tls
    assert client_to_server.endswith(sent.wire) and b"NOOP" not in sent.wire
    assert server_to_client.endswith(received.wire)
    text = render(wire_view(last, plain=True))
    assert "NOOP␍␊" in text and "250 2.0.0 OK␍␊" in text
    assert f"{len(sent.wire)} bytes of TLS ciphertext" in text
    for row in hexdump(sent.wire):
        assert row in text


def test_hexdump_is_bounded_and_its_printable_column_is_safe() -> None:
    data = bytes(range(256))
    rows = hexdump(data, limit=64)
    assert len(rows) == 5 and rows[-1] == "… 192 more bytes"
    assert rows[0].startswith("0000  00 01 02 03")
    assert printable(b"\x1b[2J\x07ok\x7f\xff") == ".[2J.ok.."
    assert all(0x20 <= ord(ch) < 0x7F for row in rows[:-1] for ch in row.split("|")[1])


# --- STARTTLS misuse -------------------------------------------------------------------------


def test_starttls_after_helo_is_a_bad_sequence(sandbox: Sandbox) -> None:
    sandbox.send("HELO client.example")
    result = sandbox.send("STARTTLS")
    assert codes(result) == [503] and result.tls is None
    assert "send EHLO first" in headline(result)
    assert not sandbox.state.tls


def test_starttls_before_ehlo_is_a_bad_sequence(sandbox: Sandbox) -> None:
    result = sandbox.send("STARTTLS")
    assert codes(result) == [503]
    assert "send EHLO first" in headline(result)


def test_starttls_twice_is_refused_under_tls(sandbox: Sandbox) -> None:
    to_tls(sandbox)
    sandbox.send("EHLO client.example")
    result = sandbox.send("STARTTLS")
    assert codes(result) == [503] and result.tls is None
    assert "TLS is already active" in headline(result)
    assert codes(sandbox.send("NOOP")) == [250]  # still encrypted, still usable


def test_starttls_where_it_is_not_offered(tmp_path: Path) -> None:
    server = TeachingServer(tmp_path / "Maildir", Persona(tls=False)).start()
    box = Sandbox(BUILTIN, server=server)
    try:
        box.open()
        ehlo = box.send("EHLO client.example")
        assert "250-STARTTLS" not in ehlo.shown[0].exchange.replies
        result = box.send("STARTTLS")
        assert codes(result) == [454] and result.tls is None
        assert "did not offer STARTTLS" in headline(result)
        box.send("QUIT")
    finally:
        box.close()
        wait_until_every_session_closed(server)
        server.stop()


def test_plaintext_pipelined_after_starttls_is_discarded(
    sandbox: Sandbox, server: TeachingServer
) -> None:
    result = sandbox.pipeline(["EHLO client.example", "STARTTLS", "NOOP"])
    assert codes(result) == [250, 220]  # no reply for NOOP, ever
    assert result.tls is not None
    [note] = [n for n in result.notes if "pipelined" in n]
    assert "threw away 6 bytes" in note and "RFC 3207 §4.2" in note
    started = [e for r in server.capture.sessions() for e in r.events if isinstance(e, TlsStarted)]
    assert [e.discarded for e in started] == [6]
    assert codes(sandbox.send("EHLO client.example")) == [250]  # the session goes on, encrypted
    assert codes(sandbox.send("NOOP")) == [250]


def test_pipelined_after_starttls_on_a_server_without_capture(
    server: TeachingServer,
) -> None:
    box = Sandbox(Target(*server.address), insecure=True)  # no capture to ask
    try:
        box.open()
        result = box.pipeline(["EHLO client.example", "STARTTLS", "NOOP"])
        assert codes(result) == [250, 220]
        assert any("No reply came for them" in note for note in result.notes)
        box.send("QUIT")
    finally:
        box.close()
    wait_until_every_session_closed(server)


def test_pipe_lines_keep_data_last() -> None:
    assert pipe_lines("EHLO x ; MAIL FROM:<a@b.example>;RCPT TO:<c@d.example> ; DATA") == [
        "EHLO x",
        "MAIL FROM:<a@b.example>",
        "RCPT TO:<c@d.example>",
        "DATA",
    ]
    with pytest.raises(SlashError, match="DATA must come last"):
        pipe_lines("DATA ; Subject: x")
    with pytest.raises(SlashError, match="no empty"):
        pipe_lines("NOOP ; ; NOOP")


# --- AUTH ------------------------------------------------------------------------------------


def test_auth_before_tls_is_503_and_the_password_is_shown_decoded(sandbox: Sandbox) -> None:
    sandbox.send("EHLO client.example")
    result = sandbox.send(f"AUTH PLAIN {PLAIN_YOU}")
    assert codes(result) == [503]
    assert result.shown[0].exchange.reply is not None
    assert result.shown[0].exchange.reply.enhanced == "5.5.1"
    assert "not offered before TLS" in headline(result)
    decoding = result.shown[0].auth
    assert decoding is not None and decoding.decoded == b"\0you\0tutor-password"
    note = auth_note(decoding, tls=False)
    assert '"\\0you\\0tutor-password"' in note
    assert "anyone on the path can decode it" in note and "TLS first" in note
    assert not sandbox.state.authenticated


def test_auth_plain_accepted_and_refused(sandbox: Sandbox) -> None:
    to_tls(sandbox)
    sandbox.send("EHLO client.example")
    refused = sandbox.send(f"AUTH PLAIN {PLAIN_WRONG}")
    assert codes(refused) == [535] and not sandbox.state.authenticated
    assert refused.shown[0].auth is not None
    assert refused.shown[0].auth.decoded == b"\0you\0wrong"
    accepted = sandbox.send(f"AUTH PLAIN {PLAIN_YOU}")
    assert codes(accepted) == [235]
    assert sandbox.state.authenticated and sandbox.state.auth_user == "you"
    assert "Logged in as you" in headline(accepted)


def test_auth_login_accepted_and_refused(sandbox: Sandbox) -> None:
    to_tls(sandbox)
    sandbox.send("EHLO client.example")

    def login(user: str, password: str) -> list[Result]:
        results = [sandbox.send("AUTH LOGIN")]
        assert sandbox.state.auth_pending
        for value in (user, password):
            results.append(sandbox.send(base64.b64encode(value.encode()).decode()))
        return results

    start, user, password = login("alice", "not-it")
    assert codes(start) == [334] and "Username:" in headline(start)
    assert user.shown[0].exchange.kind == "auth" and codes(user) == [334]
    assert user.shown[0].auth is not None and user.shown[0].auth.meaning == "the user name"
    assert codes(password) == [535] and not sandbox.state.authenticated
    start, user, password = login("alice", "wonderland")
    assert password.shown[0].auth is not None
    assert password.shown[0].auth.meaning == "the password"
    assert password.shown[0].auth.decoded == b"wonderland"
    assert codes(password) == [235] and sandbox.state.auth_user == "alice"


def test_relay_after_auth_is_captured(sandbox: Sandbox, server: TeachingServer) -> None:
    to_tls(sandbox)
    sandbox.send("EHLO client.example")
    assert codes(sandbox.send("RCPT TO:<carol@elsewhere.example>")) == [503]
    sandbox.send("MAIL FROM:<you@tutor.test>")
    assert codes(sandbox.send("RCPT TO:<carol@elsewhere.example>")) == [550]  # not yet
    sandbox.send("RSET")
    sandbox.send(f"AUTH PLAIN {PLAIN_YOU}")
    sandbox.send("MAIL FROM:<you@tutor.test>")
    relayed = sandbox.send("RCPT TO:<carol@elsewhere.example>")
    assert codes(relayed) == [250] and "accepted for relay" in headline(relayed)
    assert codes(sandbox.send("DATA")) == [354] and sandbox.in_data
    for line in ("Subject: relayed", "", ".dotted"):
        assert sandbox.send(line).data_line == line
    done = sandbox.send(".")
    assert codes(done) == [250] and not sandbox.in_data
    assert done.shown[0].exchange.sent == b"Subject: relayed\r\n\r\n.dotted\r\n.\r\n"
    [stored] = [e for e in done.events if isinstance(e, MessageStored)]
    assert [c.folder for c in stored.copies] == [RELAY_FOLDER]
    [path] = (server.maildir / RELAY_FOLDER / "new").iterdir()
    message = path.read_bytes()
    assert b"with ESMTPSA" in message and b"\ndotted\n" in message  # one dot removed
    sandbox.send("QUIT")


# --- helpers: base64, slash commands, targets --------------------------------------------


def test_base64_helpers() -> None:
    assert auth_plain("you", "tutor-password") == PLAIN_YOU
    report = b64_report(PLAIN_YOU)
    assert report.decoded == b"\0you\0tutor-password"
    assert shown(report.decoded) == "\\0you\\0tutor-password"
    assert b64_report("\\0you\\0tutor-password").encoded == PLAIN_YOU
    assert b64_report("test").decoded is None  # valid base64, but of random bytes
    assert b64_report("hello").encoded == "aGVsbG8="
    assert decode_auth("PLAIN", "*", 0) is None
    bad = decode_auth("PLAIN", "not base64!", 0)
    assert bad is not None and bad.decoded is None
    assert decode_auth("CRAM-MD5", "dXNlcg==", 1) is None


def test_slash_commands_parse_or_say_what_to_type() -> None:
    assert parse_slash("/B64 hello world").argument == "hello world"
    assert parse_slash("/plain you tutor password").words == ["you", "tutor", "password"]
    with pytest.raises(SlashError, match="/help lists them"):
        parse_slash("/nope")
    with pytest.raises(SlashError, match="usage: /plain USER PASS"):
        parse_slash("/plain you")
    with pytest.raises(SlashError, match="usage: /b64 TEXT"):
        parse_slash("/b64")
    with pytest.raises(SlashError, match="takes no argument"):
        parse_slash("/quit now")


@pytest.mark.parametrize(
    ("text", "host", "port", "loopback"),
    [
        ("127.0.0.1:2525", "127.0.0.1", 2525, True),
        ("localhost", "localhost", 25, True),
        ("[::1]:587", "::1", 587, True),
        ("::1", "::1", 25, True),
        ("mx.example.com:25", "mx.example.com", 25, False),
        ("192.0.2.7:465", "192.0.2.7", 465, False),
        ("127.0.0.1.example.com", "127.0.0.1.example.com", 25, False),
    ],
)
def test_targets_and_what_counts_as_loopback(
    text: str, host: str, port: int, loopback: bool
) -> None:
    target = parse_target(text)
    assert (target.host, target.port, target.loopback) == (host, port, loopback)


@pytest.mark.parametrize("text", ["host:0", "host:99999", "host:smtp", "[::1", ":25"])
def test_bad_targets_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_target(text)


# --- servers that are not smtp-tutor's own -----------------------------------------------


def run_transaction(box: Sandbox) -> None:
    box.open()
    assert codes(box.send("EHLO client.example")) == [250]
    assert not box.state.extensions.get("STARTTLS")
    starttls = box.send("STARTTLS")
    assert starttls.tls is None and (starttls.shown[0].exchange.code or 0) >= 400
    assert codes(box.send("MAIL FROM:<you@example.test>")) == [250]
    assert codes(box.send("RCPT TO:<carol@elsewhere.example>")) == [250]
    assert codes(box.send("DATA")) == [354]
    box.send("Subject: to a sink")
    done = box.send(".")
    assert codes(done) == [250] and done.events == []  # no capture: nothing assumed
    assert "Message accepted" in headline(done)
    assert box.state.messages
    quit_ = box.send("QUIT")
    assert codes(quit_) == [221] and quit_.closed and not box.connected


def test_aiosmtpd_stock_sink_server() -> None:
    sink = StockSink()
    box = Sandbox(Target(*sink.address))
    try:
        run_transaction(box)
        assert not box.builtin and box.server is None
    finally:
        box.close()
        sink.close()


def test_postfix_smtp_sink_server() -> None:
    sink = PostfixSink(smtp_sink_binary())
    box = Sandbox(Target(*sink.address))
    try:
        box.open()
        ehlo = box.send("EHLO client.example")
        assert codes(ehlo) == [250]
        assert box.state.server_name == "smtp-sink"
        auth = box.send(f"AUTH PLAIN {PLAIN_YOU}")  # smtp-sink takes it, unencrypted
        assert auth.shown[0].auth is not None
        assert auth.shown[0].auth.decoded == b"\0you\0tutor-password"
        starttls = box.send("STARTTLS")
        assert starttls.tls is None and codes(starttls)[0] >= 500
        assert "does not offer STARTTLS" in headline(starttls)
        for line in ("MAIL FROM:<you@example.test>", "RCPT TO:<carol@elsewhere.example>"):
            assert codes(box.send(line)) == [250]
        assert codes(box.send("DATA")) == [354]
        assert codes(box.send(".")) == [250]
        assert codes(box.send("QUIT")) == [221]
    finally:
        box.close()
        sink.close()


def test_a_refused_connection_is_one_line() -> None:
    with refused_port() as port, pytest.raises(UserError) as caught:
        Sandbox(Target("127.0.0.1", port), timeout=WAIT).open()
    assert str(caught.value) == (
        f"nothing is listening on 127.0.0.1:{port}: the connection was refused "
        "(no server on that port)"
    )


def test_a_silent_server_times_out_in_one_line() -> None:
    with silent_listener() as address, pytest.raises(UserError) as caught:
        Sandbox(Target(*address), timeout=0.3).open()
    message = str(caught.value)
    assert message.startswith(f"127.0.0.1:{address[1]} accepted the connection but sent no")
    assert "within 0.3 s" in message and "\n" not in message


def test_a_dropped_connection_is_one_line_and_reset_recovers(server: TeachingServer) -> None:
    with dropping_server() as address:
        box = Sandbox(Target(*address), timeout=WAIT)
        try:
            box.open()
            result = box.send("EHLO client.example")
        finally:
            box.close()
    assert result.closed and result.shown == []
    assert "closed the connection" in result.error and "/reset" in result.error
    assert "\n" not in result.error
    assert box.send("NOOP").error == "not connected: /reset opens a new session"


def test_reset_opens_a_new_session(sandbox: Sandbox) -> None:
    to_tls(sandbox)
    result = sandbox.reset()
    assert codes(result) == [220] and not sandbox.state.tls
    assert sandbox.tls_info is None
    sandbox.send("QUIT")


def test_implicit_tls_on_the_builtin_server(tmp_path: Path) -> None:
    box = Sandbox(Target("127.0.0.1", 0, builtin=True, implicit_tls=True), maildir=tmp_path)
    try:
        opened = box.open()
        assert opened.tls is not None and opened.shown[0].exchange.tls
        assert any("Implicit TLS (RFC 8314)" in note for note in opened.notes)
        assert all(r.tls for r in box.last_tap)
        assert box.state.tls and "TLS" in box.state.summary()
        ehlo = box.send("EHLO client.example")
        assert codes(ehlo) == [250] and "after STARTTLS" not in annotation(ehlo).detail
        assert "AUTH" in box.state.extensions  # encrypted from the start: AUTH at once
        assert codes(box.send(f"AUTH PLAIN {PLAIN_YOU}")) == [235]
        assert codes(box.send("STARTTLS")) == [503]
        box.send("QUIT")
    finally:
        box.close()


def test_implicit_tls_to_a_named_server_verifies_unless_insecure(
    start_server: Any,
) -> None:
    server = start_server(tls_port=0)
    host, port = next((x.host, x.port) for x in server.listeners if x.implicit_tls)
    with pytest.raises(UserError, match=r"did not verify.*--insecure"):
        Sandbox(Target(host, port, implicit_tls=True), timeout=WAIT).open()
    box = Sandbox(Target(host, port, implicit_tls=True), insecure=True, timeout=WAIT)
    try:
        opened = box.open()
        assert opened.tls is not None and not opened.tls.verified
        assert codes(box.send("QUIT")) == [221]
    finally:
        box.close()
    wait_until_every_session_closed(server)
