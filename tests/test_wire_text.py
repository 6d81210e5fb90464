"""Text from the wire on screen: lines end at CR and LF only, long headers are shown cut
with their full size, `annotate` is linear in its input, and UTF-8 and RFC 2047 headers
read decoded in every view (docs/server.md, "Text from the wire on screen").

Messages go through the real server and are shown by the real CLI (`run_cli`); the
full-size repros are in the slow tier, each with a generous time bound. The fast tier
checks the same properties on smaller inputs, and linearity by counting the steps the
parser takes (a trace of the lines run in tutor/), never by timing.
"""

from __future__ import annotations

import io
import queue
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import rich
from rich.console import Console

from tests.support import RawClient, run_cli
from tutor.explain import transcript
from tutor.maildir import mailview
from tutor.sandbox.dashboard_model import DashboardModel, StoredInfo
from tutor.sandbox.serve import ServeOptions
from tutor.server.runner import TeachingServer
from tutor.smtp import envelope
from tutor.smtp.envelope import COMPARED_LIMIT
from tutor.smtp.events import Copy, Event, MessageStored
from tutor.smtp.headers import SUMMARY_LIMIT
from tutor.smtp.textsafe import visible, wire_lines
from tutor.ui.common.mailbox_view import print_raw
from tutor.ui.reference.annotate_view import render_transcript
from tutor.ui.serve.dashboard_view import DashboardView, Header, Transcripts
from tutor.ui.serve.serve_log import ServeLog

# Every character str.splitlines() ends a line at besides CR and LF.
ODD_SEPARATORS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
MOJIBAKE = ("Ã", "Â", "\ufffd")


# --- helpers ------------------------------------------------------------------------------------


def send(server: TeachingServer, content: bytes, *, sender: str = "you@tutor.test") -> str:
    """One message over a real socket (SMTPUTF8, so UTF-8 headers are allowed); its queue id."""
    with RawClient(server.address) as client:
        assert client.code("EHLO client.example").startswith("250 ")
        assert client.code(f"MAIL FROM:<{sender}> SMTPUTF8").startswith("250 ")
        assert client.code("RCPT TO:<you@tutor.test>").startswith("250 ")
        assert client.code("DATA").startswith("354 ")
        client.send_raw(content + b"\r\n.\r\n")
        final = client.reply()[-1]
        client.code("QUIT")
    assert final.startswith("250 2.0.0 OK id="), final
    return final.rpartition("=")[2]


def events_of(server: TeachingServer) -> list[Event]:
    found = []
    while True:
        try:
            found.append(server.capture.events.get_nowait())
        except queue.Empty:
            return found


def stored_event(server: TeachingServer, queue_id: str) -> MessageStored:
    [stored] = [
        e for e in events_of(server) if isinstance(e, MessageStored) and e.queue_id == queue_id
    ]
    return stored


def cli(*args: str, stdin: str | None = None) -> str:
    result = run_cli(*args, stdin=stdin, columns=100)
    assert result.returncode == 0, result.stderr
    return result.stdout


def flat(text: str) -> str:
    """The text with its wrapping undone: every run of whitespace as one space."""
    return " ".join(text.split())


def folded_field(name: str, size: int) -> bytes:
    """A header field of about `size` bytes, folded every 72 bytes (RFC 5322 §2.2.3)."""
    folds = size // 72
    return f"{name}: start".encode() + b"\r\n " + b"\r\n ".join([b"x" * 69] * folds)


def dashboard_screen(server: TeachingServer, events: list[Event]) -> str:
    model = DashboardModel()
    for event in events:
        model.feed(event)
    options = ServeOptions(None, 0, server.maildir, False, 300.0, 1000, None)
    console = Console(record=True, width=160, height=60, file=io.StringIO())
    view = DashboardView(model, Transcripts(console), Header.for_server(server, options))
    console.print(view.render(console, 160, 60, time.monotonic()))
    return console.export_text()


def serve_log_lines(events: list[Event]) -> str:
    out = io.StringIO()
    console = Console(file=out, no_color=True, color_system=None, width=100, markup=False)
    log = ServeLog(console)
    for event in events:
        log.show(event)
    return out.getvalue()


# --- lines end at CR and LF only ------------------------------------------------------------


def test_wire_lines_end_at_cr_and_lf_only() -> None:
    text = "a" + "b".join(ODD_SEPARATORS) + "\r\nc\rd\ne\n"
    assert len(text.splitlines()) == len(ODD_SEPARATORS) + 4  # what went wrong
    assert wire_lines(text) == ["a" + "b".join(ODD_SEPARATORS), "c", "d", "e"]
    assert wire_lines("x\r\n\ny", keepends=True) == ["x\r\n", "\n", "y"]
    assert wire_lines("") == [] and wire_lines("\n") == [""]
    assert wire_lines(b"a\x0bb\x85\r\nc") == [b"a\x0bb\x85", b"c"]


def test_a_line_separator_in_a_header_is_no_header_of_its_own(server: TeachingServer) -> None:
    smuggled = "".join(
        f"X-{n}: line{sep}Injected-Header: yes\r\n" for n, sep in enumerate(ODD_SEPARATORS)
    )
    head = "From: you@tutor.test\r\nSubject: sep\u2028Injected: yes\r\n"
    content = f"{head}{smuggled}\r\nbody\u2028Not-a-line\r\n"
    queue_id = send(server, content.encode())
    root = str(server.maildir)
    views = {
        "show": cli("mailbox", "show", "you/1", "--maildir", root),
        "show --plain": cli("--plain", "mailbox", "show", "you/1", "--maildir", root),
        "list": cli("mailbox", "--maildir", root),
    }
    console = Console(record=True, width=200, file=io.StringIO(), force_terminal=True)
    print_raw(console, mailview.find(server.maildir, queue_id)[0])  # --raw on a terminal
    views["show --raw on a terminal"] = console.export_text()
    for name, view in views.items():
        for line in view.splitlines():  # the rendered screen: no odd separator is left in it
            assert not line.lstrip(" │").startswith("Injected"), (name, line)
        assert "\\u2028" in view, name
    for n, sep in enumerate(ODD_SEPARATORS):  # each shown as an escape, inside its line
        assert f"X-{n}: line{visible(sep)}Injected-Header: yes" in views["show"]
    assert "Subject: sep\\u2028Injected: yes" in views["show"]
    assert "body\\u2028Not-a-line" in views["show --raw on a terminal"]


def test_annotate_and_explain_split_lines_at_cr_and_lf_only() -> None:
    log = (
        "220 mx ready\r\nEHLO x\u2028MAIL FROM:<evil@example>\r\n"
        "250-mx\u2028250 INJECTED\r\n250 SIZE\r\n"
    )
    shown = cli("annotate", "-", stdin=log)
    assert "C: EHLO x\\u2028MAIL FROM:<evil@example>" in shown
    assert "S: 250-mx\\u2028250 INJECTED" in shown
    assert "sender: <evil@example>" not in shown  # no MAIL FROM was read
    parsed = transcript.parse(log)
    assert [e.verb for e in parsed.exchanges] == ["", "EHLO"]
    explained = cli("--plain", "explain", "550 5.1.1 no\u2029550 5.7.1 hidden")
    assert "found in: 550 5.1.1 no\\u2029550 5.7.1 hidden" in explained


# --- a long header is shown cut, with its full size -----------------------------------------


def test_a_long_folded_header_is_shown_cut_with_its_size(server: TeachingServer) -> None:
    """1 MB here (a 9 MB one in the slow tier): the view is bounded, the numbering exact."""
    field = folded_field("Subject", 1024 * 1024)
    queue_id = send(server, field + b"\r\nTo: you@tutor.test\r\n\r\nbody\r\n")
    message = mailview.find(server.maildir, queue_id)[0]
    [subject] = [f for f in message.fields if f.name == "Subject"]
    shown = cli("mailbox", "show", queue_id, "--maildir", str(server.maildir))
    assert len(shown) < 30_000, "the view is bounded, not the size of the header"
    more = len(subject.lines) - 40
    assert f"… {more:,} more lines of this field ({subject.size:,} bytes in all)" in shown
    to_line = 1 + sum(len(f.lines) for f in message.fields[: message.fields.index(subject) + 1])
    assert f"{to_line:>4}         To: you@tutor.test" in shown
    assert f"{to_line + 2:>4}         body" in shown
    listed = cli("mailbox", "--maildir", str(server.maildir))
    assert len(listed) < 2_000 and f"… ({subject.size:,} bytes in all)" in flat(listed)


def test_a_huge_line_and_a_flood_of_fields_are_cut_too(tmp_path: Path) -> None:
    """Files put into the Maildir some other way (the server refuses such lines)."""
    new = tmp_path / "you" / "new"
    new.mkdir(parents=True)
    (new / "1.one-line").write_bytes(b"X-Long: a" + "é".encode() * 2_000_000 + b"\n\nbody\n")
    (new / "2.many-fields").write_bytes(b"X-F: v\n" * 50_000 + b"\nbody\n")
    one_line = cli("mailbox", "show", "you/1", "--maildir", str(tmp_path))
    assert "… (4,000,009 bytes in all)" in one_line and len(one_line) < 5_000
    assert "\\x" not in one_line, "cut between two characters, never inside one"
    many = cli("mailbox", "show", "you/2", "--maildir", str(tmp_path))
    assert "… lines 2,001 to 50,002 not shown (350,006 bytes in all;" in flat(many)
    assert "mailbox show ID --raw` writes the whole file" in flat(many)


def test_the_dashboard_digests_a_huge_header_once_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[int] = []
    real = envelope.getaddresses

    def counted(values: list[str]) -> list[tuple[str, str]]:
        parsed.extend(len(v) for v in values)
        return real(values)

    monkeypatch.setattr(envelope, "getaddresses", counted)
    huge_to = ", ".join(f"someone{n}@example.test" for n in range(40_000))  # 1 MB
    event = MessageStored(
        1, "Q1", "you@tutor.test", ("you@tutor.test",), (Copy("you", "k", "you@tutor.test"),),
        "=?utf-8?q?J=C3=B6rg?= <you@tutor.test>", huge_to, "", "x" * 1_000_000, 2_000_000,
    )  # fmt: skip
    model = DashboardModel()
    model.feed(event)
    [info] = list(model.messages)
    assert info.badge == "! differ: To" and info.differences
    assert max(parsed) <= COMPARED_LIMIT, "addresses are read from the field's start only"
    calls = len(parsed)
    for _ in range(10):  # every redraw asks again: worked out once
        assert all((info.badge, info.differences, info.claimed, info.subject))
    assert len(parsed) == calls
    assert info.claimed.startswith("Jörg <you@tutor.test> -> someone0@example.test")
    assert len(info.claimed) < 3 * SUMMARY_LIMIT and info.claimed.endswith("… (1,068,888 bytes)")
    assert info.subject == "x" * SUMMARY_LIMIT + "… (1,000,000 bytes)"
    assert isinstance(info, StoredInfo)


# --- annotate is linear in its input -------------------------------------------------------


@contextmanager
def counting_steps() -> Iterator[list[int]]:
    """Counts the lines of Python run, the tutor's and the standard library's (a copy.deepcopy
    is work too), rich's left out: a step count that does not depend on the machine."""
    count = [0]
    libraries = str(Path(rich.__file__).parent.parent)  # site-packages

    def local(frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        count[0] += 1
        return local

    def trace(frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        return None if frame.f_code.co_filename.startswith(libraries) else local

    sys.settrace(trace)
    try:
        yield count
    finally:
        sys.settrace(None)


def annotate_steps(text: str) -> int:
    with counting_steps() as count:
        parsed = transcript.parse(text)
        Console(file=io.StringIO(), width=100).print(render_transcript(parsed))
    return count[0]


SHAPES: dict[str, Callable[[int], str]] = {
    "blank lines, then QUIT": lambda n: "220 hi\n" + "\n" * n + "QUIT\n221 bye\n",
    "blank lines, then a reply": lambda n: "220 hi\n" + "\n" * n + "500 5.5.2 empty\n",
    "blank lines, each answered": lambda n: "220 hi\n" + "\n500 5.5.2 empty\n" * n,
    "a long EHLO reply": lambda n: "220 hi\nEHLO x\n" + "250-x\n" * n + "250 ok\n",
    "one recipient after another": lambda n: (
        "220 hi\nEHLO x\n250 ok\nMAIL FROM:<a@b>\n250 ok\n"
        + "".join(f"RCPT TO:<u{i}@x>\n250 ok\n" for i in range(n))
    ),
    "one message after another": lambda n: (
        "220 hi\nEHLO x\n250 ok\n"
        + "MAIL FROM:<a@b>\n250 ok\nRCPT TO:<c@d>\n250 ok\nDATA\n354 go\n.\n250 ok id=Q1\n" * n
    ),
    "the tool's own lines": lambda n: "=== Trying\n" * n + "<-  220 hi\n -> QUIT\n<-  221 bye\n",
    "the tool's own lines between exchanges": lambda n: (
        "<-  220 hi\n" + "=== a line of swaks's own\n -> NOOP\n<-  250 ok\n" * n
    ),
}


# One shape of each family runs in the fast tier; their siblings in the slow one.
SLOW_SHAPES = {
    "blank lines, then QUIT",
    "blank lines, then a reply",
    "one message after another",
    "the tool's own lines",
}


@pytest.mark.parametrize(
    "shape",
    [pytest.param(s, marks=pytest.mark.slow) if s in SLOW_SHAPES else s for s in SHAPES],
)
def test_annotate_does_linear_work(shape: str) -> None:
    """n and 4n lines of one shape: linear work is about 4 times as many steps, quadratic
    16 times (80,000 blank lines took 97 s)."""
    small, large = annotate_steps(SHAPES[shape](200)), annotate_steps(SHAPES[shape](800))
    assert large < 5 * small, f"{shape}: {small} steps for n, {large} for 4n"


def test_annotate_shows_a_long_transcript_bounded() -> None:
    shown = cli("annotate", "-", stdin=SHAPES["one recipient after another"](2_000))
    assert (
        "… exchanges 201 to 1,953 are not shown one by one (1,753 of them): 1,753 × RCPT → 250"
        in shown
    )
    assert "RCPT TO:<u1999@x>" in shown  # the last ones are shown again
    assert "<u0@x>, <u1@x>" in shown and "and 1,980 more" in shown
    long_reply = cli("annotate", "-", stdin=SHAPES["a long EHLO reply"](2_000))
    assert "S: … 1,961 more lines of this reply" in long_reply and "S: 250 ok" in long_reply
    one_line = cli("annotate", "-", stdin="220 hi\nEHLO " + "x" * 100_000 + "\n250 ok\n")
    assert "… (100,005 bytes in all)" in flat(one_line) and len(one_line) < 10_000


# --- UTF-8 and RFC 2047 headers read decoded everywhere -------------------------------------


def test_encoded_words_and_utf8_headers_read_decoded_in_every_view(server: TeachingServer) -> None:
    content = (
        "From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <jörg@schüle.example>\r\n"
        "To: =?iso-8859-1?q?Andr=E9?= <you@tutor.test>\r\n"
        "Subject: =?utf-8?b?R3LDvMOfZQ==?= aus Köln\r\n\r\nHallo\r\n"
    ).encode()
    queue_id = send(server, content, sender="jörg@schüle.example")
    events = events_of(server)
    root = str(server.maildir)
    views = {
        "mailbox list": cli("mailbox", "--maildir", root),
        "mailbox show": cli("mailbox", "show", queue_id, "--maildir", root),
        "dashboard": dashboard_screen(server, events),
        "serve log": serve_log_lines(events),
    }
    for name, view in views.items():
        for broken in MOJIBAKE:
            assert broken not in view, (name, broken)
        assert "Jörg Müller" in view and "André" in view, name
        assert "=?utf-8?q?J=C3=B6rg" not in view.replace("From: =?utf-8?q?J=C3=B6rg_M", ""), name
    for name in ("mailbox list", "mailbox show", "dashboard"):
        assert "Grüße aus Köln" in views[name], name
    assert "jörg@schüle.example" in views["serve log"]


# --- the full-size repros (slow tier) -----------------------------------------------------------


@pytest.mark.slow
def test_a_9_mb_folded_header_full_size(server: TeachingServer) -> None:
    """As first found: `mailbox show` took 23 s, the dashboard froze 11 s."""
    field = folded_field("To", 9 * 1024 * 1024).replace(b"x" * 69, b"x" * 55 + b"@example.test,")
    queue_id = send(server, b"Subject: big\r\n" + field + b"\r\n\r\nbody\r\n")
    started = time.monotonic()
    shown = cli("mailbox", "show", queue_id, "--maildir", str(server.maildir))
    took = time.monotonic() - started
    assert took < 3.0, f"mailbox show took {took:.1f} s"
    assert "more lines of this field (9," in shown and len(shown) < 60_000
    assert "! To: is longer than 32,768 characters: only the addresses" in flat(shown)
    event = stored_event(server, queue_id)
    started = time.monotonic()
    info = StoredInfo(event)
    assert all((info.badge, info.claimed, info.subject))
    screen = dashboard_screen(server, [event])
    took = time.monotonic() - started
    assert took < 1.0, f"the dashboard took {took:.1f} s for the stored message"
    assert "STORED MESSAGES" in screen


@pytest.mark.slow
@pytest.mark.parametrize(
    "text",
    [
        SHAPES["blank lines, then QUIT"](80_000),
        SHAPES["blank lines, then a reply"](80_000),
        SHAPES["blank lines, each answered"](40_000),
        SHAPES["a long EHLO reply"](80_000),
        SHAPES["one recipient after another"](40_000),
        "220 hi\nEHLO " + "x" * 10_000_000 + "\n250 ok\n",
        "220 hi\nEHLO x\n250 " + "y" * 10_000_000 + "\n",
    ],
    ids=[
        "80k blank",
        "80k blank+reply",
        "40k answered",
        "80k 250-",
        "40k RCPT",
        "10MB cmd",
        "10MB reply",
    ],
)
def test_annotate_pathological_transcripts_full_size(text: str) -> None:
    """As first found: 80,000 blank lines took 97 s."""
    started = time.monotonic()
    shown = cli("annotate", "-", stdin=text)
    took = time.monotonic() - started
    assert took < 20.0, f"annotate took {took:.1f} s"
    assert len(shown) < 400_000
