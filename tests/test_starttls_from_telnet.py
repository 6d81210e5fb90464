"""STARTTLS typed into telnet or nc: what came instead of a TLS handshake is said in serve's
line log and on the dashboard, with what to do, and told apart from a real handshake that
failed (docs/server.md, "STARTTLS from telnet").

Real clients on real sockets against the in-process server; the log and the dashboard
render the server's own events through their real render paths."""

from __future__ import annotations

import io
import json
import socket
import ssl
import time
from pathlib import Path

import pytest
from rich.console import Console

from tests.support import RawClient, closed_session, pipe_console
from tutor.maildir import session_store
from tutor.paths import tls_dir
from tutor.sandbox.dashboard_model import TLS_PLAINTEXT_WARNING, DashboardModel
from tutor.sandbox.serve import ServeOptions
from tutor.server.runner import TeachingServer
from tutor.smtp.events import TLS_HANDSHAKE, TLS_PLAINTEXT, TLS_SILENT, Event, SessionClosed
from tutor.ui.serve.dashboard_view import DashboardView, Header, Transcripts
from tutor.ui.serve.serve_log import ServeLog

TIMEOUT = 10.0


def starttls_accepted(server: TeachingServer) -> tuple[RawClient, int]:
    """A client whose STARTTLS got its 220, and its port."""
    client = RawClient(server.address)
    client.cmd("EHLO student.example")
    assert client.code("STARTTLS").startswith("220 ")
    return client, client.sock.getsockname()[1]


def log_lines(events: list[Event]) -> list[str]:
    """What `serve --log` prints for these events in a pipe (its direct path), checked
    against rich's own rendering of the same lines."""
    console, out = pipe_console()
    rich_console, rendered = pipe_console(record=True)
    log, rich_log = ServeLog(console), ServeLog(rich_console)
    for event in events:
        log.show(event)
        rich_log.show(event)
    assert out.getvalue() == rendered.getvalue()
    return out.getvalue().splitlines()


def dashboard_screen(server: TeachingServer, events: list[Event]) -> str:
    """The dashboard at its design size, 120×40, with this session picked."""
    model = DashboardModel()
    console = Console(record=True, width=120, file=io.StringIO())
    transcripts = Transcripts(console)
    for event in events:
        model.feed(event)
        transcripts.add(event)
    options = ServeOptions(None, 0, server.maildir, False, 300.0, 1000, None)
    view = DashboardView(model, transcripts, Header.for_server(server, options))
    console.print(view.render(console, 120, 40, time.monotonic()))
    return console.export_text()


def test_plain_text_after_starttls_is_explained_with_the_client_to_use(
    server: TeachingServer,
) -> None:
    client, port = starttls_accepted(server)
    client.send_raw(b"EHLO again\r\n")  # what a student types into telnet next
    assert client.at_eof()  # the server closes: no TLS can follow
    client.close()
    events = closed_session(server, port)
    closed = events[-1]
    assert isinstance(closed, SessionClosed)
    assert (closed.reason, closed.tls_failure, closed.tls_detail) == (
        "tls",
        TLS_PLAINTEXT,
        "EHLO again",
    )

    last = log_lines(events)[-1]
    port = server.address[1]
    assert last.startswith("#")
    assert (
        'closed: the client sent plain text after STARTTLS ("EHLO again"), not a TLS '
        "handshake — telnet and nc cannot speak TLS: use openssl s_client -starttls smtp "
        f"-crlf -quiet -connect 127.0.0.1:{port}"
    ) in last

    screen = dashboard_screen(server, events)
    connections = screen.split("TRANSCRIPT")[0]
    assert "closed: no TLS" in connections
    assert f"! {TLS_PLAINTEXT_WARNING}" in connections  # whole, not cut short
    transcript = " ".join(screen.split("TRANSCRIPT")[1].split("STORED MESSAGES")[0].split())
    assert f"use openssl s_client -starttls smtp -crlf -quiet -connect 127.0.0.1:{port}" in (
        transcript.replace("│", "")
    )


def test_lines_pasted_behind_starttls_count_as_plain_text(server: TeachingServer) -> None:
    """nc with a pasted block: the next line is already read when the 220 goes out; the
    client then gives up. What it had sent is what came instead of a handshake."""
    client = RawClient(server.address)
    port = client.sock.getsockname()[1]
    client.cmd("EHLO student.example")
    client.send_raw(b"STARTTLS\r\nMAIL FROM:<you@tutor.test>\r\n")
    assert client.reply()[0].startswith("220 ")
    client.sock.shutdown(socket.SHUT_WR)
    assert client.at_eof()
    client.close()
    closed = closed_session(server, port)[-1]
    assert isinstance(closed, SessionClosed)
    assert (closed.tls_failure, closed.tls_detail) == (TLS_PLAINTEXT, "MAIL FROM:<you@tutor.test>")


def test_a_real_handshake_that_fails_says_why_and_is_not_called_plain_text(
    server: TeachingServer,
) -> None:
    client, port = starttls_accepted(server)
    verifying = ssl.create_default_context()  # trusts the system's CAs, not the tutor's
    try:
        verifying.wrap_socket(client.sock, server_hostname="mx.tutor.test")
    except ssl.SSLCertVerificationError:
        pass
    else:
        raise AssertionError("the tutor's certificate must not verify without its CA")
    client.close()
    events = closed_session(server, port)
    closed = events[-1]
    assert isinstance(closed, SessionClosed)
    assert (closed.tls_failure, closed.tls_detail) == (TLS_HANDSHAKE, "TLSV1_ALERT_UNKNOWN_CA")

    last = log_lines(events)[-1]
    assert "closed: the TLS handshake failed (TLSV1_ALERT_UNKNOWN_CA)" in last
    assert "plain text" not in last and "telnet" not in last
    ca_file = str(tls_dir() / "smtp-tutor-ca.pem")
    assert (
        f"the client does not trust the server's certificate: give it the tutor's CA file, "
        f"{ca_file}"
    ) in last

    connections = dashboard_screen(server, events).split("TRANSCRIPT")[0]
    assert "closed: TLS failed" in connections
    assert "! certificate refused: give the CA" in connections


def test_a_client_that_hangs_up_after_starttls_is_no_plain_text(server: TeachingServer) -> None:
    client, port = starttls_accepted(server)
    client.sock.shutdown(socket.SHUT_WR)
    assert client.at_eof()
    client.close()
    events = closed_session(server, port)
    closed = events[-1]
    assert isinstance(closed, SessionClosed)
    assert (closed.tls_failure, closed.tls_detail) == (TLS_SILENT, "closed")
    last = log_lines(events)[-1]
    assert last.endswith("closed: the client hung up after STARTTLS without starting TLS")
    connections = dashboard_screen(server, events).split("TRANSCRIPT")[0]
    assert "closed: no TLS" in connections and "! " not in connections


def test_what_the_client_sent_is_shown_never_obeyed(server: TeachingServer) -> None:
    client, port = starttls_accepted(server)
    client.send_raw(b"[bold]x[/] \x1b]0;pwned\x07 \xe2\x80\xae\xff\r\n")
    assert client.at_eof()
    client.close()
    events = closed_session(server, port)
    last = log_lines(events)[-1]
    assert 'STARTTLS ("[bold]x[/] \\x1b]0;pwned\\x07 \\u202e\\xff")' in last
    screen = dashboard_screen(server, events)
    assert "\\x1b]0;pwned\\x07" in screen
    for char in ("\x1b", "\x07", "\u202e"):
        assert char not in last and char not in screen


def test_sessions_stored_before_the_server_said_why_still_read(tmp_path: Path) -> None:
    """A session file written before SessionClosed had tls_failure (and SessionOpened had
    local_host) reads back, and is shown as it was then."""
    old_opened = {"$type": "SessionOpened", "session": 3, "at": 1.0, "peer_host": "::1"}
    old_opened |= {"peer_port": 40000, "local_port": 2525, "refused": False}
    old_closed = {"$type": "SessionClosed", "session": 3, "at": 2.0, "reason": "tls"}
    header = {"format": session_store.FORMAT, "version": 1, "session": 3, "total": 2, "head": 2}
    path = tmp_path / "3.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in (header, old_opened, old_closed)))
    stored = session_store.read_session(path)
    assert stored is not None
    _opened, closed = stored.events
    assert isinstance(closed, SessionClosed) and closed.tls_failure == ""
    assert log_lines(list(stored.events))[-1] == "#3   closed: TLS handshake failed"
    model = DashboardModel()
    for event in stored.events:
        model.feed(event)
    [row] = model.rows()
    assert row.stage == "closed: TLS failed" and row.warning == ""


def test_the_log_names_the_address_the_client_used(start_server: object) -> None:
    """Over IPv6 the command to use names [::1], as the client reached it."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    server: TeachingServer = start_server(hosts=("::1",))  # type: ignore[operator]
    try:
        sock = socket.create_connection(server.address, timeout=TIMEOUT)
    except OSError:
        pytest.skip("no ::1 on this machine")
    with sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(b"EHLO v6.example\r\nSTARTTLS\r\n")
        while not reader.readline().startswith(b"220 "):
            pass
        sock.sendall(b"QUIT\r\n")  # plain text where the handshake should be
        assert reader.read() == b""
    events: list[Event] = []
    while not (events and isinstance(events[-1], SessionClosed)):
        events.append(server.capture.events.get(timeout=TIMEOUT))
    port = server.address[1]
    assert log_lines(events)[-1].endswith(f"-connect [::1]:{port}")
