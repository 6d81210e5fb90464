"""serve's line log writes plain text straight to a pipe or a file (no rich rendering per
line, for speed under load): the bytes must be exactly what rich would have printed, and
hostile text is shown, never obeyed, on either path. What it remembers between messages
(explanations by command, reply and session state) must never outlive its state."""

from __future__ import annotations

import io
import queue

from rich.console import Console

from tests.support import RawClient, pipe_console
from tutor.server.runner import TeachingServer
from tutor.smtp.events import (
    RELAY_FOLDER,
    Authenticated,
    BounceSent,
    Copy,
    Event,
    Exchange,
    MessageStored,
    SessionClosed,
    SessionOpened,
    TlsStarted,
)
from tutor.smtp.session_state import SessionState
from tutor.ui.serve.serve_log import ServeLog


def session_events(server: TeachingServer) -> list[Event]:
    with RawClient(server.address) as client:
        client.cmd("EHLO [bold]x[/] \x1b]0;t\x07")
        client.cmd("MAIL FROM:<bugs@looney.example>")
        client.cmd("RCPT TO:<you@tutor.test>")
        client.cmd("RCPT TO:<nobody@tutor.test>")
        client.cmd("DATA")
        body = b"From: Bugs\r\nTo: Daffy\r\nSubject: \xe2\x80\xae tab\there\r\n\r\n"
        client.cmd(body + b"".join(b"line %d\r\n" % n for n in range(20)) + b"..dot\r\n.")
        client.cmd(b"NOOP\xff")
        client.cmd("QUIT")
    assert server.capture.wait_for(
        lambda: all(r.closed is not None for r in server.capture.sessions()), 5.0
    )
    events = []
    while True:
        try:
            events.append(server.capture.events.get_nowait())
        except queue.Empty:
            return events


def test_the_direct_line_log_matches_what_rich_prints(server: TeachingServer) -> None:
    events = session_events(server)
    direct_console, direct = pipe_console()
    rich_console, rendered = pipe_console(record=True)
    direct_log, rich_log = ServeLog(direct_console), ServeLog(rich_console)
    assert direct_log._direct and not rich_log._direct
    for event in events:
        direct_log.show(event)
        rich_log.show(event)
    assert direct.getvalue() == rendered.getvalue()
    assert "stored id=" in direct.getvalue()
    assert "\x1b" not in direct.getvalue()


HOSTILE = "\x1b]0;owned\x07\x1b[2J[bold]x[/bold]\u202e\x9b\r\t"


def hostile_events() -> list[Event]:
    """Hostile text in every place a client (or a remote server) can put it."""
    hostile = HOSTILE.encode()
    return [
        SessionOpened(7, HOSTILE, 25, 25),
        Exchange(7, "greeting", b"", (f"220 {HOSTILE}",)),
        Exchange(7, "command", b"EHLO " + hostile + b"\r\n", ("250-x", f"250-{HOSTILE}", "250 Z")),
        TlsStarted(7, "TLSv1.3", "TLS_AES_128_GCM_SHA256", 3),
        Authenticated(7, "PLAIN", HOSTILE, True),
        Exchange(7, "command", b"MAIL FROM:<" + hostile + b">\r\n", (HOSTILE, "250 2.1.0 ok")),
        Exchange(7, "command", b"RCPT TO:<you@tutor.test>\r\n", ("250 2.1.5 ok",), tls=True),
        Exchange(7, "command", b"DATA\r\n", ("354 go",), tls=True),
        Exchange(7, "data", hostile + b"\r\n\xff\xfe\n" * 20 + b".\r\n", (f"250 id={HOSTILE}",)),
        MessageStored(
            7, "Q1", HOSTILE, (HOSTILE,), (Copy("you", "k", "you@tutor.test"),),
            HOSTILE, HOSTILE, HOSTILE, HOSTILE, 10,
        ),
        BounceSent(7, "Q2", "Q1", HOSTILE, ("x",), "5.1.2", Copy(RELAY_FOLDER, "k", "x")),
        SessionClosed(7, "quit"),
    ]  # fmt: skip


def test_hostile_text_is_shown_alike_by_both_paths_and_never_obeyed() -> None:
    direct_console, direct = pipe_console()
    rich_console, rendered = pipe_console(record=True)
    colour = io.StringIO()
    colour_console = Console(
        file=colour, force_terminal=True, color_system="truecolor", markup=False, width=100
    )
    logs = [ServeLog(direct_console), ServeLog(rich_console), ServeLog(colour_console)]
    for event in hostile_events():
        for log in logs:
            log.show(event)
    assert direct.getvalue() == rendered.getvalue()
    for output in (direct.getvalue(), colour.getvalue()):
        assert "\\x1b]0;owned\\x07\\x1b[2J[bold]x[/bold]\\u202e\\x9b\\x0d\\x09" in output
        for raw in ("\x1b]", "\x1b[2J", "\x07", "\u202e", "\x9b", "\r", "\t"):
            assert raw not in output
    assert "[bold]x[/bold]" in colour.getvalue()  # shown as typed, never taken as markup


def test_a_reply_is_explained_by_the_state_it_answers_in() -> None:
    """Explanations are remembered by command, reply and state: the same 250 to the same
    RCPT means a first recipient in one transaction and a second in the next."""
    console, out = pipe_console()
    log = ServeLog(console)
    rcpt = Exchange(1, "command", b"RCPT TO:<you@tutor.test>\r\n", ("250 2.1.5 ok",))
    for event in (
        Exchange(1, "command", b"HELO x\r\n", ("250 ok",)),
        Exchange(1, "command", b"MAIL FROM:<a@b.example>\r\n", ("250 2.1.0 ok",)),
        rcpt,
        Exchange(1, "command", b"RSET\r\n", ("250 2.0.0 ok",)),
        Exchange(1, "command", b"MAIL FROM:<a@b.example>\r\n", ("250 2.1.0 ok",)),
        Exchange(1, "command", b"RCPT TO:<alice@tutor.test>\r\n", ("250 2.1.5 ok",)),
        rcpt,
    ):
        log.show(event)
    counts = [line for line in out.getvalue().split("\n") if "envelope now has" in line]
    assert ["1 recipient;" in counts[0], "1 recipient;" in counts[1]] == [True, True]
    assert "2 recipients;" in counts[2]


def test_the_facts_of_a_session_state_cover_every_attribute_but_the_messages() -> None:
    """A new SessionState attribute that facts() leaves out could make the log remember a
    wrong explanation."""
    for name, value in vars(SessionState()).items():
        if name == "messages":
            continue
        state = SessionState()
        before = state.facts()
        changed = (
            {"x": "y"}
            if isinstance(value, dict)
            else ["x"]
            if isinstance(value, list)
            else object()
        )
        setattr(state, name, changed)
        assert state.facts() != before, name
