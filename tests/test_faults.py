"""The fault battery: storage that fails, processes killed or interrupted, clients that
reset, stall or pile up, a terminal resized mid-lesson.

Each fault ends in a state the design promises: never a 250 for a message that is not
on disk, never a message on disk that was not acknowledged in full, a server that keeps
serving, and one clear line (never a traceback) for the person at the terminal. Waits
are on socket reads, the server's capture or the process; pauses appear only where a
slow client is the fault under test.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pty_session import PtySession
from tests.serve_process import ServeProcess
from tests.support import RawClient
from tutor.server.capture import SessionRecord
from tutor.server.persona import Persona
from tutor.server.runner import TeachingServer
from tutor.smtp.events import SessionClosed

WAIT = 10.0
HEADERS = b"From: Fault Tester <tester@client.example>\r\nTo: you@tutor.test\r\n"
STORED_ID = re.compile(rb"^\tby mx\.tutor\.test with \S+ id (\S+)$", re.M)


# --- helpers ------------------------------------------------------------------------------------


def message(subject: str, body_lines: int = 3, width: int = 70) -> bytes:
    """A CRLF message (dot-stuffing needs no care: no line starts with a dot)."""
    body = b"".join(
        f"{subject} line {n:04d} ".ljust(width, "x").encode() + b"\r\n" for n in range(body_lines)
    )
    return HEADERS + f"Subject: {subject}\r\n\r\n".encode() + body


def envelope(client: RawClient, *recipients: str) -> None:
    assert client.code("EHLO client.example").startswith("250 ")
    assert client.code("MAIL FROM:<tester@client.example>").startswith("250 2.1.0")
    for recipient in recipients or ("you@tutor.test",):
        assert client.code(f"RCPT TO:<{recipient}>").startswith("250 2.1.5")
    assert client.code("DATA").startswith("354 ")


def queue_id_of(reply: str) -> str:
    match = re.fullmatch(r"250 2\.0\.0 OK id=(\S+)", reply)
    assert match, reply
    return match.group(1)


def delivered(maildir: Path) -> dict[str, list[bytes]]:
    """Every delivered copy (new/) by the queue id in its Received header."""
    out: dict[str, list[bytes]] = {}
    for path in sorted(maildir.glob("*/new/*")):
        raw = path.read_bytes()
        match = STORED_ID.search(raw)
        assert match, f"{path} has no Received header of ours"
        out.setdefault(match.group(1).decode(), []).append(raw)
    return out


def leftovers(maildir: Path) -> list[Path]:
    """Files in tmp/: a write that never completed."""
    return sorted(maildir.glob("*/tmp/*"))


def as_stored(content: bytes) -> bytes:
    """What a copy ends with: the message as sent, with the Maildir's LF endings."""
    return content.replace(b"\r\n", b"\n")


def session_of(server: TeachingServer, client: RawClient) -> SessionRecord:
    record = server.capture.find_peer(*client.sock.getsockname()[:2])
    assert record is not None
    return record


def wait_closed(server: TeachingServer, record: SessionRecord) -> SessionClosed:
    assert server.capture.wait_for(lambda: record.closed is not None, timeout=WAIT)
    assert record.closed is not None
    return record.closed


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST, not FIN (a crashed or killed client)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@contextlib.contextmanager
def tiny_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted for one test: a disk that really fills up (ENOSPC)."""
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs Linux and root")
    where.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


# --- storage that fails: 452 4.3.1, and nothing acknowledged is lost -----------------------------


def test_a_full_disk_gets_452_and_keeps_every_acknowledged_message(tmp_path: Path) -> None:
    with (
        tiny_tmpfs(tmp_path / "tiny", "192k") as mount,
        TeachingServer(mount / "Maildir", Persona(tls=False)) as server,
    ):
        acknowledged: dict[str, bytes] = {}
        refusals = []
        with RawClient(server.address) as client:
            # Large messages until the disk is full, then small ones until even those
            # fail: a small copy fails later, when its buffered write is flushed.
            for lines in (170, 12):
                for number in range(40):  # 40 × 12 KiB is far more than 192 KiB
                    content = message(f"filler {lines}-{number}", body_lines=lines)
                    envelope(client)
                    final = client.code(content + b".")
                    if not final.startswith("250 "):
                        refusals.append(final)
                        break
                    acknowledged[queue_id_of(final)] = content
            assert refusals == ["452 4.3.1 Insufficient system storage; message not stored"] * 2
            assert acknowledged, "the disk filled before the first message"
            assert client.code("NOOP") == "250 2.0.0 OK", "the session goes on"
            record = session_of(server, client)
            assert len(record.messages) == len(acknowledged)

            on_disk = delivered(server.maildir)
            assert sorted(on_disk) == sorted(acknowledged), "stored == acknowledged"
            for queue_id, content in acknowledged.items():
                (copy,) = on_disk[queue_id]
                assert copy.endswith(as_stored(content)), f"{queue_id} is not complete"
            assert leftovers(server.maildir) == [], "a failed write left a file in tmp/"
            gc.collect()  # a leaked temporary file would warn here (filterwarnings=error)

            # Space comes back (the teacher empties a mailbox): mail flows again.
            for path in server.maildir.glob("you/new/*"):
                path.unlink()
            envelope(client)
            assert client.code(message("after the cleanup") + b".").startswith("250 2.0.0 OK")


def test_a_copy_that_fails_takes_back_the_copies_already_written(
    start_server: Any,
) -> None:
    server: TeachingServer = start_server()
    with RawClient(server.address) as client:
        envelope(client, "you@tutor.test", "bob@tutor.test")  # you/ is written first
        shutil.rmtree(server.maildir / "bob")
        (server.maildir / "bob").write_text("a file where bob's Maildir should be\n")
        final = client.code(message("two copies") + b".")
        assert final == "452 4.3.1 Insufficient system storage; message not stored"
        assert client.code("NOOP") == "250 2.0.0 OK"
        assert session_of(server, client).messages == []
    assert delivered(server.maildir) == {}, "all or nothing: you/ must not keep its copy"
    assert leftovers(server.maildir) == []


# --- a killed server: what got a 250 is on disk ---------------------------------------------


@pytest.mark.posix
@pytest.mark.slow
def test_kill_9_right_after_a_250_keeps_the_message(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path / "Maildir", "--plain")
    try:
        content = message("kill -9")
        with RawClient(serve.address) as client:
            envelope(client)
            final = client.code(content + b".")
            serve.proc.send_signal(signal.SIGKILL)  # the moment the 250 has arrived
            assert serve.proc.wait(timeout=WAIT) == -signal.SIGKILL
        queue_id = queue_id_of(final)
        on_disk = delivered(serve.maildir)
        assert list(on_disk) == [queue_id]
        assert on_disk[queue_id][0].endswith(as_stored(content))
        assert leftovers(serve.maildir) == []
    finally:
        serve.kill()


# --- clients that reset, stall or pile up --------------------------------------------------------


def test_a_client_reset_mid_data_stores_nothing_and_the_server_serves_on(
    server: TeachingServer,
) -> None:
    client = RawClient(server.address)
    envelope(client)
    client.send_raw(HEADERS + b"Subject: reset\r\n\r\nhalf a message, then the RST")
    record = session_of(server, client)
    client.file.close()
    reset(client.sock)
    assert wait_closed(server, record).reason == "client"

    with RawClient(server.address) as next_client:
        assert next_client.greeting == ["220 mx.tutor.test ESMTP smtp-tutor ready"]
        envelope(next_client)
        final = next_client.code(message("after the reset") + b".")
    assert list(delivered(server.maildir)) == [queue_id_of(final)]
    assert record.messages == []
    assert leftovers(server.maildir) == []


def test_a_client_reset_with_commands_in_flight_is_forgotten(server: TeachingServer) -> None:
    for _ in range(5):
        client = RawClient(server.address)
        client.send_raw(b"EHLO client.example\r\nMAIL FROM:<a@client.example>\r\nNOOP\r\n")
        record = session_of(server, client)
        client.file.close()
        reset(client.sock)
        wait_closed(server, record)
    with RawClient(server.address) as next_client:
        assert next_client.code("NOOP") == "250 2.0.0 OK"
        record = session_of(server, next_client)
    wait_closed(server, record)
    assert server.context.connections == set(), "every reset connection was let go"


def test_a_client_stalled_mid_line_gets_421_4_4_2(start_server: Any) -> None:
    server: TeachingServer = start_server(Persona(idle_timeout=0.5))
    with RawClient(server.address) as client:
        assert client.code("EHLO client.example").startswith("250 ")
        client.send_raw(b"NOOP")  # half a command: no line yet, so the clock runs on
        assert client.reply() == ["421 4.4.2 mx.tutor.test Idle timeout, closing connection"]
        assert client.at_eof()


def test_a_client_stalled_mid_data_gets_421_4_4_2_and_nothing_is_stored(
    start_server: Any,
) -> None:
    server: TeachingServer = start_server(Persona(idle_timeout=0.5))
    with RawClient(server.address) as client:
        envelope(client)
        client.send_raw(HEADERS + b"Subject: stalled\r\n\r\nand then nothing more\r\n")
        assert client.reply() == ["421 4.4.2 mx.tutor.test Idle timeout, closing connection"]
        assert client.at_eof()
        record = session_of(server, client)
    assert wait_closed(server, record).reason == "idle"
    assert record.messages == []
    assert delivered(server.maildir) == {}


def test_a_slow_but_steady_client_is_not_cut_off(start_server: Any) -> None:
    # The fault is the slowness itself: a line every 0.2 s, 1.6 s in all, against an
    # idle timeout of 1 s. Every line read restarts the clock, DATA lines too.
    server: TeachingServer = start_server(Persona(idle_timeout=1.0))
    content = message("slow", body_lines=8)
    lines = (content + b".\r\n").splitlines(keepends=True)
    with RawClient(server.address) as client:
        envelope(client)
        for line in lines:
            client.send_raw(line)
            time.sleep(1.6 / len(lines))
        final = client.reply()[-1]
    assert delivered(server.maildir)[queue_id_of(final)][0].endswith(as_stored(content))


def test_refused_connections_never_use_up_the_cap(start_server: Any) -> None:
    server: TeachingServer = start_server(Persona(max_connections=2))
    held = [RawClient(server.address), RawClient(server.address)]
    try:
        for _ in range(8):
            with RawClient(server.address) as refused:
                assert refused.greeting == [
                    "421 4.7.0 mx.tutor.test Too many connections, try again later"
                ]
                assert refused.at_eof()
        assert held[0].code("NOOP") == "250 2.0.0 OK"
        records = [session_of(server, client) for client in held]
        for client in held:
            client.close()
        for record in records:
            wait_closed(server, record)
        assert server.capture.wait_for(
            lambda: all(r.closed is not None for r in server.capture.sessions()), WAIT
        )
        held = [RawClient(server.address), RawClient(server.address)]
        for client in held:
            assert client.greeting == ["220 mx.tutor.test ESMTP smtp-tutor ready"]
    finally:
        for client in held:
            client.close()


# --- Ctrl-C: serve with a client mid-DATA ---------------------------------------------------------


@pytest.mark.posix
@pytest.mark.slow
def test_ctrl_c_on_serve_while_a_client_is_mid_data(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path / "Maildir", "--plain")
    try:
        with RawClient(serve.address) as client:
            envelope(client)
            client.send_raw(HEADERS + b"Subject: interrupted\r\n\r\nthe first half\r\n")
            assert serve.interrupt() == 0
            assert client.reply() == [
                "421 4.3.2 mx.tutor.test Service shutting down, closing connection"
            ]
            assert client.at_eof()
    finally:
        serve.kill()
    assert b"Traceback" not in serve.stderr
    assert "(no reply: the session ended first; nothing was stored)" in serve.text
    assert "stopped: 1 session, 0 messages stored in" in serve.text
    assert delivered(serve.maildir) == {}
    assert leftovers(serve.maildir) == []


# --- Ctrl-C and resizing in `learn` (a pseudo-terminal) -------------------------------------


class Terminal(PtySession):
    """`smtp-tutor learn` in a pty whose size is the pty's own (no COLUMNS), so it can change."""

    def __init__(self, home: Path, *args: str, rows: int = 50, columns: int = 100) -> None:
        pytest.importorskip("pexpect")
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        env.update(PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm-256color", SMTP_TUTOR_HOME=str(home))
        super().__init__(*args, rows=rows, columns=columns, environment=env)


def saved_step(home: Path) -> str:
    import json

    progress = json.loads((home / "progress.json").read_text(encoding="utf-8"))
    return str(progress["lessons"]["conversation"]["step"])


@pytest.mark.posix
@pytest.mark.parametrize(
    ("lines", "prompt", "step"),
    [
        pytest.param(
            ["helo a.b.c", "mail from:<bugs@looney.example>"], "smtp>", "rcpt", id="at-the-prompt"
        ),
        pytest.param(
            [
                "helo a.b.c",
                "mail from:<bugs@looney.example>",
                "rcpt to:<you@tutor.test>",
                "data",
                "Subject: half a message",
            ],
            "data>",
            "message",
            id="in-data",
            marks=pytest.mark.slow,  # a second pseudo-terminal run; the first stays fast
        ),
    ],
)
def test_ctrl_c_in_learn_keeps_progress_without_a_traceback(
    tutor_home: Path, lines: list[str], prompt: str, step: str
) -> None:
    terminal = Terminal(tutor_home, "learn", "1")
    for line in lines:
        terminal.type(line)
    # The last line as sent (line ending shown), then the prompt after it: the one that
    # prompt_toolkit draws again for the line just typed would let Ctrl-C come too early.
    terminal.expect(re.escape(lines[-1]) + "␍␊")
    terminal.expect(prompt)
    terminal.child.sendintr()
    assert terminal.finish() == 1  # left unfinished
    screen = terminal.screen()
    assert "Traceback" not in screen
    assert "Progress is kept" in screen
    assert saved_step(tutor_home) == step

    again = Terminal(tutor_home, "learn", "1")  # and the lesson picks up there
    again.expect(r"(smtp|data)>")
    again.child.sendintr()
    assert again.finish() == 1
    assert "Traceback" not in again.screen()


@pytest.mark.posix
@pytest.mark.slow
def test_resizing_the_terminal_mid_lesson(tutor_home: Path) -> None:
    terminal = Terminal(tutor_home, "learn", "1", columns=100)
    box = terminal.expect(r"╭─ Step 2/\d+[^\n]*")
    assert len(box.group(0)) == 100
    terminal.type("helo a.b.c")
    terminal.expect(r"smtp>")
    terminal.child.setwinsize(40, 60)  # the window shrinks while the learner types
    terminal.child.sendline("mail from:<bugs@looney.example>")
    box = terminal.expect(r"╭─ Step 4/\d+[^\n]*")
    assert len(box.group(0)) == 60, "the next step's box is drawn at the new width"
    after = terminal.screen()[box.start() :]
    terminal.type("rcpt to:<you@tutor.test>")
    terminal.expect(r"250 2\.1\.5")
    terminal.expect(r"smtp>")
    terminal.child.sendintr()
    assert terminal.finish() == 1
    assert "Traceback" not in terminal.screen()
    wide = [line for line in after.split("\n") if len(line) > 60 and "│" in line]
    assert wide == [], "boxes after the resize fit in 60 columns"
