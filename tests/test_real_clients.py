"""Real third-party SMTP clients against the in-process teaching server.

stdlib smtplib, `openssl s_client -starttls smtp` and swaks: if the server speaks SMTP
the way the RFCs say, these clients work with it unchanged. A missing command-line tool
skips its tests on a development machine and fails them in CI (the CI variable is set;
CONTRIBUTING.md, "Two test tiers").
"""

from __future__ import annotations

import re
import smtplib
import ssl
import subprocess
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.support import require_tool
from tutor.server.capture import Capture
from tutor.server.persona import DEMO_ACCOUNTS
from tutor.server.runner import TeachingServer
from tutor.smtp.events import MessageStored

TIMEOUT = 10.0
PROCESS_TIMEOUT = 30.0
DEMO_USER = "you"
DEMO_PASSWORD = DEMO_ACCOUNTS[DEMO_USER]


# --- helpers ------------------------------------------------------------------------------------


def run(argv: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=PROCESS_TIMEOUT, check=False
    )


def no_verify() -> ssl.SSLContext:
    """The teaching certificate is self-signed: like most MTAs, do not verify it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def messages_stored(capture: Capture) -> list[MessageStored]:
    return [m for record in capture.sessions() for m in record.messages]


def wait_for_messages(server: TeachingServer, count: int) -> list[MessageStored]:
    assert server.capture.wait_for(lambda: len(messages_stored(server.capture)) >= count, TIMEOUT)
    return messages_stored(server.capture)


def files_in(server: TeachingServer, folder: str) -> list[Path]:
    return sorted((server.maildir / folder).glob("new/*"))


def received_protocol(path: Path) -> str:
    match = re.search(r"\bby mx\.tutor\.test with (\w+) id ", path.read_text())
    assert match, path.read_text()
    return match.group(1)


def sample_message(**headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Bugs Bunny <bugs@looney.example>"
    message["Subject"] = "What's up, doc?"
    for name, value in headers.items():
        message[name] = value
    message.set_content("Sent by a real client library.\n")
    return message


# --- stdlib smtplib -------------------------------------------------------------------------------


def test_smtplib_sendmail_stores_the_message(server: TeachingServer) -> None:
    message = sample_message(To="Daffy Duck <daffy@looney.example>")
    with smtplib.SMTP(*server.address, timeout=TIMEOUT) as smtp:
        refused = smtp.sendmail("bugs@looney.example", ["you@tutor.test"], message.as_bytes())
    assert refused == {}
    (stored,) = wait_for_messages(server, 1)
    assert stored.recipients == ("you@tutor.test",)
    (path,) = files_in(server, "you")
    assert "To: Daffy Duck <daffy@looney.example>" in path.read_text()
    assert received_protocol(path) == "ESMTP"


def test_smtplib_send_message_uses_to_cc_bcc_and_strips_bcc(server: TeachingServer) -> None:
    message = sample_message(To="you@tutor.test", Cc="alice@tutor.test", Bcc="bob@tutor.test")
    with smtplib.SMTP(*server.address, timeout=TIMEOUT) as smtp:
        assert smtp.send_message(message) == {}

    (stored,) = wait_for_messages(server, 1)
    assert stored.sender == "bugs@looney.example", "MAIL FROM came from the From: header"
    assert set(stored.recipients) == {"you@tutor.test", "alice@tutor.test", "bob@tutor.test"}
    for folder in ("you", "alice", "bob"):
        (path,) = files_in(server, folder)
        text = path.read_text()
        assert "\nBcc:" not in text, f"the Bcc header reached {folder}"
        assert f"Delivered-To: {folder}@tutor.test" in text
    assert "bob@tutor.test" not in files_in(server, "you")[0].read_text()


def test_smtplib_starttls_and_login_may_relay(server: TeachingServer) -> None:
    message = sample_message(To="friend@example.test")
    with smtplib.SMTP(*server.address, timeout=TIMEOUT) as smtp:
        smtp.ehlo("client.example")
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth"), "AUTH is offered only under TLS"
        smtp.starttls(context=no_verify())
        smtp.ehlo("client.example")
        assert smtp.has_extn("auth")
        code, _ = smtp.login(DEMO_USER, DEMO_PASSWORD)
        assert code == 235
        assert smtp.sendmail("you@tutor.test", ["friend@example.test"], message.as_bytes()) == {}

    (stored,) = wait_for_messages(server, 1)
    assert stored.relayed == ("friend@example.test",)
    (path,) = files_in(server, "captured-relay")
    assert "Delivered-To: friend@example.test" in path.read_text()
    assert received_protocol(path) == "ESMTPSA"


def test_smtplib_relay_without_login_is_refused(server: TeachingServer) -> None:
    with (
        smtplib.SMTP(*server.address, timeout=TIMEOUT) as smtp,
        pytest.raises(smtplib.SMTPRecipientsRefused) as refused,
    ):
        smtp.sendmail("you@tutor.test", ["friend@example.test"], b"Subject: x\r\n\r\nx\r\n")
    code, text = refused.value.recipients["friend@example.test"]
    assert code == 550
    assert text.startswith(b"5.7.1 ")
    assert files_in(server, "captured-relay") == []


# --- openssl s_client -----------------------------------------------------------------------------


def s_client(server: TeachingServer, *extra: str) -> list[str]:
    host, port = server.address
    openssl = require_tool("openssl")
    return [openssl, "s_client", "-starttls", "smtp", "-connect", f"{host}:{port}", *extra]


def test_openssl_s_client_sends_a_message_over_starttls(server: TeachingServer) -> None:
    session = (
        "EHLO client.example\n"
        "MAIL FROM:<bugs@looney.example>\n"
        "RCPT TO:<you@tutor.test>\n"
        "DATA\n"
        "From: Bugs Bunny\n"
        "Subject: typed into openssl s_client\n"
        "\n"
        "Encrypted by STARTTLS, one hop only.\n"
        ".\n"
        "QUIT\n"
    )
    result = run(s_client(server, "-crlf", "-quiet"), session)
    output = result.stdout
    assert "354 " in output, output + result.stderr
    after_data = output[output.index("354 ") :]
    match = re.search(r"^250 2\.0\.0 OK id=(\S+)\r?$", after_data, re.MULTILINE)
    assert match, output
    assert "221 2.0.0" in after_data

    (stored,) = wait_for_messages(server, 1)
    assert stored.queue_id == match.group(1)
    (path,) = files_in(server, "you")
    assert "Subject: typed into openssl s_client" in path.read_text()
    assert received_protocol(path) == "ESMTPS"


def test_openssl_s_client_shows_the_teaching_certificate(server: TeachingServer) -> None:
    result = run(s_client(server, "-ign_eof"), "QUIT\n")
    output = result.stdout
    assert re.search(r"^subject=\s*CN\s*=\s*mx\.tutor\.test\b", output, re.MULTILINE), output
    assert "221 2.0.0" in output


# --- swaks --------------------------------------------------------------------------------------


def swaks(server: TeachingServer, *extra: str) -> subprocess.CompletedProcess[str]:
    host, port = server.address
    argv = [
        require_tool("swaks"), "--server", host, "--port", str(port),
        "--to", "you@tutor.test", "--from", "x@example.test",
        "--helo", "client.example", "--timeout", "10", *extra,
    ]  # fmt: skip
    return run(argv)


STARTTLS = ("--tls",)
DEMO_AUTH = ("--auth", "PLAIN", "--auth-user", DEMO_USER, "--auth-password", DEMO_PASSWORD)


@pytest.mark.parametrize(
    ("options", "protocol"),
    [
        ((), "ESMTP"),
        (STARTTLS, "ESMTPS"),
        ((*STARTTLS, *DEMO_AUTH), "ESMTPSA"),
    ],
    ids=["plain", "starttls", "starttls-auth"],
)
def test_swaks_stores_a_message(
    server: TeachingServer, options: tuple[str, ...], protocol: str
) -> None:
    result = swaks(server, *options)
    assert result.returncode == 0, result.stdout + result.stderr
    arrow = "<~" if "--tls" in options else "<-"  # swaks marks replies read under TLS with ~
    assert re.search(rf"^{arrow}\s+250 2\.0\.0 OK id=", result.stdout, re.MULTILINE), result.stdout

    (stored,) = wait_for_messages(server, 1)
    assert stored.sender == "x@example.test"
    (path,) = files_in(server, "you")
    assert received_protocol(path) == protocol
