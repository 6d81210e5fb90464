"""serve's live dashboard: the model fed by real clients, the view, the frame-rate bound."""

from __future__ import annotations

import io
import queue
import threading
import time
from collections.abc import Callable

import pytest
from rich.console import Console
from rich.live import Live

from tests.support import RawClient
from tutor.sandbox.dashboard_model import (
    BARE_LF_WARNING,
    STUCK_IN_DATA,
    DashboardModel,
)
from tutor.sandbox.serve import ServeOptions
from tutor.server.runner import TeachingServer
from tutor.smtp.events import Event, Exchange, SessionClosed, SessionOpened
from tutor.smtp.wire import host_port
from tutor.ui.serve.dashboard import Dashboard
from tutor.ui.serve.dashboard_view import DashboardView, Header, Transcripts

CLIENTS = 40
HOSTILE = ("EHLO [bold red]x[/]", b"EHLO \x1b]0;pwned\x07", "HELO \u202eevil")
UNSAFE = ("\x1b", "\x07", "\u202e")


def header_for(server: TeachingServer) -> Header:
    options = ServeOptions(None, 0, server.maildir, False, 300.0, 1000, None)
    return Header.for_server(server, options)


def drain(events: queue.SimpleQueue[Event]) -> list[Event]:
    out = []
    while True:
        try:
            out.append(events.get_nowait())
        except queue.Empty:
            return out


def message(number: int) -> bytes:
    """Even clients write headers that match the envelope; odd ones claim someone else."""
    sender = f"student{number}@example.test"
    if number % 2 == 0:
        head = f"From: {sender}\r\nTo: you@tutor.test\r\n"
    else:
        head = "From: Bugs Bunny <bugs@looney.example>\r\nTo: Daffy Duck\r\n"
    return (head + f"Subject: hello {number}\r\n\r\nbody {number}\r\n.\r\n").encode()


def run_concurrently(count: int, work: Callable[[int], None]) -> None:
    """Run work(0..count-1) in threads started together; re-raise the first failure."""
    start = threading.Barrier(count)
    failures: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            start.wait(timeout=10)
            work(number)
        except BaseException as error:  # reported below, in the test's thread
            failures.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    if failures:
        raise failures[0]


def test_model_and_view_with_forty_concurrent_real_clients(server: TeachingServer) -> None:
    clients: dict[int, RawClient] = {}
    addresses: dict[int, str] = {}

    def session(number: int) -> None:
        client = RawClient(server.address)
        clients[number] = client
        host, port = client.sock.getsockname()[:2]
        addresses[number] = host_port(host, port)
        assert client.code(f"EHLO c{number}.example").startswith("250 ")
        assert client.code(f"MAIL FROM:<student{number}@example.test>").startswith("250 ")
        assert client.code("RCPT TO:<you@tutor.test>").startswith("250 ")
        assert client.code("DATA").startswith("354 ")
        client.send_raw(message(number))
        assert client.reply()[-1].startswith("250 2.0.0 OK id=")

    hostile = RawClient(server.address)
    lf_only = RawClient(server.address)
    try:
        run_concurrently(CLIENTS, session)
        for line in HOSTILE:
            hostile.cmd(line)
        lf_only.send_raw(b"helo lf.example\n")
        assert lf_only.reply()[0].startswith("250 ")
        # every reply above was read, and the capture publishes before it replies:
        # the queue now holds every event of every session so far
        model = DashboardModel()
        for event in drain(server.capture.events):
            model.feed(event)

        assert model.total_sessions == CLIENTS + 2
        assert model.total_messages == CLIENTS
        assert model.active_count == CLIENTS + 2
        rows = {row.client: row for row in model.rows()}
        for number, address in addresses.items():
            row = rows[address]
            assert row.helo == f"EHLO c{number}.example"
            assert row.stage == "greeted"  # the transaction is over once the message is stored
            assert row.security == "plain"
            assert row.last_code == 250
            assert row.last_reply == "250 Message accepted and queued"
            assert len(row.messages) == 1 and row.warning == ""
        lf_row = next(row for row in rows.values() if row.helo == "HELO lf.example")
        assert lf_row.warning == BARE_LF_WARNING
        badges = {info.event.sender: info.badge for info in model.messages}
        assert badges["student2@example.test"] == "= match"
        assert badges["student3@example.test"] == "! differ: From, To"

        # the view, recorded: every client, its HELO name, the badges
        console = Console(record=True, width=100, file=io.StringIO())
        transcripts = Transcripts(console)
        view = DashboardView(model, transcripts, header_for(server))
        console.print(view.render(console, 100, 200, time.monotonic()))
        screen = console.export_text()
        for number, address in addresses.items():
            assert address in screen
            assert f"EHLO c{number}.example" in screen
        assert "! differ: From, To" in screen and "= match" in screen
        assert f"! {BARE_LF_WARNING}" in screen
        assert "CONNECTIONS  42 active" in screen

        # the hostile session, selected: its names shown literally, never obeyed
        hostile_port = hostile.sock.getsockname()[1]
        model.selected = next(
            row.session for row in model.rows() if row.client.endswith(f":{hostile_port}")
        )
        transcripts = Transcripts(console)
        for event in server.capture.session(model.selected).events:  # type: ignore[union-attr]
            transcripts.add(event)
        view = DashboardView(model, transcripts, header_for(server))
        console.print(view.render(console, 100, 200, time.monotonic()))
        screen = console.export_text()
        assert "C: EHLO [bold red]x[/]␍␊" in screen
        assert "C: EHLO \\x1b]0;pwned\\x07␍␊" in screen
        assert "C: HELO \\u202eevil␍␊" in screen
        assert "HELO \\u202eevil" in screen.split("TRANSCRIPT")[0]  # its row, too
        written = console.file.getvalue()  # type: ignore[attr-defined]
        for char in UNSAFE:
            assert char not in screen and char not in written

        # everyone quits: the rows say so, nothing is counted twice
        for client in [*clients.values(), hostile]:
            assert client.code("QUIT").startswith("221 ")
        lf_only.close()
        assert server.capture.wait_for(
            lambda: all(r.closed is not None for r in server.capture.sessions()), timeout=10
        )
        for event in drain(server.capture.events):
            model.feed(event)
        assert model.active_count == 0
        assert model.total_sessions == CLIENTS + 2 and model.total_messages == CLIENTS
        model.follow_latest()
        closed = model.rows()
        assert len(closed) == model.keep_closed  # only the most recent closed ones are listed
        assert {row.stage for row in closed} <= {"closed: QUIT", "closed by client"}
    finally:
        for client in [*clients.values(), hostile, lf_only]:
            client.close()


def opened(session: int, port: int) -> SessionOpened:
    return SessionOpened(session, "127.0.0.1", port, 2525)


def exchange(session: int, sent: bytes, *replies: str, kind: str = "command") -> Exchange:
    return Exchange(session, kind, sent, replies)


def test_pause_holds_events_and_resume_applies_them_in_order() -> None:
    model = DashboardModel()
    model.feed(opened(1, 40001))
    model.feed(exchange(1, b"", "220 mx.tutor.test ESMTP ready", kind="greeting"))
    model.pause()
    held = [
        exchange(1, b"HELO a.example\r\n", "250 mx.tutor.test Hello a.example [127.0.0.1]"),
        exchange(1, b"MAIL FROM:<a@a.example>\r\n", "250 2.1.0 <a@a.example> ok"),
        opened(2, 40002),
    ]
    for event in held:
        assert model.feed(event) == []
    [row] = model.rows()
    assert row.stage == "connected" and row.helo == ""  # the view is frozen
    assert len(model.held) == 3 and model.total_sessions == 1
    assert model.resume() == held
    assert not model.paused and model.held == []
    assert model.row(1) is not None and model.row(1).stage == "sender"  # type: ignore[union-attr]
    assert model.total_sessions == 2


def test_selection_moves_follows_and_survives_closing() -> None:
    model = DashboardModel(keep_closed=1)
    for session in (1, 2, 3):
        model.feed(opened(session, 40000 + session))
    assert model.focus() == 3  # nothing picked: the newest session
    model.move(-1)
    assert model.selected == 2
    model.move(-5)
    assert model.selected == 1
    model.move(1)
    assert model.selected == 2
    model.feed(SessionClosed(2, "quit", at=1000.0))
    assert model.focus() == 2  # still listed: recently closed
    assert [row.session for row in model.rows()] == [1, 3, 2]
    model.feed(SessionClosed(1, "client", at=1001.0))  # #2 is no longer a recent one…
    assert [row.session for row in model.rows()] == [3, 1, 2]  # …but picked: it stays
    assert model.selected == 2 and model.focus() == 2
    model.keep_sessions = 1
    model.feed(opened(4, 40004))  # forgetting old rows spares the picked one
    assert model.row(2) is not None and model.row(1) is None
    model.follow_latest()
    assert model.focus() == 4
    assert [row.session for row in model.rows()] == [3, 4, 2]  # one recent closed row


def test_bare_lf_before_data_means_data_can_never_end() -> None:
    from tutor.smtp.events import BareLineFeed

    model = DashboardModel()
    model.feed(opened(1, 40001))
    model.feed(BareLineFeed(1, False))
    assert model.row(1).warning == BARE_LF_WARNING  # type: ignore[union-attr]
    for sent, reply in (
        (b"helo a\n", "250 mx.tutor.test Hello a [127.0.0.1]"),
        (b"mail from:<a@a.example>\n", "250 2.1.0 ok"),
        (b"rcpt to:<you@tutor.test>\n", "250 2.1.5 ok"),
        (b"data\n", '354 Enter message, ending with "." on a line by itself'),
    ):
        model.feed(exchange(1, sent, reply))
    row = model.row(1)
    assert row is not None
    assert row.warning == BARE_LF_WARNING and row.stage == STUCK_IN_DATA


def test_the_frame_rate_is_bounded_under_a_flood(
    server: TeachingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames: list[float] = []
    real_refresh = Live.refresh

    def counted(self: Live) -> None:
        frames.append(time.monotonic())
        real_refresh(self)

    monkeypatch.setattr(Live, "refresh", counted)
    console = Console(file=io.StringIO(), force_terminal=True, width=120, height=40)
    rate = 8.0
    dashboard = Dashboard(console, server.capture.events, header_for(server), rate=rate)
    sessions_done = [0] * CLIENTS
    flood_seconds = 1.5

    def client(number: int) -> None:
        deadline = time.monotonic() + flood_seconds
        while time.monotonic() < deadline:
            with RawClient(server.address) as raw:
                raw.cmd(f"EHLO flood{number}.example")
                raw.cmd(f"MAIL FROM:<f{number}@example.test>")
                raw.cmd("RCPT TO:<you@tutor.test>")
                raw.cmd("DATA")
                raw.send_raw(message(number))
                raw.reply()
                raw.cmd("QUIT")
            sessions_done[number] += 1

    def flood() -> None:
        try:
            run_concurrently(CLIENTS, client)
        finally:
            dashboard.request_quit()

    flooding = threading.Thread(target=flood)
    started = time.monotonic()
    flooding.start()
    dashboard.run()
    elapsed = time.monotonic() - started
    flooding.join(timeout=60)

    assert elapsed >= flood_seconds
    assert dashboard.frames == len(frames)
    assert 2 <= len(frames) <= rate * elapsed + 1, (len(frames), elapsed)
    # nothing was lost: every session and message reaches the model
    sessions, messages = dashboard.finish()
    assert sessions == sum(sessions_done) >= CLIENTS
    assert messages == sum(sessions_done)
    screen = console.file.getvalue()  # type: ignore[attr-defined]
    assert "CONNECTIONS" in screen and "flood" in screen


def test_the_dashboard_opens_a_message_beside_its_envelope(server: TeachingServer) -> None:
    with RawClient(server.address) as client:
        client.cmd("HELO a.b.c")
        client.cmd("MAIL FROM:<bugs@looney.example>")
        client.cmd("RCPT TO:<you@tutor.test>")
        client.cmd("DATA")
        client.send_raw(b"From: Bugs Bunny\r\nTo: Daffy Duck\r\nSubject: Loony\r\n\r\nHi\r\n.\r\n")
        client.reply()
        console = Console(record=True, width=100, height=40, file=io.StringIO())
        dashboard = Dashboard(console, server.capture.events, header_for(server))
        dashboard.drain()
        dashboard.handle_key("enter")
        assert dashboard.view.detail is not None
        console.print(dashboard.view.render(console, 100, 40, time.monotonic()))
        screen = console.export_text()
        assert "MAIL FROM:<bugs@looney.example>" in screen and "From: Bugs Bunny" in screen
        assert "RCPT TO:<you@tutor.test>" in screen and "To: Daffy Duck" in screen
        dashboard.handle_key("escape")
        assert dashboard.view.detail is None
        client.cmd("RSET")
    # a session without a message says so instead
    with RawClient(server.address) as other:
        other.cmd("HELO x.example")
        dashboard.drain()
        dashboard.handle_key("enter")
        assert dashboard.view.detail is None
        assert dashboard.view.notice is not None
        assert "has no stored message yet" in dashboard.view.notice[0]


def test_a_pipe_gets_the_line_log_even_when_rich_is_told_it_is_a_terminal() -> None:
    from tutor.ui.serve.dashboard import wanted

    forced = Console(file=io.StringIO(), force_terminal=True)  # as FORCE_COLOR=1 would
    assert forced.is_terminal and not wanted(forced, stdin_is_tty=True)


def test_a_row_shows_tls_and_auth(server: TeachingServer) -> None:
    import base64

    with RawClient(server.address) as client:
        client.cmd("EHLO secure.example")
        assert client.code("STARTTLS").startswith("220 ")
        client.starttls()
        client.cmd("EHLO secure.example")
        token = base64.b64encode(b"\0you\0tutor-password").decode()
        assert client.code(f"AUTH PLAIN {token}").startswith("235 ")
        model = DashboardModel()
        for event in drain(server.capture.events):
            model.feed(event)
    [row] = model.rows()
    assert row.security == "TLS AUTH you"
    assert row.helo == "EHLO secure.example" and row.stage == "greeted"
    assert row.last_reply == "235 Logged in as you"
