"""serve's line log: each line starts with the time (HH:MM:SS, local), and events come in
the order they happened on the wire. An AUTH result follows the exchange that carries
the AUTH command and its 235/535, in the capture itself, so every consumer (the log, the
dashboard, transcripts, lessons) gets that order (docs/server.md, "Events in wire order").
"""

from __future__ import annotations

import base64
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from tests.serve_process import ServeProcess
from tests.support import RawClient, closed_session
from tutor.server.runner import TeachingServer
from tutor.smtp.events import Authenticated, Event, Exchange, SessionClosed, SessionOpened
from tutor.ui.serve.serve_log import ServeLog

TIMEOUT = 10.0
PLAIN_YOU = base64.b64encode(b"\0you\0tutor-password").decode()  # docs/server.md's demo account
PLAIN_WRONG = base64.b64encode(b"\0you\0not-the-password").decode()
STAMP = re.compile(r"^(\d\d):(\d\d):(\d\d) #\d+ +")


def log_text(events: list[Event], *, clock: bool = False) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, color_system=None, no_color=True, width=100, markup=False)
    log = ServeLog(console, clock=clock)
    for event in events:
        log.show(event)
    return out.getvalue().splitlines()


def logged_in(server: TeachingServer, *auth: str) -> list[Event]:
    """STARTTLS, EHLO again, then the AUTH lines given (each answered), then QUIT."""
    with RawClient(server.address) as client:
        port = client.sock.getsockname()[1]
        client.cmd("EHLO student.example")
        assert client.code("STARTTLS").startswith("220 ")
        client.starttls()
        client.cmd("EHLO student.example")
        for line in auth:
            client.cmd(line)
        assert client.code("QUIT").startswith("221 ")
    return closed_session(server, port)


def kinds(events: list[Event]) -> list[str]:
    """Each event as the wire saw it: `AUTH PLAIN …` -> 235, then the result."""
    out = []
    for event in events:
        if isinstance(event, Exchange):
            what = event.kind if event.kind != "command" else event.verb
            out.append(f"{what} -> {event.code}")
        elif isinstance(event, Authenticated):
            out.append(f"result {event.success}")
    return out


def test_the_auth_result_follows_the_auth_exchange_in_the_capture_and_the_log(
    server: TeachingServer,
) -> None:
    events = logged_in(server, f"AUTH PLAIN {PLAIN_YOU}")
    assert kinds(events)[-3:] == ["AUTH -> 235", "result True", "QUIT -> 221"]

    lines = log_text(events)
    auth = next(i for i, line in enumerate(lines) if f"TLS C: AUTH PLAIN {PLAIN_YOU}␍␊" in line)
    assert (
        lines[auth + 1].startswith("#")
        and "TLS S: 235 2.7.0 Authentication successful" in (lines[auth + 1])
    )
    assert lines[auth + 2].endswith("AUTH PLAIN: authenticated as you")
    assert "TLS C: QUIT" in lines[auth + 3]


def test_the_auth_dialogue_and_a_refusal_keep_wire_order(server: TeachingServer) -> None:
    events = logged_in(server, "AUTH PLAIN", PLAIN_WRONG, "AUTH PLAIN", PLAIN_YOU)
    assert kinds(events)[-7:] == [
        "AUTH -> 334",
        "auth -> 535",  # the answer to the 334 carries the verdict
        "result False",
        "AUTH -> 334",
        "auth -> 235",
        "result True",
        "QUIT -> 221",
    ]
    lines = [line.split("   ", 1)[1] for line in log_text(events)]  # without the session tag
    start = lines.index("TLS C: AUTH PLAIN␍␊")
    said = [line.split("  — ")[0] for line in lines[start : start + 10]]  # without meanings
    assert said == [
        "TLS C: AUTH PLAIN␍␊",
        "TLS S: 334 ",
        "TLS C: (AUTH answer, base64, hidden)",
        "TLS S: 535 5.7.8 Authentication credentials invalid",
        "AUTH PLAIN: authentication failed as you",
        "TLS C: AUTH PLAIN␍␊",
        "TLS S: 334 ",
        "TLS C: (AUTH answer, base64, hidden)",
        "TLS S: 235 2.7.0 Authentication successful",
        "AUTH PLAIN: authenticated as you",
    ]


@pytest.fixture
def in_india(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time 5:30 ahead of UTC (a POSIX TZ string: no time-zone database needed)."""
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_each_log_line_starts_with_the_local_time_of_its_event(in_india: None) -> None:
    at = 1_700_000_000.9  # 2023-11-14 22:13:20 UTC: 03:43:20 the next day in India
    events: list[Event] = [
        SessionOpened(4, "127.0.0.1", 50000, 2525, at=at),
        Exchange(4, "command", b"EHLO a\r\n", ("250-mx.tutor.test Hello a", "250 HELP"), at=at),
        SessionClosed(4, "client", at=at + 61),
    ]
    assert log_text(events, clock=True) == [
        "03:43:20 #4   connected from 127.0.0.1 port 50000",
        "03:43:20 #4   C: EHLO a␍␊",
        "03:43:20 #4   S: 250-mx.tutor.test Hello a",
        "03:43:20 #4   S: 250 HELP  — Greeting accepted (EHLO): the server offers 1 extension",
        "03:44:21 #4   client closed the connection",
    ]
    # the dashboard's and the handouts' transcripts go without
    assert log_text(events)[0] == "#4   connected from 127.0.0.1 port 50000"


def test_serve_log_of_a_real_auth_session_is_timed_and_in_wire_order(tmp_path: Path) -> None:
    """The real `serve --log`: STARTTLS, then AUTH PLAIN with a demo account."""
    serve = ServeProcess(tmp_path / "Maildir", "--log", "--plain")
    try:
        before = time.time()
        with RawClient(serve.address) as client:
            port = client.sock.getsockname()[1]
            client.cmd("EHLO student.example")
            assert client.code("STARTTLS").startswith("220 ")
            client.starttls()
            client.cmd("EHLO student.example")
            assert client.code(f"AUTH PLAIN {PLAIN_YOU}").startswith("235 ")
            assert client.code("QUIT").startswith("221 ")
        number = serve.session_of(port)
        serve.wait_in_session(number, rb"closed after QUIT")
        after = time.time()
        lines = serve.session_text(number).splitlines()
    finally:
        assert serve.interrupt() == 0
        serve.kill()
    allowed = {
        time.strftime("%H:%M:%S", time.localtime(second))
        for second in range(int(before), int(after) + 1)
    }
    for line in lines:
        stamp = STAMP.match(line)
        assert stamp is not None, line
        assert line[:8] in allowed
    said = [STAMP.sub("", line) for line in lines]
    auth = said.index(f"TLS C: AUTH PLAIN {PLAIN_YOU}␍␊")
    assert said[auth + 1].startswith("TLS S: 235 2.7.0 Authentication successful")
    assert said[auth + 2] == "AUTH PLAIN: authenticated as you"
    assert said[auth + 3] == "TLS C: QUIT␍␊"
    assert said[0] == f"connected from 127.0.0.1 port {port}"
    assert said[-1] == "closed after QUIT"
