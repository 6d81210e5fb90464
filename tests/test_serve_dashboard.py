"""`smtp-tutor serve` on a terminal: the live dashboard, driven in a pseudo-terminal."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from tests.pty_session import PtySession
from tests.support import RawClient
from tutor.server.runner import TeachingServer

pexpect = pytest.importorskip("pexpect") if sys.platform != "win32" else None

pytestmark = pytest.mark.posix


class Serve(PtySession):
    """smtp-tutor serve in a 120x40 pty: press keys, wait for text on the screen."""

    def __init__(self, maildir: Path, *args: str) -> None:
        env = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40")
        super().__init__(
            "serve",
            "--port",
            "0",
            "--maildir",
            str(maildir),
            *args,
            rows=40,
            columns=120,
            environment=env,
        )


def test_dashboard_shows_a_client_pauses_and_quits(tmp_path: Path) -> None:
    serve = Serve(tmp_path / "Maildir")
    port = int(serve.expect(r"mx\.tutor\.test on 127\.0\.0\.1:(\d+)").group(1))
    serve.expect(r"CONNECTIONS  0 active")
    serve.expect(r"KEYS")
    with RawClient(("127.0.0.1", port)) as client:
        client_port = client.sock.getsockname()[1]
        assert client.code("EHLO pty-student.example").startswith("250 ")
        serve.expect(rf"127\.0\.0\.1:{client_port} +EHLO pty-student\.example +greeted")
        serve.expect(r"TRANSCRIPT #1")
        serve.press("p")
        serve.expect(r"PAUSED: 0 new events held")
        assert client.code("MAIL FROM:<a@pty.example>").startswith("250 ")
        serve.expect(r"PAUSED: 1 new event held, p resumes")
        serve.press("p")
        serve.expect(r"LIVE")
        serve.expect(r"EHLO pty-student\.example +sender +plain +250 Sender accepted")
        serve.press("q")
        assert serve.finish() == 0
        # the server stopped: the connected client was told so
        assert client.reply() == [
            "421 4.3.2 mx.tutor.test Service shutting down, closing connection"
        ]
    screen = serve.screen()
    assert "stopped: 1 session, 0 messages stored in" in screen
    assert "Traceback" not in screen
    assert "\x1b[?1049l" in serve.raw  # the alternate screen was left
    assert serve.raw.rstrip().endswith("Maildir")  # the summary is the last thing shown


def test_ctrl_c_and_sigterm_quit_the_dashboard_cleanly(tmp_path: Path) -> None:
    for stop in ("\x03", signal.SIGTERM):
        serve = Serve(tmp_path / "Maildir")
        serve.expect(r"KEYS")
        if isinstance(stop, str):
            serve.press(stop)  # Ctrl-C arrives as a key: the terminal is in raw mode
        else:
            serve.child.kill(stop)
        assert serve.finish() == 0
        assert "stopped: 0 sessions, 0 messages stored in" in serve.screen()
        assert "Traceback" not in serve.screen()


@pytest.mark.slow
def test_log_flag_keeps_the_line_log_on_a_terminal(tmp_path: Path) -> None:
    serve = Serve(tmp_path / "Maildir", "--log")
    port = int(serve.expect(r"listening on 127\.0\.0\.1:(\d+)").group(1))
    with RawClient(("127.0.0.1", port)) as client:
        client.cmd("HELO log.example")
        serve.expect(r"C: HELO log\.example␍␊")
    serve.expect(r"client closed the connection")
    assert "KEYS" not in serve.screen() and "\x1b[?1049h" not in serve.raw
    serve.child.sendintr()  # a terminal in cooked mode: Ctrl-C is SIGINT
    assert serve.finish() == 0
    assert "stopped: 1 session, 0 messages stored in" in serve.screen()


@pytest.mark.slow
def test_the_terminal_is_restored_even_when_the_dashboard_fails(
    server: TeachingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import termios

    from rich.console import Console

    from tutor.sandbox.serve import ServeOptions
    from tutor.ui.common.keys import TerminalKeys
    from tutor.ui.serve import dashboard, dashboard_view

    master, slave = os.openpty()
    with os.fdopen(slave, "r") as tty_in, os.fdopen(os.dup(slave), "w") as tty_out:
        before = termios.tcgetattr(slave)
        seen: list[int] = []

        def broken(*args: object) -> object:
            seen.append(termios.tcgetattr(slave)[3])  # lflag while the dashboard runs
            raise RuntimeError("a bug in the view")

        monkeypatch.setattr(dashboard_view.DashboardView, "render", broken)
        console = Console(file=tty_out, force_terminal=True, width=100, height=30)
        options = ServeOptions(None, 0, server.maildir, False, 300.0, 1000, None)
        client = RawClient(server.address)
        try:
            with pytest.raises(RuntimeError, match="a bug in the view"):
                dashboard.run_dashboard(server, options, console, TerminalKeys(tty_in))
            # raw mode while running, the old settings after; the server was stopped
            assert seen and not seen[0] & (termios.ICANON | termios.ECHO | termios.ISIG)
            assert termios.tcgetattr(slave) == before
            assert client.reply()[0].startswith("421 4.3.2 ")
        finally:
            client.close()
    written = read_until(master, b"\x1b[?1049l")
    os.close(master)
    assert b"\x1b[?1049h" in written and written.rstrip().endswith(b"\x1b[?1049l")


def read_until(fd: int, end: bytes, timeout: float = 10.0) -> bytes:
    """What a pty's master side has received, up to `end` (the kernel passes it on lazily)."""
    import select

    data = b""
    while end not in data:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"no {end!r} from the terminal; it got {data!r}"
        data += os.read(fd, 65536)
    return data


def test_the_dashboard_wants_a_terminal_on_both_ends_and_not_a_dumb_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rich.console import Console

    from tutor.ui.serve.dashboard import wanted

    master, slave = os.openpty()
    with os.fdopen(slave, "w") as tty:
        monkeypatch.setenv("TERM", "xterm-256color")
        assert wanted(Console(file=tty), stdin_is_tty=True)
        assert not wanted(Console(file=tty), stdin_is_tty=False)
        monkeypatch.setenv("TERM", "dumb")
        assert not wanted(Console(file=tty), stdin_is_tty=True)
    os.close(master)
