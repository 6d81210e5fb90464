"""`smtp-tutor sandbox` as a learner runs it: --script, a pipe, a pseudo-terminal.

Everything connects to 127.0.0.1 only. A non-loopback --connect is tested only up to
its question, answered "no": nothing is ever resolved or connected.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox_servers import StockSink, dropping_server, refused_port, silent_listener
from tests.support import run_cli
from tutor.server.runner import TeachingServer
from tutor.smtp.events import RELAY_FOLDER

PLAIN_YOU = "AHlvdQB0dXRvci1wYXNzd29yZA=="

SESSION = [
    "EHLO client.example",
    "STARTTLS",
    "EHLO client.example",
    f"AUTH PLAIN {PLAIN_YOU}",
    "MAIL FROM:<you@tutor.test>",
    "RCPT TO:<carol@elsewhere.example>",
    "DATA",
    "From: You <you@tutor.test>",
    "To: Carol <carol@elsewhere.example>",
    "Subject: from the sandbox",
    "",
    "..a line that starts with a dot",
    ".",
    "/wire",
    "QUIT",
]


def sandbox(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`smtp-tutor sandbox ARGS`, in-process: a pipe or a script, not a terminal (that is the
    pseudo-terminal test's part)."""
    return run_cli("sandbox", *args, stdin=stdin)


def test_a_script_drives_a_whole_starttls_and_auth_session(
    tutor_home: Path, tmp_path: Path
) -> None:
    script = tmp_path / "session.txt"
    script.write_text("\n".join(SESSION) + "\n")
    result = sandbox("--script", str(script), "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert result.stderr == ""
    # every line echoed, sent as typed, replies explained
    assert "smtp> EHLO client.example" in out
    assert "C: STARTTLS␍␊" in out and "S: 220 2.0.0 Ready to start TLS" in out
    # TLS for real: the facts, and the later exchanges marked
    assert "== TLS started: from here on, this connection is encrypted ==" in out
    assert "CN=mx.tutor.test" in out and "CN=smtp-tutor local CA" in out
    assert "verified     yes" in out
    assert "Verified: the certificate for mx.tutor.test was signed by the smtp-tutor" in out
    assert "send EHLO again (RFC 3207 §4.2)" in out
    assert "C: [TLS] EHLO client.example␍␊" in out
    assert "S: [TLS] 250-AUTH PLAIN LOGIN" in out
    # AUTH: accepted, and what was sent decoded
    assert "S: [TLS] 235 2.7.0 Authentication successful" in out
    assert 'You sent base64 of "\\0you\\0tutor-password"' in out
    # the relay, captured; the message in DATA mode with the dot-stuffing note
    assert "accepted for relay" in out
    assert "data> ..a line that starts with a dot" in out and "stores '.a line" in out
    assert f"in: {RELAY_FOLDER} (carol@elsewhere.example): relay mail, captured here" in out
    assert "== On the wire: the last exchange ==" in out and "bytes of TLS ciphertext" in out
    assert "S: [TLS] 221 2.0.0" in out
    [stored] = (tutor_home / "Maildir" / RELAY_FOLDER / "new").iterdir()
    message = stored.read_bytes()
    assert b"with ESMTPSA" in message
    assert b"Subject: from the sandbox" in message
    assert b"\n.a line that starts with a dot\n" in message


def test_slash_commands_from_a_pipe(tutor_home: Path) -> None:
    lines = [
        "/help",
        "/b64 hello",
        f"/b64 {PLAIN_YOU}",
        "/plain you tutor-password",
        "/tls",
        "/state",
        "/mailbox",
        "/nonsense",
        "/pipe EHLO x ; STARTTLS ; NOOP",
        "/reset",
        "/quit",
        "NOOP",  # never read: /quit came first
    ]
    result = sandbox("--plain", stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "/plain USER PASS" in out and "you / tutor-password" in out
    assert "aGVsbG8=" in out
    assert 'it is base64 itself, and decodes to: "\\0you\\0tutor-password"' in out
    assert f"type:  AUTH PLAIN {PLAIN_YOU}" in out
    assert "This connection is not encrypted" in out
    assert "server knows: not greeted" in out
    assert "No messages stored yet." in out
    assert "no sandbox command '/nonsense': /help lists them" in out
    assert "The server threw away 6 bytes of them unread" in out
    assert "New connection: a new session" in out
    assert "smtp> NOOP" not in out


def test_the_stock_aiosmtpd_sink_through_the_cli() -> None:
    sink = StockSink()
    try:
        host, port = sink.address
        result = sandbox(
            "--connect",
            f"{host}:{port}",
            "--plain",
            stdin="EHLO client.example\nSTARTTLS\n/mailbox\nQUIT\n",
        )
    finally:
        sink.close()
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # loopback: no notice
    assert "This is not smtp-tutor's own server" in result.stdout
    assert "did not offer STARTTLS" in result.stdout
    assert "Only the built-in server's mailboxes can be read here" in result.stdout


def test_implicit_tls_with_a_named_server_needs_insecure_for_a_self_signed_cert(
    start_server: Any,
) -> None:
    server: TeachingServer = start_server(tls_port=0)
    port = next(item.port for item in server.listeners if item.implicit_tls)
    refused = sandbox("--connect", f"127.0.0.1:{port}", "--implicit-tls", stdin="QUIT\n")
    assert refused.returncode == 1
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"smtp-tutor: 127.0.0.1:{port}: the server's certificate did not")
    assert line.endswith("--insecure connects without checking (and says so)")
    accepted = sandbox(
        "--connect",
        f"127.0.0.1:{port}",
        "--implicit-tls",
        "--insecure",
        "--plain",
        stdin="EHLO x\nQUIT\n",
    )
    assert accepted.returncode == 0, accepted.stderr
    assert "warning: --insecure" in accepted.stderr
    assert "S: [TLS] 220 mx.tutor.test ESMTP" in accepted.stdout
    assert "Implicit TLS (RFC 8314)" in accepted.stdout
    assert "The certificate was accepted without checking it (--insecure)" in accepted.stdout


def test_refused_timeout_and_dropped_each_one_line(tutor_home: Path) -> None:
    with refused_port() as port:
        refused = sandbox("--connect", f"127.0.0.1:{port}", stdin="")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"smtp-tutor: nothing is listening on 127.0.0.1:{port}: the connection was refused "
        "(no server on that port)"
    ]
    with silent_listener() as (host, port):
        silent = sandbox("--connect", f"{host}:{port}", "--timeout", "0.5", stdin="")
    assert silent.returncode == 1
    [line] = silent.stderr.splitlines()
    assert line.startswith(f"smtp-tutor: 127.0.0.1:{port} accepted the connection but sent no")
    with dropping_server() as (host, port):
        dropped = sandbox("--connect", f"{host}:{port}", "--plain", stdin="EHLO x\nNOOP\n")
    assert dropped.returncode == 0
    assert "S: 220 flaky.example.test ESMTP" in dropped.stdout
    closed = [line for line in dropped.stdout.splitlines() if "closed the connection" in line]
    assert len(closed) == 1 and "/reset opens a new one" in closed[0]
    assert "not connected: /reset opens a new session" in dropped.stdout
    assert "Traceback" not in dropped.stderr


def test_hostile_server_text_is_shown_literally(tmp_path: Path) -> None:
    import contextlib
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(10)
                conn.sendall(
                    b"220 evil.example.test \x1b]0;pwned\x07 [bold]x[/bold] \xe2\x80\xae\r\n"
                )
                conn.recv(1024)
                conn.sendall(b"221 bye\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        host, port = listener.getsockname()[:2]
        result = sandbox("--connect", f"{host}:{port}", stdin="QUIT\n")
    finally:
        thread.join(10)
        listener.close()
    assert result.returncode == 0, result.stderr
    assert "\x1b]" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b]0;pwned\\x07 [bold]x[/bold] \\u202e" in result.stdout


def test_the_starttls_lesson_shows_tls_facts_and_the_wire(tutor_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "lesson.txt"
    answers = [
        "helo client.example",
        "5",
        "starttls",
        "ehlo client.example",
        "starttls",
        "5",
        "mail from:<you@tutor.test>",
        "ehlo client.example",
        "5",
        "starttls",
        "quit",
    ]
    script.write_text("\n".join(answers) + "\n")
    result = run_cli("learn", "starttls", "--script", str(script), "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "== TLS started: from here on, this connection is encrypted ==" in out
    assert "CN=mx.tutor.test" in out and "SHA-256" in out
    wire = [line for line in out.splitlines() if "on the wire:" in line]
    assert len(wire) == 1 and "bytes of ciphertext (17 03 03" in wire[0]
    assert "for your 28 bytes of SMTP text" in wire[0]


def test_the_new_lessons_validate() -> None:
    root = Path(__file__).resolve().parent.parent / "lessons"
    result = run_cli(
        "lessons", "validate", str(root / "10-starttls.toml"), str(root / "11-auth-submission.toml")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 lessons checked and replayed: ok" in result.stdout


# --- the interactive sandbox, in a pseudo-terminal -----------------------------------------


@pytest.mark.posix
def test_interactive_sandbox_prompt_help_b64_plain_quit(tutor_home: Path) -> None:
    from tests.test_learn import Tutor

    tutor = Tutor("sandbox")
    tutor.expect(r"220 mx\.tutor\.test ESMTP smtp-tutor ready")
    tutor.type("/help", prompt=r"smtp>")
    tutor.expect(r"/plain USER PASS")
    tutor.type("/b64 hello", prompt=r"smtp>")
    tutor.expect(r"aGVsbG8=")
    tutor.type("/plain you tutor-password", prompt=r"smtp>")
    tutor.expect(r"AUTH PLAIN AHlvdQB0dXRvci1wYXNzd29yZA==")
    tutor.type("EHLO client.example", prompt=r"smtp>")
    tutor.expect(r"250-STARTTLS")
    tutor.type("/quit", prompt=r"smtp>")
    assert tutor.finish() == 0


@pytest.mark.posix
@pytest.mark.slow
def test_a_non_loopback_server_is_asked_about_first(tutor_home: Path) -> None:
    from tests.test_learn import Tutor

    tutor = Tutor("sandbox", "--connect", "mx.example.com:25")
    tutor.expect(r"connect to mx\.example\.com:25\? this leaves your machine \[y/N\]")
    tutor.child.sendline("n")
    tutor.expect(r"Not connecting\.")
    assert tutor.finish() == 1
