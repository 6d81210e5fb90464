"""A lesson's server in its own process (tutor/server/process.py, mirror=True): the lesson
engine reads every session from the parent's copy of the capture, persona changes hold
before they are acknowledged, the prelaunched server is the one the lesson gets, and no
server process outlives its lesson."""

from __future__ import annotations

import os
import smtplib
from pathlib import Path

import psutil
import pytest

from tests.support import run_cli, server_processes
from tutor.server import process
from tutor.server.persona import Persona
from tutor.server.process import ServerProcess
from tutor.smtp.events import Exchange, MessageStored

WAIT = 20.0
MESSAGE = b"Subject: hi\r\n\r\nhi\r\n"


def _server_children() -> list[psutil.Process]:
    """This process's teaching servers that are still running."""
    return server_processes(os.getpid())


def test_the_parent_holds_every_session_as_the_server_recorded_it(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "Maildir", mirror=True).start()
    try:
        with smtplib.SMTP(*server.address, timeout=WAIT) as client:
            local = client.sock.getsockname() if client.sock else ("", 0)
            client.sendmail("a@example.test", ["you@tutor.test"], MESSAGE)
        capture = server.capture
        assert capture.wait_for(lambda: capture.find_peer(*local[:2]) is not None, WAIT)
        record = capture.find_peer(*local[:2])
        assert record is not None
        assert capture.wait_for(lambda: record.closed is not None, WAIT)
    finally:
        server.stop()
    sent = [e.sent.split(b" ")[0].strip() for e in record.events if isinstance(e, Exchange)]
    assert sent[:2] == [b"", b"ehlo"] and b"QUIT" in sent
    [stored] = [e for e in record.events if isinstance(e, MessageStored)]
    assert stored.recipients == ("you@tutor.test",)


def test_a_persona_change_holds_for_the_next_connection(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "Maildir", mirror=True).start()
    try:
        server.update_persona(open_relay=True)
        with smtplib.SMTP(*server.address, timeout=WAIT) as client:
            assert client.sendmail("a@example.test", ["them@elsewhere.example"], MESSAGE) == {}
        server.update_persona(open_relay=False)
        with (
            smtplib.SMTP(*server.address, timeout=WAIT) as client,
            pytest.raises(smtplib.SMTPRecipientsRefused) as refused,
        ):
            client.sendmail("a@example.test", ["them@elsewhere.example"], MESSAGE)
        [(code, _text)] = refused.value.recipients.values()
        assert code == 550
    finally:
        server.stop()


def test_the_prelaunched_server_takes_the_lessons_persona(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    process.prelaunch(maildir)
    server = process.lesson_server(maildir, Persona(greylist=True))
    try:
        assert process.lesson_server(maildir, Persona()) is not server  # taken once
        server.start()
        with smtplib.SMTP(*server.address, timeout=WAIT) as client:
            client.ehlo("client.example.test")
            client.mail("a@example.test")
            code, _text = client.rcpt("you@tutor.test")
        assert code == 451  # greylisted: the lesson's persona, not the default one
    finally:
        server.stop()
        process.discard_prelaunched()


def test_a_prelaunched_server_for_another_maildir_is_stopped_not_used(tmp_path: Path) -> None:
    process.prelaunch(tmp_path / "one")
    server = process.lesson_server(tmp_path / "two", Persona())
    try:
        assert server.maildir == tmp_path / "two" and server.pid is None
        assert _server_children() == []  # the other one is gone
    finally:
        server.stop()


def test_a_lesson_leaves_no_server_process_behind(tmp_path: Path) -> None:
    script = tmp_path / "session.txt"
    script.write_text("HELO me.example\nQUIT\n")
    result = run_cli("learn", "1", "--script", str(script), "--plain")
    assert "Stopped at step" in result.stdout
    assert _server_children() == []


def test_a_lesson_that_cannot_start_leaves_no_server_process_behind() -> None:
    result = run_cli("learn", "no-such-lesson", "--plain")
    assert result.returncode != 0
    assert _server_children() == []


def test_a_lesson_without_tls_does_not_get_the_prelaunched_tls_server(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    process.prelaunch(maildir)
    server = process.lesson_server(maildir, Persona(tls=False))
    try:
        server.start()
        with smtplib.SMTP(*server.address, timeout=WAIT) as client:
            client.ehlo("client.example.test")
            assert not client.has_extn("starttls")
    finally:
        server.stop()
        process.discard_prelaunched()


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["learn", "1"], "default"),
        (["--plain", "learn", "envelope", "--script", "s.txt"], "default"),
        (["--theme", "light", "demo", "2"], "default"),
        (["learn", "1", "--maildir", "~/class/Maildir"], "~/class/Maildir"),
        (["challenge", "play", "1", "--maildir=m"], "m"),
        (["challenge", "backscatter"], "default"),
        (["--lessons-dir", "learn", "lessons"], None),  # "learn" is the folder here
        (["learn", "1", "--telnet"], None),  # coach mode binds the port it announced
        (["learn", "--help"], None),
        (["challenge", "list"], None),
        (["serve"], None),
        ([], None),
    ],
)
def test_the_words_that_start_a_lesson_start_its_server_early(
    words: list[str], expected: str | None
) -> None:
    from tutor.__main__ import lesson_maildir
    from tutor.paths import default_maildir

    found = lesson_maildir(words)
    if expected is None:
        assert found is None
    elif expected == "default":
        assert found == default_maildir()
    else:
        assert found == Path(expected).expanduser()


def test_a_server_has_the_environment_of_the_moment_it_was_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forkserver's children would otherwise get the forkserver's environment: here the
    data home, and with it the CA a client must trust."""
    import ssl

    from tutor.server.tlsmaterial import ca_file

    ServerProcess(tmp_path / "one", mirror=True).start().stop()  # the forkserver is up
    monkeypatch.setenv("SMTP_TUTOR_HOME", str(tmp_path / "another-home"))
    server = ServerProcess(tmp_path / "two", mirror=True).start()
    try:
        trusted = ssl.create_default_context(cafile=str(ca_file()))
        with smtplib.SMTP(*server.address, timeout=WAIT) as client:
            client.starttls(context=trusted)  # verified against the new home's CA
            assert client.ehlo("client.example.test")[0] == 250
    finally:
        server.stop()
