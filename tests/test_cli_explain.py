"""`explain`, `codes` and `annotate` as a user runs them: exit codes and what they print."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import require_tool, run_cli
from tutor.server.runner import TeachingServer

BOUNCE = """\
<bob@example.test>: host mx.example.test[192.0.2.1] said: 550-5.7.26 This mail
    has been blocked because the sender is unauthenticated.
    550 5.7.26 DMARC policy requires authentication (in reply to end of DATA command)
Status: 5.1.1
"""


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--plain", stdin=stdin, columns=200)


def test_explain_one_code() -> None:
    result = run("explain", "354")
    assert result.returncode == 0
    assert "354 (reply code)" in result.stdout and "RFC 5321" in result.stdout


def test_explain_a_reply_line_explains_code_and_enhanced_code() -> None:
    result = run("explain", "550 5.1.1 <bob@example.test>: Recipient address rejected")
    assert result.returncode == 0
    assert "550 (reply code)" in result.stdout
    assert "5.1.1 (enhanced status code): Bad destination mailbox address" in result.stdout


def test_explain_a_pasted_bounce_from_stdin() -> None:
    result = run("explain", "-", stdin=BOUNCE)
    assert result.returncode == 0, result.stderr
    assert "5.7.26 (enhanced status code): Multiple authentication checks failed" in result.stdout
    assert "5.1.1 (enhanced status code)" in result.stdout


@pytest.mark.parametrize("code", ["299", "6.1.1", "hello"])
def test_explain_unknown_is_one_line_and_fails(code: str) -> None:
    result = run("explain", code)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("smtp-tutor: ")
    assert "Traceback" not in result.stderr


def test_codes_table_and_filter() -> None:
    everything = run("codes")
    assert (
        everything.returncode == 0 and "354" in everything.stdout and "X.7.26" in everything.stdout
    )
    family = run("codes", "55x")
    assert "550" in family.stdout and "421" not in family.stdout
    bad = run("codes", "nonsense")
    assert bad.returncode == 1 and bad.stderr.startswith("smtp-tutor: ")


def test_annotate_a_real_swaks_run(server: TeachingServer, tmp_path: Path) -> None:
    swaks = require_tool("swaks")
    host, port = server.address
    transcript = subprocess.run(
        [
            swaks,
            "--server",
            host,
            "--port",
            str(port),
            "--to",
            "you@tutor.test,nobody@tutor.test",
            "--from",
            "me@example.test",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    log = tmp_path / "swaks.txt"
    log.write_text(transcript.stdout + transcript.stderr)
    result = run("annotate", str(log))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Transcript read as swaks output" in out
    assert "550 5.1.1 <nobody@tutor.test> no such mailbox here" in out
    assert "Recipient accepted" in out and "Message accepted" in out


def test_annotate_a_missing_file_is_one_line() -> None:
    result = run("annotate", "/no/such/transcript.txt")
    assert result.returncode == 1
    assert result.stderr.startswith("smtp-tutor: ") and "Traceback" not in result.stderr
