"""`smtp-tutor serve` as a user runs it: a real subprocess, real clients, its real log."""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.serve_process import ServeProcess
from tests.support import RawClient, require_tool, run_cli, run_cli_process, server_processes
from tutor.server.persona import DEMO_ACCOUNTS

SEED_SESSION = [
    "helo a.b.c",
    "mail from:<bugs@looney.example>",
    "rcpt to:<you@tutor.test>",
    "data",
]
SEED_MESSAGE = (
    b"From: Bugs Bunny\r\nTo: Daffy Duck\r\nSubject: Loony Toons!\r\n\r\nHi there!\r\n.\r\n"
)


need = require_tool


def stored_files(maildir: Path, folder: str) -> list[Path]:
    new = maildir / folder / "new"
    return sorted(new.iterdir()) if new.is_dir() else []


@pytest.fixture(scope="module")
def shared_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One serve for the tests here that only talk to it and read its log (one per xdist
    worker): starting a serve takes a second or two, a test that uses it milliseconds."""
    process = ServeProcess(tmp_path_factory.mktemp("shared-serve") / "Maildir", "--plain")
    yield process
    process.kill()


class ServeShare:
    """A test's share of the shared serve: the messages stored since the test began and the
    log of the sessions it names, so that it does not depend on the tests before it."""

    def __init__(self, process: ServeProcess) -> None:
        self.process = process
        self.maildir = process.maildir
        self.port = process.port
        self.address = process.address
        self._earlier = set(process.maildir.glob("*/new/*"))

    def new_files(self, folder: str) -> list[Path]:
        """The messages stored in `folder` since this test began, oldest first."""
        return [path for path in stored_files(self.maildir, folder) if path not in self._earlier]


@pytest.fixture
def serve(shared_serve: ServeProcess) -> ServeShare:
    return ServeShare(shared_serve)


@pytest.fixture
def fresh_serve(tmp_path: Path) -> Iterator[ServeProcess]:
    """A serve of the test's own: for a test that stops it or counts all it ever did."""
    process = ServeProcess(tmp_path / "Maildir", "--plain")
    yield process
    process.kill()


def test_seed_session_over_a_plain_socket_is_logged_and_explained(serve: ServeShare) -> None:
    with RawClient(serve.address) as client:
        session = serve.process.session_of(client.sock.getsockname()[1])
        assert client.greeting == ["220 mx.tutor.test ESMTP smtp-tutor ready"]
        replies = [client.code(line) for line in SEED_SESSION]
        assert replies[0] == "250 mx.tutor.test Hello a.b.c [127.0.0.1]"
        assert replies[-1].startswith("354 ")
        client.send_raw(SEED_MESSAGE)
        done = client.reply()[-1]
        assert done.startswith("250 2.0.0 OK id=")
        assert client.code("quit").startswith("221 2.0.0")
    queue_id = done.rsplit("=", 1)[1]
    serve.process.wait_in_session(session, b"closed after QUIT")
    log = serve.process.session_text(session)
    # every line the client sent, with its line ending made visible, and every reply explained
    assert "C: helo a.b.c␍␊" in log
    assert "S: 250 mx.tutor.test Hello a.b.c [127.0.0.1]  — Greeting accepted (HELO)" in log
    assert "S: 354 Enter message" in log and "— Go ahead" in log
    assert f"S: 250 2.0.0 OK id={queue_id}  — Message accepted and queued" in log
    assert "S: 250 2.1.5 <you@tutor.test> recipient verified  — Recipient accepted" in log
    # the stored message: envelope against headers, mismatch flagged
    stored_line = rb"stored id=" + queue_id.encode() + rb".*"
    stored = serve.process.wait_in_session(session, stored_line).group(0).decode()
    assert "envelope <bugs@looney.example> -> <you@tutor.test>" in stored
    assert "headers From: Bugs Bunny -> To: Daffy Duck" in stored
    assert "headers and envelope disagree" in stored
    [copy] = serve.new_files("you")
    text = copy.read_text()
    assert text.startswith("Return-Path: <bugs@looney.example>\nReceived: from a.b.c ([127.0.0.1])")
    assert f"id {queue_id}" in text and "for <you@tutor.test>;" in text
    assert "Delivered-To: you@tutor.test\nFrom: Bugs Bunny\nTo: Daffy Duck\n" in text


@pytest.mark.slow  # a serve process, then mailbox show in another: 4 s
def test_mailbox_command_shows_the_mismatch(fresh_serve: ServeProcess) -> None:
    serve = fresh_serve
    with RawClient(serve.address) as client:
        for line in SEED_SESSION:
            client.cmd(line)
        client.send_raw(SEED_MESSAGE)
        client.reply()
    listing = run_cli_process("mailbox", "--maildir", str(serve.maildir), "--plain")
    assert listing.returncode == 0, listing.stderr
    assert "your mailbox (you@tutor.test)" in listing.stdout and "you's" not in listing.stdout
    assert "<bugs@looney.example> -> <you@tutor.test>" in listing.stdout
    assert "Bugs Bunny -> Daffy Duck (!)" in listing.stdout
    shown = run_cli_process("mailbox", "show", "you/1", "--maildir", str(serve.maildir), "--plain")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "MAIL FROM:<bugs@looney.example>" in out and "From: Bugs Bunny" in out
    assert "RCPT TO:<you@tutor.test>" in out and "To: Daffy Duck" in out
    assert "server> Return-Path: <bugs@looney.example>" in out
    assert "server> Delivered-To: you@tutor.test" in out
    assert "From: does not name the envelope sender" in out
    raw = run_cli_process("mailbox", "show", "you/1", "--raw", "--maildir", str(serve.maildir))
    assert raw.stdout.startswith("Return-Path: <bugs@looney.example>\n")
    missing = run_cli_process("mailbox", "show", "you/9", "--maildir", str(serve.maildir))
    assert missing.returncode == 1
    assert missing.stderr.startswith("smtp-tutor: no message 'you/9'")
    assert "Traceback" not in missing.stderr


def test_two_local_recipients_get_two_copies_each_with_its_own_for(serve: ServeShare) -> None:
    with smtplib.SMTP(*serve.address, timeout=10) as smtp:
        refused = smtp.sendmail(
            "sender@example.test",
            ["you@tutor.test", "alice@tutor.test"],
            b"From: sender@example.test\r\nTo: team@example.test\r\nSubject: two\r\n\r\nbody\r\n",
        )
    assert refused == {}
    [mine] = serve.new_files("you")
    [hers] = serve.new_files("alice")
    assert "for <you@tutor.test>;" in mine.read_text()
    assert "for <alice@tutor.test>;" in hers.read_text()
    assert "alice" not in mine.read_text().split("\n\n")[0].split("Delivered-To")[0]


def test_smtplib_starttls_and_login_then_relay_is_captured(serve: ServeShare) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP(*serve.address, timeout=10) as smtp:
        session = serve.process.session_of(smtp.sock.getsockname()[1])
        smtp.ehlo("client.example.test")
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")
        smtp.starttls(context=context)
        smtp.ehlo("client.example.test")
        assert smtp.has_extn("auth")
        smtp.login("you", DEMO_ACCOUNTS["you"])
        message = EmailMessage()
        message["From"] = "you@tutor.test"
        message["To"] = "friend@example.test"
        message["Subject"] = "relayed after AUTH"
        message.set_content("hello")
        smtp.send_message(message)
    serve.process.wait_in_session(session, rb"TLS started: TLSv1\.[23]")
    serve.process.wait_in_session(session, rb"AUTH PLAIN: authenticated as you")
    serve.process.wait_in_session(session, rb"stored id=\w+ in captured-relay")
    [captured] = serve.new_files("captured-relay")
    assert "with ESMTPSA id" in captured.read_text()


def test_openssl_s_client_starttls_session(serve: ServeShare) -> None:
    openssl = need("openssl")
    connect = ["s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{serve.port}"]
    # -quiet, as the tutor advises: without it, lines starting with R or Q are
    # taken as openssl's own commands (renegotiate, quit), so RCPT TO never arrives.
    script = (
        "EHLO openssl.example.test\n"
        "MAIL FROM:<a@example.test>\n"
        "RCPT TO:<bob@tutor.test>\n"
        "DATA\n"
        "Subject: over TLS\n\nsecret\n.\n"
        "QUIT\n"
    )
    session = subprocess.run(
        [openssl, *connect, "-crlf", "-quiet"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "250 2.0.0 OK id=" in session.stdout, session.stdout + session.stderr
    [copy] = serve.new_files("bob")
    assert "with ESMTPS id" in copy.read_text()
    details = subprocess.run(
        [openssl, *connect], input="", capture_output=True, text=True, timeout=60
    )
    assert "CN = mx.tutor.test" in details.stdout or "CN=mx.tutor.test" in details.stdout
    # signed by the smtp-tutor local CA, which openssl does not know without -CAfile
    assert "i:CN = smtp-tutor local CA" in details.stdout
    assert "unable to verify the first certificate" in details.stdout


def test_swaks_delivers_plain_and_with_tls(serve: ServeShare) -> None:
    swaks = need("swaks")
    base = [
        swaks,
        "--server",
        "127.0.0.1",
        "--port",
        str(serve.port),
        "--to",
        "you@tutor.test",
        "--from",
        "swaks@example.test",
        "--helo",
        "swaks.example.test",
    ]
    plain = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "<-  250 2.0.0 OK id=" in plain.stdout
    tls = subprocess.run([*base, "--tls"], capture_output=True, text=True, timeout=60)
    assert tls.returncode == 0, tls.stdout + tls.stderr
    assert "<~  250 2.0.0 OK id=" in tls.stdout
    assert len(serve.new_files("you")) == 2


def test_nc_with_bare_lf_is_told_at_once(serve: ServeShare) -> None:
    with socket.create_connection(serve.address, timeout=10) as sock:
        session = serve.process.session_of(sock.getsockname()[1])
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(b"helo a.b.c\n")
        assert reader.readline().startswith(b"250 ")
        serve.process.wait_in_session(session, rb"bare LF: client ends lines with LF only.*nc -C")
        for line in (b"mail from:<a@example.test>\n", b"rcpt to:<you@tutor.test>\n", b"data\n"):
            sock.sendall(line)
            reader.readline()
        sock.sendall(b"Subject: lf\n\nbody\n.\n")
        inside_data = rb"bare LF: client sends LF only inside DATA: this message cannot end"
        serve.process.wait_in_session(session, inside_data)
    assert serve.new_files("you") == []


def test_nc_dash_c_session(serve: ServeShare) -> None:
    nc = need("nc", linux_only=True)
    script = (
        b"helo nc.example.test\nmail from:<nc@example.test>\nrcpt to:<alice@tutor.test>\n"
        b"data\nSubject: nc\n\nhi\n.\nquit\n"
    )
    result = subprocess.run(
        [nc, "-C", "-w", "5", "127.0.0.1", str(serve.port)],
        input=script,
        capture_output=True,
        timeout=60,
    )
    assert b"250 2.0.0 OK id=" in result.stdout
    assert len(serve.new_files("alice")) == 1
    session = serve.process.session_where(rb"C: helo nc\.example\.test")
    serve.process.wait_in_session(session, b"closed after QUIT")
    assert "bare LF" not in serve.process.session_text(session)


def test_hostile_client_text_is_shown_literally(serve: ServeShare) -> None:
    with RawClient(serve.address) as client:
        session = serve.process.session_of(client.sock.getsockname()[1])
        client.cmd("EHLO [bold red]x[/]")
        client.cmd(b"EHLO \x1b]0;pwned\x07evil")
        client.cmd("HELO \u202eevil")
        client.cmd(b"NOOP \x1b[2J")
        client.cmd("QUIT")
    serve.process.wait_in_session(session, b"closed after QUIT")
    raw = b"".join(serve.process.output)  # the whole log so far, this session's included
    assert b"\x1b" not in raw and b"\x07" not in raw and "\u202e".encode() not in raw
    log = serve.process.session_text(session)
    assert "C: EHLO [bold red]x[/]␍␊" in log
    assert "C: EHLO \\x1b]0;pwned\\x07evil␍␊" in log
    assert "C: HELO \\u202eevil␍␊" in log
    assert "C: NOOP \\x1b[2J␍␊" in log


def test_ctrl_c_stops_cleanly_and_keeps_acknowledged_mail(fresh_serve: ServeProcess) -> None:
    serve = fresh_serve
    with RawClient(serve.address) as client:
        for line in SEED_SESSION:
            client.cmd(line)
        client.send_raw(SEED_MESSAGE)
        assert client.reply()[-1].startswith("250 ")
        assert serve.interrupt() == 0
        assert client.reply() == [
            "421 4.3.2 mx.tutor.test Service shutting down, closing connection"
        ]
    assert b"Traceback" not in serve.stderr
    assert "stopped: 1 session, 1 message stored in" in serve.text
    assert len(stored_files(serve.maildir, "you")) == 1


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(
            "serve", "--host", "127.0.0.1", "--port", str(port), "--maildir", str(tmp_path / "m")
        )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"smtp-tutor: port {port} is already in use on 127.0.0.1; pick another with --port"
    )


def test_non_loopback_host_warns(tmp_path: Path) -> None:
    process = ServeProcess(tmp_path / "m", "--host", "0.0.0.0")
    try:
        process.interrupt()
    finally:
        process.kill()
    assert b"warning: listening on 0.0.0.0, not loopback" in process.stderr


# A sitecustomize module: read by serve and by its server process alike (spawned, or
# forked from a forkserver that read it), so the network calls of both are logged.
AUDIT = """
import os, socket, sys
log = open({log!r}, "a")
linked = open({linked!r}, "a")
def hook(event, args):
    if event == "os.rename":  # a delivery (a copy into new/): the process that delivers is audited
        linked.write(f"{{os.getpid()}}\\n"); linked.flush()
    elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"):
        log.write(f"{{os.getpid()}} {{event}} {{args!r}}\\n"); log.flush()
    elif event == "socket.connect" and args[0].family != socket.AF_UNIX:  # not local IPC
        log.write(f"{{os.getpid()}} {{event}} {{args!r}}\\n"); log.flush()
sys.addaudithook(hook)
"""


def test_no_outbound_connection_even_as_an_open_relay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit_log = tmp_path / "audit.log"
    (tmp_path / "hook").mkdir()
    linked = tmp_path / "linked.log"
    hook = AUDIT.format(log=str(audit_log), linked=str(linked))
    (tmp_path / "hook" / "sitecustomize.py").write_text(hook)
    path = os.pathsep.join(filter(None, [str(tmp_path / "hook"), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    process = ServeProcess(tmp_path / "Maildir", "--open-relay", "--plain")
    try:
        server_pid = server_processes(process.proc.pid)[0].pid
        with smtplib.SMTP(*process.address, timeout=10) as smtp:
            smtp.sendmail(
                "you@tutor.test",
                ["someone@example.test", "x@nowhere.invalid"],
                b"Subject: relay me\r\n\r\nplease\r\n",
            )
            smtp.sendmail("stranger@gmail.com", ["friend@yahoo.com"], b"Subject: r\r\n\r\nb\r\n")
        process.wait_for(rb"bounce \(DSN 5\.1\.2\)")
        assert process.interrupt() == 0
    finally:
        process.kill()
    assert audit_log.read_text() == ""
    assert str(server_pid) in linked.read_text().split()  # the server's process was audited
    relayed = stored_files(tmp_path / "Maildir", "captured-relay")
    assert len(relayed) == 3  # two recipients of the first message, one of the second
    [bounce] = stored_files(tmp_path / "Maildir", "you")
    assert bounce.read_text().startswith("Return-Path: <>\n")


def test_transcripts_one_file_per_session(tmp_path: Path) -> None:
    handouts = tmp_path / "handouts"
    process = ServeProcess(
        tmp_path / "Maildir",
        "--plain",
        "--transcripts",
        str(handouts),
        "--transcript-format",
        "html",
    )
    try:
        for number, name in enumerate(("first.example", "second.example"), start=1):
            with RawClient(process.address) as client:
                client.cmd(f"EHLO {name}")
                client.cmd("QUIT")
            process.wait_for(rb"#%d +closed after QUIT" % number)
        with RawClient(process.address) as client:  # still open when the server stops
            client.cmd("HELO third.example")
            assert process.interrupt() == 0
    finally:
        process.kill()
    [run] = handouts.iterdir()  # DIR/RUN/STUDENT/session-NNNN.html
    files = sorted(str(p.relative_to(run)) for p in run.glob("*/*"))
    assert files == [
        "first.example/session-0001.html",
        "second.example/session-0002.html",
        "third.example/session-0003.html",
    ]
    first = (run / "first.example" / "session-0001.html").read_text()
    assert "EHLO first.example" in first and "Greeting accepted (EHLO)" in first
    assert "second.example" not in first
    assert "Service shutting down" in (run / "third.example" / "session-0003.html").read_text()
