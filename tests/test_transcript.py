"""Transcripts from real tools against the real teaching server, read back and explained.

swaks, smtplib's debug output, and nc / telnet sessions as a terminal shows them are all
produced here, against the in-process server. A missing tool skips its test on a
development machine and fails it in CI (the CI variable is set).
"""

from __future__ import annotations

import io
import os
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console, RenderableType

from tests.support import require_tool
from tutor.errors import UserError
from tutor.explain.transcript import Transcript, detect_format, parse, read
from tutor.server.runner import TeachingServer
from tutor.smtp.wire import parse_reply_line
from tutor.ui.reference.annotate_view import render_transcript

TIMEOUT = 10.0
PROCESS_TIMEOUT = 30.0
BODY_LINE = "550 looks like a reply"


def render(renderable: RenderableType) -> str:
    console = Console(record=True, width=100, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def data_text(t: Transcript) -> str:
    (data,) = [e for e in t.exchanges if e.kind == "data"]
    return data.sent.decode()


def server_lines(t: Transcript) -> list[str]:
    return [turn.text for turn in t.turns if turn.direction == "server"]


# --- producing transcripts with real tools ------------------------------------------------


def swaks(server: TeachingServer, *extra: str) -> str:
    host, port = server.address
    argv = [
        require_tool("swaks"), "--server", host, "--port", str(port),
        "--to", "you@tutor.test", "--from", "x@example.test",
        "--helo", "client.example", "--timeout", "10",
        "--body", f"Hello.\n{BODY_LINE}\n.a line that starts with a dot",
        *extra,
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
    return result.stdout + result.stderr  # a terminal shows both; *** lines go to stderr


SMTPLIB_SCRIPT = """
import smtplib, sys
host, port, level = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with smtplib.SMTP(timeout=10) as smtp:
    smtp.set_debuglevel(level)
    smtp.connect(host, port)
    smtp.ehlo("client.example")
    smtp.sendmail(
        "x@example.test",
        ["you@tutor.test", "nobody@tutor.test"],
        b"Subject: hi\\r\\n\\r\\n550 looks like a reply\\r\\n",
    )
"""


def smtplib_debug(server: TeachingServer, level: int) -> str:
    host, port = server.address
    argv = [sys.executable, "-c", SMTPLIB_SCRIPT, host, str(port), str(level)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
    assert result.returncode == 0, result.stderr
    return result.stderr  # smtplib prints its debug output on stderr


SESSION = [
    "EHLO client.example",
    "MAIL FROM:<x@example.test>",
    "RCPT TO:<you@tutor.test>",
    "RCPT TO:<nobody@tutor.test>",
    "DATA",
    "Subject: typed by hand",
    "",
    BODY_LINE,
    ".",
    "QUIT",
]


def terminal_log(argv: list[str], lines: list[str]) -> str:
    """Type `lines` into a real nc/telnet one at a time, as a person would, waiting for each
    reply (none inside DATA), and return what the terminal shows: typed and received lines
    interleaved in order."""
    shown: list[str] = []
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdin is not None and process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    pending = b""

    def read_reply() -> None:
        nonlocal pending
        deadline = time.monotonic() + TIMEOUT
        while True:
            while b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                line = raw.decode("utf-8", "replace").rstrip("\r")
                shown.append(line)
                parsed = parse_reply_line(line)
                if parsed is not None and parsed.final:
                    return
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError(f"no complete reply after {shown!r}")
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                raise ConnectionError(f"closed after {shown!r}")
            pending += chunk

    try:
        read_reply()  # the greeting (telnet's own lines come first)
        in_data = False
        for line in lines:
            shown.append(line)  # what the terminal echoes as the user types
            process.stdin.write(line.encode() + b"\n")
            process.stdin.flush()
            if in_data and line != ".":
                continue
            read_reply()
            in_data = shown[-1].startswith("354")
        process.stdin.close()
        deadline = time.monotonic() + TIMEOUT
        while (left := deadline - time.monotonic()) > 0 and selector.select(left):
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            pending += chunk
        process.wait(timeout=TIMEOUT)
        shown += pending.decode("utf-8", "replace").replace("\r", "").splitlines()
    finally:
        selector.close()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=TIMEOUT)
        process.stdout.close()
    return "\n".join(shown) + "\n"


# --- swaks --------------------------------------------------------------------------------


def test_real_swaks_session(server: TeachingServer) -> None:
    output = swaks(server)
    t = parse(output)
    assert t.format == "swaks" and not t.line_endings_shown
    kinds = [e.kind for e in t.exchanges]
    assert kinds == ["greeting", "command", "command", "command", "command", "data", "command"]
    assert BODY_LINE in data_text(t) and BODY_LINE not in server_lines(t)
    assert "..a line that starts with a dot" in data_text(t), "swaks shows the stuffed dot"
    queue_id = re.search(r"OK id=(\S+)", output)
    assert queue_id is not None
    assert t.summary.outcome == "accepted"
    assert t.summary.outcome_text == f"message accepted (queue id {queue_id.group(1)})"
    assert t.summary.sender == "x@example.test" and t.summary.accepted == ("you@tutor.test",)
    assert t.summary.problem is None
    headlines = [s.annotation.headline for s in t.steps if s.annotation]
    assert headlines[2].startswith("Sender accepted")
    assert headlines[3].startswith("Recipient accepted")
    assert headlines[5].startswith("Message accepted")
    assert any("Connected to" in note.text for note in t.notes)


def test_real_swaks_with_starttls(server: TeachingServer) -> None:
    t = parse(swaks(server, "--tls"))
    assert t.format == "swaks"
    verbs = [(e.verb, e.tls) for e in t.exchanges if e.kind == "command"]
    assert verbs[:3] == [("EHLO", False), ("STARTTLS", False), ("EHLO", True)]
    assert all(e.tls for e in t.exchanges[4:]), "everything after STARTTLS went under TLS"
    assert any(note.text.startswith("TLS started") for note in t.notes)
    tls_step = t.steps[2]
    assert tls_step.after.tls and not tls_step.after.greeted
    assert tls_step.annotation is not None and "EHLO again" in tls_step.annotation.headline
    assert t.summary.outcome == "accepted"
    out = render(render_transcript(t))
    assert "TLS C: EHLO client.example" in out and "TLS S: 250" in out
    assert "C: STARTTLS" in out and "TLS C: STARTTLS" not in out


def test_real_swaks_failing_run(server: TeachingServer) -> None:
    t = parse(swaks(server, "--to", "nobody@tutor.test"))
    assert t.summary.outcome == "never sent"
    assert t.summary.outcome_text == "message never sent: no recipient was accepted"
    assert t.summary.refused == ("nobody@tutor.test",) and t.summary.accepted == ()
    problem = t.summary.problem
    assert problem is not None and problem.sent == "RCPT TO:<nobody@tutor.test>"
    assert problem.reply[-1].startswith("550 5.1.1")
    assert problem.headline == "No such user: <nobody@tutor.test> does not exist at this domain"
    assert [s.unexpected for s in t.steps].count(True) == 1, "swaks marks it <**"
    out = render(render_transcript(t, plain=True))
    assert "what went wrong: RCPT TO:<nobody@tutor.test> → 550 5.1.1" in out


# --- smtplib ------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [1, 2])
def test_real_smtplib_debug_output(server: TeachingServer, level: int) -> None:
    output = smtplib_debug(server, level)
    if level == 2:
        assert re.match(r"\d\d:\d\d:\d\d\.\d+ ", output), "level 2 adds timestamps"
    t = parse(output)
    assert t.format == "smtplib" and t.line_endings_shown
    verbs = [e.verb for e in t.exchanges if e.kind == "command"]
    assert verbs == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"], (
        "retcode lines are not replies"
    )
    assert t.exchanges[0].kind == "greeting"
    assert all(e.sent.endswith(b"\r\n") for e in t.exchanges if e.kind == "command")
    assert BODY_LINE in data_text(t) and BODY_LINE not in server_lines(t)
    assert t.summary.outcome == "accepted"
    assert t.summary.accepted == ("you@tutor.test",)
    assert t.summary.refused == ("nobody@tutor.test",)
    out = render(render_transcript(t))
    assert "C: ehlo client.example␍␊" in out
    assert f"C| {BODY_LINE}␍␊" in out
    assert "message data (4 lines" in out


# --- nc and telnet, as a terminal shows them ----------------------------------------------


def test_real_nc_session(server: TeachingServer) -> None:
    host, port = server.address
    log = terminal_log([require_tool("nc", linux_only=True), "-C", host, str(port)], SESSION)
    assert f"\n{BODY_LINE}\n.\n250 2.0.0 OK id=" in log, log
    t = parse(log)
    assert t.format == "nc"
    assert [e.kind for e in t.exchanges].count("data") == 1
    assert BODY_LINE in data_text(t) and BODY_LINE not in server_lines(t)
    assert t.summary.outcome == "accepted"
    assert t.summary.refused == ("nobody@tutor.test",)
    out = render(render_transcript(t))
    assert f"C| {BODY_LINE}" in out and f"S: {BODY_LINE}" not in out


def test_real_telnet_session(server: TeachingServer) -> None:
    host, port = server.address
    log = terminal_log([require_tool("telnet"), host, str(port)], SESSION)
    t = parse(log)
    assert t.format == "telnet"
    assert any(note.text.startswith("Connected to") for note in t.notes)
    assert BODY_LINE in data_text(t) and BODY_LINE not in server_lines(t)
    assert t.summary.outcome == "accepted"


# --- formats, by hand ---------------------------------------------------------------------


def test_every_swaks_marker() -> None:
    text = "\n".join(
        [
            "=== Trying 127.0.0.1:2525...",
            "<-  220 mx.tutor.test ESMTP",
            " -> EHLO a",
            "<-  250-mx.tutor.test Hello",
            "<-  250 STARTTLS",
            " -> STARTTLS",
            "<-  220 2.0.0 Ready to start TLS",
            " ~> EHLO a",
            "<~  250 mx.tutor.test Hello",
            " ~> MAIL FROM:<x@example.test>",
            "<~* 553 5.1.7 Malformed",
            "*~> QUIT",
            "<~  221 bye",
            " -> NOOP",
            "<** 421 4.4.2 gone",
            "**> extra",
            "*** Remote host closed connection unexpectedly.",
        ]
    )
    t = parse(text)
    assert t.format == "swaks"
    by_direction = {(turn.direction, turn.tls, turn.unexpected) for turn in t.turns}
    assert ("server", True, True) in by_direction and ("client", True, True) in by_direction
    assert ("server", False, True) in by_direction and ("client", False, True) in by_direction
    assert [n.error for n in t.notes] == [False, True]
    assert t.exchanges[-1].sent == b"extra" and not t.exchanges[-1].answered
    assert [s.unexpected for s in t.steps] == [False, False, False, False, True, True, True, True]


def test_pipelined_swaks_pairs_replies_in_order() -> None:
    text = "\n".join(
        [
            "<-  220 mx ESMTP",
            " -> MAIL FROM:<x@example.test>",
            " -> RCPT TO:<you@tutor.test>",
            " -> DATA",
            "<-  250 2.1.0 ok",
            "<-  250 2.1.5 ok",
            '<-  354 Enter message, ending with "." on a line by itself',
            " -> Subject: x",
            " -> ",
            " -> 354 is not a reply here",
            " -> .",
            "<-  250 2.0.0 OK id=AB12",
        ]
    )
    t = parse(text)
    pairs = [(e.kind, e.code) for e in t.exchanges]
    assert pairs == [("greeting", 220), ("command", 250), ("command", 250), ("command", 354),
                     ("data", 250)]  # fmt: skip
    assert data_text(t) == "Subject: x\n\n354 is not a reply here\n.\n"
    assert t.summary.queue_ids == ("AB12",)


def test_a_telnet_log_with_a_reply_shaped_body_line() -> None:
    log = "\n".join(
        [
            "Trying 127.0.0.1...",
            "Connected to localhost.",
            "Escape character is '^]'.",
            "220 mx.tutor.test ESMTP smtp-tutor ready",
            "HELO a.b.c",
            "250 mx.tutor.test Hello a.b.c [127.0.0.1]",
            "MAIL FROM:<x@example.test>",
            "250 2.1.0 ok",
            "RCPT TO:<you@tutor.test>",
            "250 2.1.5 ok",
            "DATA",
            "354 Enter message",
            "From: Bugs Bunny",
            "",
            "550-not a reply",
            "250 not a reply either",
            ".",
            "250 2.0.0 OK id=Q1",
            "QUIT",
            "221 2.0.0 bye",
            "Connection closed by foreign host.",
        ]
    )
    assert detect_format(log.splitlines()) == "telnet"
    t = parse(log)
    assert data_text(t) == "From: Bugs Bunny\n\n550-not a reply\n250 not a reply either\n.\n"
    assert [n.text for n in t.notes][-1] == "Connection closed by foreign host."
    assert t.summary.outcome_text == "message accepted (queue id Q1)"


def test_a_session_that_never_ends_its_message() -> None:
    log = (
        "220 mx ESMTP\nEHLO a\n250 mx\nMAIL FROM:<a@b.example>\n250 ok\nRCPT TO:<you@tutor.test>\n"
    )
    log += "250 ok\nDATA\n354 go\nSubject: x\n\nbody\n421 4.4.2 Idle timeout\n"
    t = parse(log)
    assert t.format == "nc"
    assert t.steps[-1].after.in_data
    assert (
        t.summary.outcome_text == "message never sent: the message data never ended with a lone dot"
    )


def test_notices_auth_answers_and_an_empty_command() -> None:
    log = "\n".join(
        [
            "220 mx ESMTP",
            "EHLO a",
            "250 mx",
            "",
            "500 5.5.2 Empty command line",
            "AUTH LOGIN",
            "334 VXNlcm5hbWU6",
            "eW91",
            "334 UGFzc3dvcmQ6",
            "dHV0b3ItcGFzc3dvcmQ=",
            "235 2.7.0 ok",
            "421 4.4.2 mx Idle timeout, closing connection",
        ]
    )
    t = parse(log)
    kinds = [e.kind for e in t.exchanges]
    assert kinds == ["greeting", "command", "command", "command", "auth", "auth", "notice"]
    assert t.steps[-2].after.auth_user == "you"
    assert t.steps[-1].annotation is not None
    assert t.steps[-1].annotation.headline.startswith("Idle timeout")


def test_smtplib_with_starttls_marks_the_rest_tls() -> None:
    text = "\n".join(
        [
            "send: 'ehlo a\\r\\n'",
            "reply: b'250-mx\\r\\n'",
            "reply: b'250 STARTTLS\\r\\n'",
            "reply: retcode (250); Msg: b'mx\\nSTARTTLS'",
            "send: 'STARTTLS\\r\\n'",
            "reply: b'220 2.0.0 Ready to start TLS\\r\\n'",
            "reply: retcode (220); Msg: b'2.0.0 Ready to start TLS'",
            "send: 'ehlo a\\r\\n'",
            "reply: b'250 mx\\r\\n'",
            "reply: retcode (250); Msg: b'mx'",
        ]
    )
    t = parse(text)
    assert [e.tls for e in t.exchanges] == [False, False, True]
    assert [len(e.replies) for e in t.exchanges] == [2, 1, 1]


@pytest.mark.parametrize("text", ["", "hello\nworld\n", "EHLO a\nMAIL FROM:<a@b>\n"])
def test_text_without_replies_is_refused(text: str) -> None:
    with pytest.raises(UserError):
        parse(text)


def test_read_a_file_or_stdin(tmp_path: Path) -> None:
    from tutor.env import Environment

    log = "220 mx ESMTP\nEHLO a\n250 mx \xe9\nQUIT\n221 bye\n"
    path = tmp_path / "session.log"
    path.write_bytes(log.encode("latin-1"))  # not UTF-8: kept, shown escaped
    env = Environment(stdin=io.TextIOWrapper(io.BytesIO(log.encode())))
    t = read(str(path), env.read_stdin)
    assert t.format == "nc" and len(t.exchanges) == 3
    assert read("-", env.read_stdin).exchanges[1].replies == ("250 mx \xe9",)
    with pytest.raises(UserError, match="cannot read"):
        read(str(tmp_path / "missing.log"), env.read_stdin)


# --- the view -----------------------------------------------------------------------------


def test_untrusted_transcript_text_is_shown_literally() -> None:
    log = "\n".join(
        [
            "220 mx.tutor.test [bold]x[/] \x1b[31mred\x1b[0m ready",
            "EHLO [bold]x[/]\x1b]0;title\x07",
            "250 mx.tutor.test Hello [bold]x[/] \u202eevil",
            "QUIT",
            "221 bye",
        ]
    )
    out = render(render_transcript(parse(log)))
    assert "[bold]x[/]" in out and "\\x1b[31mred" in out and "\\x1b]0;title\\x07" in out
    assert "\\u202e" in out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out


def test_plain_rendering_has_no_boxes_and_keeps_every_word() -> None:
    log = "220 mx ESMTP\nEHLO a\n250 mx\nQUIT\n221 bye\n"
    plain = render(render_transcript(parse(log), plain=True))
    assert not set("╭╮╰╯│") & set(plain)
    assert "== Summary ==" in plain and "outcome: message never sent" in plain
    fancy = render(render_transcript(parse(log)))
    assert "╭" in fancy and "Summary" in fancy
