"""What the teaching server does with the bytes a client really sends (docs/server.md, "Decisions").

Line limits at their exact boundaries, NUL and non-UTF-8 bytes, bare line feeds in
commands and in DATA, terminal-hostile names echoed back, floods, sequence errors,
pipelining, STARTTLS edge cases and clients that misbehave while others are served.
Everything runs over real sockets; waits are on the server's capture or on socket reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import RawClient
from tutor.server.capture import SessionRecord
from tutor.server.persona import Persona
from tutor.server.runner import TeachingServer
from tutor.smtp.events import BareLineFeed, Exchange, SessionClosed, TlsStarted

WAIT = 5.0
HEADERS = b"From: Bugs Bunny\r\nTo: Daffy Duck\r\nSubject: input test\r\n\r\n"


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def client(server: TeachingServer) -> Iterator[RawClient]:
    with RawClient(server.address) as connected:
        yield connected


def session_of(server: TeachingServer, client: RawClient) -> SessionRecord:
    """The server's record of this client's session (found by the client's own address)."""
    host, port = client.sock.getsockname()[:2]
    record = server.capture.find_peer(host, port)
    assert record is not None, "the server has no record of this client"
    return record


def stored_files(server: TeachingServer) -> list[Path]:
    return sorted(server.maildir.glob("*/new/*"))


def read_raw_reply(client: RawClient) -> bytes:
    """One complete reply exactly as it came over the wire (all lines, with CRLFs)."""
    data = b""
    while True:
        line = client.file.readline()
        assert line, f"connection closed after {data!r}"
        data += line
        if line[3:4] != b"-":
            return data


def raw_cmd(client: RawClient, line: bytes) -> bytes:
    client.send_raw(line + b"\r\n")
    return read_raw_reply(client)


def start_message(client: RawClient, recipient: str = "you@tutor.test") -> None:
    assert client.code("EHLO client.example").startswith("250 ")
    assert client.code("MAIL FROM:<sender@example.test>").startswith("250 2.1.0")
    assert client.code(f"RCPT TO:<{recipient}>").startswith("250 2.1.5")
    assert client.code("DATA").startswith("354 ")


def send_message(client: RawClient, body: bytes) -> str:
    """DATA after the envelope: the given (already CRLF, already stuffed) body, then the dot."""
    start_message(client)
    client.send_raw(HEADERS + body + b".\r\n")
    return client.reply()[-1]


def wait_for(server: TeachingServer, condition: object) -> None:
    assert server.capture.wait_for(condition, timeout=WAIT)  # type: ignore[arg-type]


def wait_closed(server: TeachingServer, record: SessionRecord) -> SessionClosed:
    wait_for(server, lambda: record.closed is not None)
    assert record.closed is not None
    return record.closed


# --- command line limits (RFC 5321 §4.5.3.1.4: 512 octets including CRLF) --------------------


def test_command_line_of_512_octets_is_accepted(client: RawClient) -> None:
    line = b"NOOP " + b"x" * (512 - len(b"NOOP \r\n"))
    assert len(line + b"\r\n") == 512
    assert client.code(line) == "250 2.0.0 OK"


def test_command_line_of_513_octets_is_refused(client: RawClient) -> None:
    line = b"NOOP " + b"x" * (513 - len(b"NOOP \r\n"))
    assert len(line + b"\r\n") == 513
    assert client.code(line).startswith("500 5.5.2 Line too long")
    assert client.code("NOOP") == "250 2.0.0 OK", "the session goes on"


def test_very_long_command_line_gets_one_reply(client: RawClient) -> None:
    assert client.cmd(b"HELO " + b"a" * 5000) == [
        "500 5.5.2 Line too long: a command line may be at most 512 octets including CRLF"
    ]
    assert client.code("NOOP") == "250 2.0.0 OK", "the rest of the long line was not a command"


# --- text line limits in DATA (RFC 5321 §4.5.3.1.6: 1000 octets including CRLF) ---------------


def test_text_line_of_1000_octets_is_accepted(server: TeachingServer, client: RawClient) -> None:
    line = b"a" * 998 + b"\r\n"
    assert len(line) == 1000
    assert send_message(client, line).startswith("250 2.0.0 OK id=")
    (stored,) = stored_files(server)
    assert b"\n" + b"a" * 998 + b"\n" in stored.read_bytes()


def test_text_line_of_1001_octets_is_refused_after_the_dot(
    server: TeachingServer, client: RawClient
) -> None:
    line = b"a" * 999 + b"\r\n"
    assert len(line) == 1001
    assert send_message(client, line) == (
        "500 5.5.2 Line too long: a text line may be at most 1000 octets including CRLF; not stored"
    )
    assert stored_files(server) == []
    assert session_of(server, client).messages == []
    # The transaction is over: the client starts a new one.
    assert client.code("MAIL FROM:<sender@example.test>").startswith("250 2.1.0")


def test_dot_stuffed_line_counts_its_unstuffed_length(
    server: TeachingServer, client: RawClient
) -> None:
    line = b".." + b"a" * 997 + b"\r\n"  # 1001 octets on the wire, 1000 once unstuffed
    assert len(line) == 1001
    assert send_message(client, line).startswith("250 2.0.0 OK id=")
    (stored,) = stored_files(server)
    content = stored.read_bytes()
    assert b"\n." + b"a" * 997 + b"\n" in content
    assert b".." + b"a" * 997 not in content


# --- bytes that are not text ---------------------------------------------------------------------


def test_nul_bytes_in_commands_are_refused(client: RawClient) -> None:
    nul_reply = "500 5.5.2 Syntax error: NUL bytes are not allowed in commands"
    assert client.code(b"NOOP\x00") == nul_reply
    assert client.code("HELO client.example").startswith("250 ")
    assert client.code(b"MAIL FROM:<a\x00b@example.test>") == nul_reply
    assert client.code("MAIL FROM:<ab@example.test>").startswith("250 2.1.0"), "still serving"


@pytest.mark.parametrize(
    "line",
    [b"HELO \xff\xfeclient", b"HELO caf\xe9.example"],
    ids=["HELO-ff-fe", "HELO-latin1"],
)
def test_non_utf8_helo_is_refused_without_echoing_the_bytes(client: RawClient, line: bytes) -> None:
    answer = raw_cmd(client, line)
    assert answer == b"500 5.5.2 Syntax error: the command is not valid UTF-8\r\n"
    assert client.code("HELO client.example").startswith("250 mx.tutor.test Hello client.example")


def test_non_utf8_sender_is_refused_without_echoing_the_bytes(client: RawClient) -> None:
    assert client.code("EHLO client.example").startswith("250 ")
    answer = raw_cmd(client, b"MAIL FROM:<\xe9t\xe9@example.test>")
    assert answer.startswith(b"500 5.5.2 ")
    assert answer.isascii() and b"\xe9" not in answer
    assert client.code("MAIL FROM:<ete@example.test>").startswith("250 2.1.0")


def test_utf8_helo_name_is_echoed_as_ascii(client: RawClient) -> None:
    answer = raw_cmd(client, "HELO café.example".encode())
    assert answer.startswith(b"250 mx.tutor.test Hello ")
    assert answer.isascii()


# --- bare line feeds ----------------------------------------------------------------------------


def test_command_with_bare_lf_is_accepted_and_noted(
    server: TeachingServer, client: RawClient
) -> None:
    client.send_raw(b"EHLO client.example\n")
    assert client.reply()[0] == "250-mx.tutor.test Hello client.example [127.0.0.1]"
    client.send_raw(b"NOOP\n")
    assert client.reply() == ["250 2.0.0 OK"]

    record = session_of(server, client)
    wait_for(server, lambda: any(isinstance(e, BareLineFeed) for e in record.events))
    notes = [e for e in record.events if isinstance(e, BareLineFeed)]
    assert [note.in_data for note in notes] == [False], "noted once, outside DATA"
    ehlo = next(e for e in record.exchanges if e.verb == "EHLO")
    assert ehlo.line_ending == "LF"
    assert ehlo.sent == b"EHLO client.example\n"


def test_data_with_bare_lf_never_ends_on_lf_dot_lf(
    server: TeachingServer, client: RawClient
) -> None:
    start_message(client)
    client.send_raw(b"Subject: sent by plain nc\n\nhello\n.\n")

    record = session_of(server, client)
    wait_for(server, lambda: any(isinstance(e, BareLineFeed) and e.in_data for e in record.events))
    assert record.messages == []
    assert stored_files(server) == []

    # Only CRLF.CRLF ends the message; the "\n.\n" above is part of its text.
    client.send_raw(b"\r\n.\r\n")
    reply = client.reply()
    assert reply[-1].startswith("250 2.0.0 OK id=")
    assert client.code("NOOP") == "250 2.0.0 OK", "exactly one reply for the whole message"
    (stored,) = stored_files(server)
    assert b"hello\n.\n" in stored.read_bytes()
    assert len(record.messages) == 1


# --- clients that go away, or stall ---------------------------------------------------------


def test_client_disconnecting_mid_data_stores_nothing(server: TeachingServer) -> None:
    with RawClient(server.address) as quitter:
        start_message(quitter)
        quitter.send_raw(HEADERS + b"half a message, and then the cable is pulled")
        record = session_of(server, quitter)

    with RawClient(server.address) as next_client:
        assert send_message(next_client, b"complete\r\n").startswith("250 2.0.0 OK id=")
    (stored,) = stored_files(server)
    assert b"complete" in stored.read_bytes()

    closed = wait_closed(server, record)
    assert closed.reason == "client"
    assert record.messages == []
    assert len(stored_files(server)) == 1


def test_client_hanging_up_without_quit_frees_its_connection(start_server: Any) -> None:
    server = start_server(Persona(max_connections=1))
    with RawClient(server.address) as first:
        assert first.code("EHLO client.example").startswith("250 ")
        record = session_of(server, first)
    assert wait_closed(server, record).reason == "client"
    with RawClient(server.address) as second:
        assert second.greeting == ["220 mx.tutor.test ESMTP smtp-tutor ready"]


def test_another_client_is_served_while_one_is_stuck_in_data(server: TeachingServer) -> None:
    with RawClient(server.address) as slow, RawClient(server.address) as fast:
        start_message(slow)
        slow.send_raw(HEADERS + b"the first half of a line")

        assert send_message(fast, b"from the fast client\r\n").startswith("250 2.0.0 OK")
        assert len(stored_files(server)) == 1

        slow.send_raw(b", and the rest\r\n.\r\n")
        assert slow.reply()[-1].startswith("250 2.0.0 OK id=")
    texts = sorted(path.read_bytes() for path in stored_files(server))
    assert len(texts) == 2
    assert any(b"the first half of a line, and the rest" in text for text in texts)


# --- names that could attack a terminal --------------------------------------------------------


def test_rich_markup_in_helo_is_echoed_literally(client: RawClient) -> None:
    first = client.cmd("EHLO [bold red]x[/]")[0]
    assert first == "250-mx.tutor.test Hello [bold red]x[/] [127.0.0.1]"


@pytest.mark.parametrize(
    ("name", "forbidden"),
    [
        ("\x1b]0;pwned\x07", ["\x1b", "\x07"]),
        ("\x1b[2J\x1b[31mred", ["\x1b"]),
        ("evil\u202etxt.exe", ["\u202e"]),
        ("a\u2066b\u2069c", ["\u2066", "\u2069"]),
        ("csi\u009b31m", ["\u009b"]),
    ],
    ids=["osc-title", "csi-clear", "rlo", "isolates", "c1-csi"],
)
def test_control_characters_in_ehlo_are_not_echoed(
    client: RawClient, name: str, forbidden: list[str]
) -> None:
    answer = raw_cmd(client, f"EHLO {name}".encode())
    assert answer.startswith(b"250-mx.tutor.test Hello ")
    text = answer.decode("utf-8")
    for character in forbidden:
        assert character not in text
    assert client.code("NOOP") == "250 2.0.0 OK"


def test_bidi_control_in_a_utf8_sender_is_not_echoed(client: RawClient) -> None:
    assert client.code("EHLO client.example").startswith("250 ")
    answer = raw_cmd(client, "MAIL FROM:<gn\u202eu@example.test> SMTPUTF8".encode())
    assert answer.startswith(b"250 2.1.0 <")
    assert "\u202e" not in answer.decode("utf-8")


def test_control_characters_in_help_topic_are_not_echoed(client: RawClient) -> None:
    answer = raw_cmd(client, b"HELP \x1b[31mMAIL\x07")
    assert answer.startswith(b"504 5.5.1 No help for ")
    assert b"\x1b" not in answer and b"\x07" not in answer


# --- floods -----------------------------------------------------------------------------------


def test_flood_of_unknown_commands_ends_the_session(
    server: TeachingServer, client: RawClient
) -> None:
    limit = Persona().max_unknown_commands
    client.send_raw(b"FROB\r\n" * limit)  # all pipelined in one send
    for _ in range(limit - 1):
        assert client.reply() == ["500 5.5.2 Command not recognized: FROB"]
    assert client.reply() == [
        "421 4.7.0 mx.tutor.test Too many unrecognized commands, closing connection"
    ]
    assert client.at_eof()
    assert wait_closed(server, session_of(server, client)).reason == "unknown-commands"
    with RawClient(server.address) as fresh:
        assert fresh.code("NOOP") == "250 2.0.0 OK", "other clients are not affected"


def _exchanges_after(record: SessionRecord, code: int) -> list[Exchange]:
    exchanges = record.exchanges
    index = next(i for i, e in enumerate(exchanges) if e.code == code)
    return exchanges[index + 1 :]


def test_no_command_is_read_after_the_421_for_unknown_commands(
    server: TeachingServer, client: RawClient
) -> None:
    limit = Persona().max_unknown_commands
    pipelined = b"FROB\r\n" * limit + b"MAIL FROM:<a@example.test>\r\n"
    client.send_raw(b"HELO client.example\r\n" + pipelined)
    replies = [client.reply() for _ in range(limit + 1)]
    assert replies[-1][0].startswith("421 4.7.0")
    assert client.at_eof()
    record = session_of(server, client)
    wait_closed(server, record)
    # The capture is the truth: it must not claim replies the client never received.
    answered = [(e.command, e.replies) for e in _exchanges_after(record, 421) if e.replies]
    assert answered == []


def test_no_command_is_read_after_quit(server: TeachingServer, client: RawClient) -> None:
    client.send_raw(b"HELO client.example\r\nQUIT\r\nNOOP\r\n")
    assert client.reply()[0].startswith("250 ")
    assert client.reply() == ["221 2.0.0 mx.tutor.test closing connection"]
    assert client.at_eof()
    record = session_of(server, client)
    assert wait_closed(server, record).reason == "quit"
    answered = [(e.command, e.replies) for e in _exchanges_after(record, 221) if e.replies]
    assert answered == []


# --- addresses ----------------------------------------------------------------------------------


def test_null_sender_is_accepted(client: RawClient) -> None:
    assert client.code("EHLO client.example").startswith("250 ")
    assert client.code("MAIL FROM:<>") == "250 2.1.0 <> sender address syntactically correct"


@pytest.mark.parametrize("postmaster", ["postmaster", "PostMaster", "POSTMASTER"])
def test_postmaster_without_domain_is_accepted(client: RawClient, postmaster: str) -> None:
    assert client.code("EHLO client.example").startswith("250 ")
    assert client.code("MAIL FROM:<sender@example.test>").startswith("250 2.1.0")
    assert client.code(f"RCPT TO:<{postmaster}>").startswith("250 2.1.5")


def test_sender_without_angle_brackets_is_refused(client: RawClient) -> None:
    assert client.code("EHLO client.example").startswith("250 ")
    assert client.code("MAIL FROM:you@tutor.test").startswith("501 5.5.4 ")
    assert client.code("MAIL FROM: <you@tutor.test>").startswith("250 2.1.0"), "a space is fine"


# --- sequence errors and pipelining ---------------------------------------------------------


def test_mail_before_helo_is_a_sequence_error(client: RawClient) -> None:
    assert client.code("MAIL FROM:<sender@example.test>").startswith("503 5.5.1 ")


def test_rcpt_before_mail_is_a_sequence_error(client: RawClient) -> None:
    assert client.code("HELO client.example").startswith("250 ")
    assert client.code("RCPT TO:<you@tutor.test>").startswith("503 5.5.1 ")


def test_data_before_rcpt_is_a_sequence_error(client: RawClient) -> None:
    assert client.code("HELO client.example").startswith("250 ")
    assert client.code("MAIL FROM:<sender@example.test>").startswith("250 2.1.0")
    assert client.code("RCPT TO:<nobody@tutor.test>").startswith("550 5.1.1")
    assert client.code("DATA").startswith("503 5.5.1 "), "a refused RCPT does not count"


def test_pipelined_commands_get_their_replies_in_order(
    server: TeachingServer, client: RawClient
) -> None:
    client.send_raw(
        b"EHLO client.example\r\n"
        b"MAIL FROM:<sender@example.test>\r\n"
        b"RCPT TO:<nobody@tutor.test>\r\n"
        b"RCPT TO:<you@tutor.test>\r\n"
        b"DATA\r\n"
    )
    assert client.reply()[-1] == "250 HELP"  # the last line of the EHLO reply
    assert client.reply()[0].startswith("250 2.1.0 <sender@example.test>")
    assert client.reply()[0].startswith("550 5.1.1 <nobody@tutor.test>")
    assert client.reply()[0].startswith("250 2.1.5 <you@tutor.test>")
    assert client.reply()[0].startswith("354 ")
    client.send_raw(HEADERS + b"pipelined\r\n.\r\nQUIT\r\n")
    assert client.reply()[0].startswith("250 2.0.0 OK id=")
    assert client.reply()[0].startswith("221 2.0.0")
    assert len(stored_files(server)) == 1


# --- STARTTLS -----------------------------------------------------------------------------------


def test_starttls_after_helo_is_a_sequence_error(client: RawClient) -> None:
    assert client.code("HELO client.example").startswith("250 ")
    assert client.code("STARTTLS").startswith("503 5.5.1 ")
    assert client.code("NOOP") == "250 2.0.0 OK", "still in plaintext, still serving"


def test_plaintext_pipelined_after_starttls_is_discarded(
    server: TeachingServer, client: RawClient
) -> None:
    assert client.code("EHLO client.example").startswith("250 ")
    injected = b"MAIL FROM:<attacker@example.test>\r\nRCPT TO:<you@tutor.test>\r\n"
    client.send_raw(b"STARTTLS\r\n" + injected)
    assert client.reply() == ["220 2.0.0 Ready to start TLS"]
    client.starttls()

    # The injected commands were thrown away: the session starts again from scratch.
    assert client.code("MAIL FROM:<you@tutor.test>").startswith("503 5.5.1 ")
    assert client.code("EHLO client.example").startswith("250 ")
    assert client.code("DATA").startswith("503 5.5.1 ")

    record = session_of(server, client)
    wait_for(server, lambda: any(isinstance(e, TlsStarted) for e in record.events))
    started = next(e for e in record.events if isinstance(e, TlsStarted))
    assert started.discarded == len(injected)
    assert not any(e.sent.startswith(b"MAIL FROM:<attacker") for e in record.exchanges)


def test_commands_before_a_half_close_are_all_answered(server: TeachingServer) -> None:
    """A client may pipeline QUIT and close its side at once (printf … | nc -N does)."""
    import socket as socket_module

    with socket_module.create_connection(server.address, timeout=10) as sock:
        sock.sendall(b"HELO a.b.c\r\nNOOP\r\nQUIT\r\n")
        sock.shutdown(socket_module.SHUT_WR)
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    lines = received.decode().splitlines()
    assert lines[1].startswith("250 mx.tutor.test Hello")
    assert lines[2] == "250 2.0.0 OK"
    assert lines[3] == "221 2.0.0 mx.tutor.test closing connection"


def test_bare_lf_message_sent_in_one_burst_with_data_is_reported(server: TeachingServer) -> None:
    """Plain nc pastes DATA and the message at once: the warning must not wait for more bytes."""
    import socket as socket_module

    with socket_module.create_connection(server.address, timeout=10) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(b"HELO a\nMAIL FROM:<a@example.test>\nRCPT TO:<you@tutor.test>\n")
        for _ in range(3):
            reader.readline()
        sock.sendall(b"DATA\nSubject: x\n\nbody\n.\n")
        assert reader.readline().startswith(b"354 ")
        assert server.capture.wait_for(
            lambda: any(
                isinstance(e, BareLineFeed) and e.in_data
                for r in server.capture.sessions()
                for e in r.events
            ),
            5,
        )
