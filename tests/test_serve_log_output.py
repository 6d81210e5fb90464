"""serve's line log writes plain text straight to a pipe or a file (no rich rendering per
line, for speed under load): the bytes must be exactly what rich would have printed."""

from __future__ import annotations

import io
import queue

from rich.console import Console

from tests.support import RawClient
from tutor.server.runner import TeachingServer
from tutor.smtp.events import Event
from tutor.ui.serve.serve_log import ServeLog


def pipe_console(*, record: bool = False) -> tuple[Console, io.StringIO]:
    """As the Environment builds it for a pipe with --plain; record=True takes rich's own path."""
    out = io.StringIO()
    console = Console(
        file=out,
        no_color=True,
        color_system=None,
        highlight=False,
        emoji=False,
        markup=False,
        width=100,
        record=record,
    )
    return console, out


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
