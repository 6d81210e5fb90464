"""`serve`'s server in its own process: it serves while the UI does not read, and it
stops with its parent, whatever stops the parent (docs/architecture.md, "The server in
its own process")."""

from __future__ import annotations

import errno
import os
import signal
import smtplib
import socket
import sys
import sysconfig
import time
from pathlib import Path

import psutil
import pytest

from tests.serve_process import ServeProcess
from tests.support import server_processes
from tutor.server import process
from tutor.server.endpoints import BindError
from tutor.server.persona import Persona
from tutor.server.process import ServerProcess
from tutor.smtp.events import Event, Exchange, MessageStored

WAIT = 20.0
# Some 500 KB of pickled events, more than a pipe holds unread; each session stays
# within the capture's head (HEAD_EVENTS), so the queue gets every event.
SESSIONS = 4
NOOPS = 900
# A line log of some 200 KB: three pipes' worth, unread until the end.
SLOW_READER_SESSIONS = 8
SLOW_READER_NOOPS = 300


def _drain(server: ServerProcess) -> list[Event]:
    events = []
    while True:
        try:
            events.append(server.events.get_nowait())
        except Exception:  # queue.Empty: all taken
            return events


def test_the_start_method_never_forks_this_threaded_process() -> None:
    expected = "spawn" if sys.platform == "win32" else "forkserver"
    assert expected == process.START_METHOD


@pytest.mark.parametrize("method", ["spawn", process.START_METHOD])
def test_each_start_method_serves_and_stops(tmp_path: Path, method: str) -> None:
    """Spawn is what Windows gets: tested here too, beside the platform's own."""
    server = ServerProcess(tmp_path / "Maildir", start_method=method, mirror=True).start()
    try:
        assert server.pid in {p.pid for p in server_processes(os.getpid())}
        with smtplib.SMTP(*server.address, timeout=WAIT) as client:
            client.sendmail("a@example.test", ["you@tutor.test"], b"Subject: hi\r\n\r\nhi\r\n")
        capture = server.capture
        assert capture.wait_for(lambda: any(r.messages for r in capture.sessions()), WAIT)
    finally:
        server.stop()
    assert server_processes(os.getpid()) == []


def test_the_server_answers_while_the_ui_reads_nothing(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "Maildir", Persona()).start()
    try:
        assert server.pid in {p.pid for p in server_processes(os.getpid())}
        floods = [socket.create_connection(server.address, timeout=WAIT) for _ in range(SESSIONS)]
        for flood in floods:
            flood.recv(1024)
            flood.sendall(b"NOOP\r\n" * NOOPS)
            answered = b""
            while answered.count(b"\r\n") < NOOPS:
                answered += flood.recv(65536)
        # Nobody has read an event: the pipe is full, and the server still answers.
        with smtplib.SMTP(*server.address, timeout=WAIT) as client:
            refused = client.sendmail(
                "a@example.test", ["you@tutor.test"], b"Subject: hi\r\n\r\nhi\r\n"
            )
        assert refused == {}
        for flood in floods:
            flood.close()
    finally:
        server.stop()
    events = _drain(server)
    noops = [e for e in events if isinstance(e, Exchange) and e.verb == "NOOP"]
    assert len(noops) == SESSIONS * NOOPS  # under the capture's queue limit: the log gets every one
    assert any(isinstance(e, MessageStored) for e in events)
    assert server.pid is None


def test_a_port_in_use_is_the_childs_bind_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServerProcess(tmp_path / "Maildir", port=port)
        with pytest.raises(BindError) as raised:
            server.start()
    assert raised.value.errno == errno.EADDRINUSE
    assert server.pid is None  # reaped


def _server_child(serve: ServeProcess) -> psutil.Process:
    [child] = server_processes(serve.proc.pid)
    return child


def _gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if not any(psutil.pid_exists(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow  # a real serve and its child, signalled: seconds each
@pytest.mark.posix
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_serve_stops_both_processes(tmp_path: Path, stop: signal.Signals) -> None:
    serve = ServeProcess(tmp_path / "Maildir")
    try:
        tree = [p.pid for p in psutil.Process(serve.proc.pid).children(recursive=True)]
        child = _server_child(serve)
        with smtplib.SMTP(*serve.address, timeout=WAIT) as client:
            client.sendmail("a@example.test", ["you@tutor.test"], b"Subject: hi\r\n\r\nhi\r\n")
        serve.proc.send_signal(stop)
        assert serve.proc.wait(timeout=WAIT) == 0
        assert _gone([child.pid, *tree])  # ended and reaped: no orphan, no zombie
        serve.wait_for(rb"^stopped: ")
        assert "stopped: 1 session, 1 message stored" in serve.text
    finally:
        serve.kill()


@pytest.mark.slow  # a real serve and its child, signalled: seconds each
@pytest.mark.posix
def test_the_server_process_ends_when_serve_is_killed(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path / "Maildir")
    try:
        child = _server_child(serve)
        serve.proc.kill()  # no handler runs: the child sees its control pipe close
        serve.proc.wait(timeout=WAIT)
        assert _gone([child.pid])
    finally:
        serve.kill()


def test_the_dashboard_says_how_far_behind_the_server_it_is(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from tutor.sandbox.dashboard_model import DashboardModel
    from tutor.ui.serve.dashboard_view import BEHIND_SHOWN, DashboardView, Header, Transcripts

    console = Console(record=True, width=120, file=io.StringIO())
    connect = ("telnet 127.0.0.1 2525", "nc -C 127.0.0.1 2525")
    header = Header("mx.tutor.test", "127.0.0.1:2525", "closed relay", connect, tmp_path)
    view = DashboardView(DashboardModel(), Transcripts(console), header)

    def title(behind: int) -> str:
        view.behind = behind
        console.print(view.render(console, 120, 30, time.monotonic()))
        return console.export_text().splitlines()[0]

    assert "● LIVE" in title(BEHIND_SHOWN - 1)
    assert "12,345 events behind" in title(12_345)


@pytest.mark.slow  # a real serve and its child, signalled: seconds each
@pytest.mark.posix
def test_serve_says_so_and_fails_when_its_server_process_dies(tmp_path: Path) -> None:
    """A server that is gone must not leave a log that looks alive: one line, status 70."""
    serve = ServeProcess(tmp_path / "Maildir")
    try:
        _server_child(serve).kill()
        assert serve.proc.wait(timeout=WAIT) == 70
        assert serve.proc.stderr is not None
        error = serve.proc.stderr.read().decode()
        assert error.strip().splitlines() == [
            "smtp-tutor: the server process ended unexpectedly (killed by signal 9): "
            "clients can no longer connect"
        ]
    finally:
        serve.kill()


@pytest.mark.slow  # a real serve whose log nobody reads for a while: seconds
@pytest.mark.posix
def test_a_log_nobody_reads_holds_up_neither_the_server_nor_its_completeness(
    tmp_path: Path,
) -> None:
    """A terminal that stops reading (Ctrl-S, a pager left waiting) blocks the line log's
    writes; the server goes on serving, and once the reader is back the log and every
    transcript hold every session, whole."""
    import subprocess
    import sys

    transcripts = tmp_path / "transcripts"
    command = [sys.executable, "-m", "tutor", "serve", "--log", "--port", "0"]
    command += ["--maildir", str(tmp_path / "Maildir"), "--transcripts", str(transcripts)]
    serve = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert serve.stdout is not None
        banner = b""
        while b"listening on" not in banner:
            banner += serve.stdout.readline()
        port = int(banner.split(b"listening on 127.0.0.1:")[1].split(b",")[0].split()[0])
        # Nobody reads stdout from here on: the log fills the pipe (64 KiB) and blocks.
        queue_ids = []
        for number in range(SLOW_READER_SESSIONS):
            with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as client:
                client.ehlo(f"client{number}.example.test")
                for _ in range(SLOW_READER_NOOPS):
                    client.noop()
                client.mail("a@example.test")
                client.rcpt("you@tutor.test")
                code, text = client.data(f"Subject: session {number}\r\n\r\nhi\r\n".encode())
                assert code == 250
                queue_ids.append(text.decode().split("id=")[-1])
        serve.send_signal(signal.SIGINT)
        out, _err = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.communicate()
    log = (banner + out).decode()
    assert len(out) > 65536  # more than a pipe holds: the log really was held up
    for number, queue_id in enumerate(queue_ids, start=1):
        assert f"#{number:<3} S: 250 2.0.0 OK id={queue_id}" in log
        [path] = transcripts.glob(f"*/*/session-{number:04d}.md")  # DIR/RUN/STUDENT/
        transcript = path.read_text()
        assert f"OK id={queue_id}" in transcript and "QUIT" in transcript
    assert f"stopped: {SLOW_READER_SESSIONS} sessions, {SLOW_READER_SESSIONS} messages" in log


# --- the working directory is not code ---------------------------------------------------------

PLANTED = """
import pathlib
pathlib.Path({marker!r}).write_text("{name} from the working directory ran")
raise SystemExit("{name} from the working directory ran")
"""


def test_serve_started_where_a_tutor_package_lies_runs_its_own_code(tmp_path: Path) -> None:
    """`python -c`, which multiprocessing uses to start the forkserver (or a spawned
    child), puts the working directory first on sys.path; a teacher's folder holding a
    `tutor/` or `multiprocessing/` package must not become the server."""
    where, marker = tmp_path / "class folder", tmp_path / "planted-code-ran"
    for name in ("tutor", "multiprocessing"):
        (where / name).mkdir(parents=True)
        (where / name / "__init__.py").write_text(PLANTED.format(marker=str(marker), name=name))
    script = Path(sysconfig.get_path("scripts")) / (
        "smtp-tutor.exe" if sys.platform == "win32" else "smtp-tutor"
    )
    serve = ServeProcess(tmp_path / "Maildir", "--log", python_prefix=[str(script)], cwd=where)
    try:
        with smtplib.SMTP(*serve.address, timeout=WAIT) as smtp:
            smtp.sendmail("a@b.example", ["you@tutor.test"], b"Subject: hi\r\n\r\nhello\r\n")
        serve.wait_for(rb"stored id=")
        assert serve.interrupt() == 0
    finally:
        serve.kill()
    assert not marker.exists(), marker.read_text()
