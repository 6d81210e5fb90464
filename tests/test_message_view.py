"""Stored messages shown as stored, in the one message view (ui/common/message_view.py).

Every message here goes through the real server; the stored copy is then rendered the
three ways a learner sees it: `mailbox show` (the real CLI, and a colour console), the
lesson's stored copy, and the dashboard's Enter view. RFC 5322 §2.1: the header section
ends at the first empty line, without one everything is header text; §2.2.3: folded
fields keep their lines; RFC 6532 / RFC 2047: UTF-8 and encoded-words shown decoded.
"""

from __future__ import annotations

import io
import queue
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console, RenderableType

from tests.support import RawClient, run_cli
from tutor.maildir import mailview
from tutor.sandbox.serve import ServeOptions
from tutor.server.runner import TeachingServer
from tutor.smtp.envelope import DIFFERS, ENVELOPE_ONLY, HEADERS_ONLY, SAME, Comparison, Pair
from tutor.smtp.events import Event, MessageStored
from tutor.smtp.headers import body_lines, decode_words, header_section
from tutor.ui.common.lesson_view import envelope_view
from tutor.ui.common.message_view import message_view
from tutor.ui.serve.dashboard import Dashboard
from tutor.ui.serve.dashboard_view import Header

UNSAFE = ("\x1b", "\x07", "\u202e", "\ufffd")
MOJIBAKE = ("Ã", "Â")


# --- helpers ------------------------------------------------------------------------------------


def send(
    server: TeachingServer,
    content: bytes,
    *,
    sender: str = "you@tutor.test",
    recipients: tuple[str, ...] = ("you@tutor.test",),
    smtputf8: bool = False,
) -> str:
    """One transaction over a socket, the content sent as given; returns the queue id."""
    with RawClient(server.address) as client:
        assert client.code("EHLO client.example").startswith("250 ")
        option = " SMTPUTF8" if smtputf8 else ""
        assert client.code(f"MAIL FROM:<{sender}>{option}").startswith("250 ")
        for recipient in recipients:
            assert client.code(f"RCPT TO:<{recipient}>").startswith("250 ")
        assert client.code("DATA").startswith("354 ")
        final = client.code(content + b"\r\n.")
        client.code("QUIT")
    match = re.fullmatch(r"250 2\.0\.0 OK id=(\S+)", final)
    assert match, final
    return match.group(1)


def events_so_far(server: TeachingServer) -> list[Event]:
    """Every event the capture published (a message's before its 250 reached the client)."""
    found = []
    while True:
        try:
            found.append(server.capture.events.get_nowait())
        except queue.Empty:
            return found


def rendered(renderable: RenderableType, *, width: int = 100) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system="truecolor")
    console.print(renderable)
    return console.export_text()


def mailbox_show(server: TeachingServer, ref: str = "you/1", *plain: str) -> str:
    shown = run_cli("mailbox", "show", ref, "--maildir", str(server.maildir), *plain)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def lesson_copy(server: TeachingServer, event: MessageStored, *, plain: bool) -> str:
    """What the lesson screen prints after the 250: envelope view and stored copy."""
    copies = [m for c in event.copies for m in mailview.find(server.maildir, f"{c.folder}/{c.key}")]
    return rendered(envelope_view(event, copies, plain=plain))


def dashboard_detail(server: TeachingServer, events: list[Event], *, width: int = 100) -> str:
    """The dashboard's Enter view, every line of it (the screen shows a scrolled window)."""
    console = Console(record=True, width=width, height=40, file=io.StringIO())
    options = ServeOptions(None, 0, server.maildir, False, 300.0, 1000, None)
    source: queue.SimpleQueue[Event] = queue.SimpleQueue()
    for event in events:
        source.put(event)
    dashboard = Dashboard(console, source, Header.for_server(server, options))
    dashboard.drain()
    dashboard.handle_key("enter")
    detail = dashboard.view.detail
    assert detail is not None, dashboard.view.notice
    return "\n".join("".join(seg.text for seg in line) for line in detail.lines(console, width))


def every_view(server: TeachingServer, queue_id: str) -> dict[str, str]:
    """The one message in all the places a learner meets it."""
    message = mailview.find(server.maildir, queue_id)[0]  # the first folder's copy
    events = events_so_far(server)
    [stored] = [e for e in events if isinstance(e, MessageStored) and e.queue_id == queue_id]
    return {
        "mailbox show --plain": mailbox_show(server, message.ref, "--plain"),
        "mailbox show": mailbox_show(server, message.ref),
        "colour console": rendered(message_view(message, plain=False), width=120),
        "80 columns": rendered(message_view(message, plain=False), width=80),
        "lesson": lesson_copy(server, stored, plain=False),
        "lesson --plain": lesson_copy(server, stored, plain=True),
        "dashboard": dashboard_detail(server, events),
    }


def numbered(view: str) -> list[str]:
    """The numbered lines of the stored copy, each without its number and mark."""
    gutter = re.compile(r"^\s*\d+ (?:server>| {7}) ")
    lines = (line.ljust(13) for line in view.splitlines())  # an empty line: its number only
    return [gutter.sub("", line).rstrip() for line in lines if gutter.match(line)]


def assert_clean(view: str) -> None:
    for char in UNSAFE:
        assert char not in view, f"{char!r} reached the screen"
    for broken in MOJIBAKE:
        assert broken not in view, f"mojibake {broken!r}"


# --- the header/body boundary -------------------------------------------------------------------


def test_without_an_empty_line_every_line_is_header_text(server: TeachingServer) -> None:
    queue_id = send(server, b"Subject: Meeting\r\nReminder: the meeting moved to 3 pm.")
    for name, view in every_view(server, queue_id).items():
        assert "no empty line: everything is header text" in view, name
        assert "the headers end here" not in view, name
        lines = numbered(view)
        assert lines[-2:] == ["Subject: Meeting", "Reminder: the meeting moved to 3 pm."], name
        assert_clean(view)


def test_a_line_that_is_no_field_is_shown_and_named(server: TeachingServer) -> None:
    queue_id = send(server, b"Subject: notes\r\njust some words\r\nX-After: still header text")
    view = mailbox_show(server, "you/1", "--plain")
    lines = numbered(view)
    assert lines[-3] == "Subject: notes"
    assert lines[-2].startswith("just some words  ← not a header field")
    assert lines[-1] == "X-After: still header text"
    assert "no empty line: everything is header text" in view
    assert queue_id in view


def test_the_empty_line_is_shown_where_it_is_and_the_body_follows(server: TeachingServer) -> None:
    body = b"first body line\r\n\r\nthird body line, after an empty one"
    queue_id = send(server, b"Subject: with a body\r\n\r\n" + body)
    raw = mailview.find(server.maildir, queue_id)[0].raw.decode()
    for name, view in every_view(server, queue_id).items():
        lines = numbered(view)
        assert lines[-5:] == [
            "Subject: with a body",
            "(empty line: the headers end here, the body follows; RFC 5322 §2.1)",
            "first body line",
            "",
            "third body line, after an empty one",
        ], name
        assert len(lines) == raw.count("\n"), name  # one numbered line per stored line
        assert "no empty line" not in view, name


def test_line_numbers_are_the_stored_file_s(server: TeachingServer) -> None:
    queue_id = send(server, b"Subject: numbers\r\n\r\nbody")
    view = mailbox_show(server, "you/1", "--plain")
    raw = mailview.find(server.maildir, queue_id)[0].raw.decode().split("\n")
    empty = next(i for i, line in enumerate(raw, start=1) if line == "")
    assert re.search(rf"^\s*{empty} \s+\(empty line: the headers end here", view, re.M)
    assert re.search(rf"^\s*{empty + 1} \s+body$", view, re.M)


# --- folding --------------------------------------------------------------------------------------


def test_a_folded_header_keeps_its_lines(server: TeachingServer) -> None:
    content = (
        b"Subject: a folded\r\n  subject line\r\n\tand a tab\r\nTo: you@tutor.test\r\n\r\nbody"
    )
    queue_id = send(server, content)
    for name, view in every_view(server, queue_id).items():
        lines = numbered(view)
        start = lines.index("Subject: a folded")
        assert lines[start + 1 : start + 4] == [
            "  subject line",
            "    and a tab",
            "To: you@tutor.test",
        ], name
        assert "a folded subject line" not in view, name
    # the server's own Received: is folded too, and shown folded
    view = mailbox_show(server, "you/1", "--plain")
    assert re.search(r"^\s*2 server> Received: from client\.example", view, re.M)
    assert re.search(r"^\s*3 server>\s+\(envelope-from <you@tutor\.test>\)$", view, re.M)


def test_a_long_line_wraps_beside_an_empty_gutter(server: TeachingServer) -> None:
    long = "word " * 40
    queue_id = send(server, f"Subject: {long.strip()}\r\n\r\nbody".encode())
    view = rendered(message_view(mailview.find(server.maildir, queue_id)[0], plain=True), width=80)
    subject = next(i for i, line in enumerate(view.splitlines()) if "Subject: word" in line)
    following = view.splitlines()[subject + 1]
    assert re.match(r"^ {13}word", following), following  # no number: not a line of its own


# --- UTF-8, encoded-words, SMTPUTF8 --------------------------------------------------------------


def test_a_raw_utf8_subject_under_smtputf8_is_shown_decoded(server: TeachingServer) -> None:
    content = "Subject: Grüße\r\nTo: you@tutor.test\r\n\r\nGrüße aus Köln".encode()
    queue_id = send(server, content, smtputf8=True)
    for name, view in every_view(server, queue_id).items():
        assert "Subject: Grüße" in numbered(view), name
        assert "Grüße aus Köln" in numbered(view), name
        assert_clean(view)


def test_an_rfc2047_subject_is_shown_decoded_beside_the_stored_words(
    server: TeachingServer,
) -> None:
    content = b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nTo: you@tutor.test\r\n\r\nbody"
    queue_id = send(server, content)
    for name, view in every_view(server, queue_id).items():
        assert "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=" in numbered(view), name  # as stored
        assert "= decoded (RFC 2047 encoded-words): Subject: Grüße" in view, name
        assert_clean(view)
    listing = run_cli("mailbox", "you", "--maildir", str(server.maildir), "--plain").stdout
    assert "Subject:  Grüße" in listing


def test_an_smtputf8_sender_is_shown_and_not_flagged(server: TeachingServer) -> None:
    content = (
        "From: Jörg <jörg@schüle.example>\r\nTo: you@tutor.test\r\nSubject: hallo\r\n\r\nhi"
    ).encode()
    queue_id = send(server, content, sender="jörg@schüle.example", smtputf8=True)
    views = every_view(server, queue_id)
    for name, view in views.items():
        assert "MAIL FROM:<jörg@schüle.example>" in view, name
        assert "From: Jörg <jörg@schüle.example>" in view, name
        assert "Return-Path: <jörg@schüle.example>" in view, name
        assert "does not name the envelope sender" not in view, name
        assert "differs" not in view, name
        assert_clean(view)
    assert (
        "MAIL FROM:<jörg@schüle.example> | From: Jörg <jörg@schüle.example> | same"
        in views["mailbox show --plain"]
    )
    listing = run_cli("mailbox", "you", "--maildir", str(server.maildir), "--plain").stdout
    assert "Jörg <jörg@schüle.example> -> you@tutor.test\n" in listing  # no (!)


def test_addresses_compare_decoded() -> None:
    """IDNA (xn--) against Unicode, NFC against NFD, case: one address, no mismatch."""
    nfd = "jo\u0308rg@schu\u0308le.example"
    for header in ("<JÖRG@xn--schle-mva.example>", f"Jörg <{nfd}>"):
        comparison = Comparison(
            "jörg@schüle.example", header, ("you@tutor.test",), "YOU@tutor.test", ""
        )
        assert not comparison.mismatch, header


def test_encoded_words_decode_as_rfc_2047_says() -> None:
    assert decode_words("=?utf-8?q?Gr=C3=BC=C3=9Fe?=") == "Grüße"
    assert decode_words("=?UTF-8?B?R3LDvMOfZQ==?=") == "Grüße"
    assert decode_words("=?iso-8859-1?q?K=F6ln?= =?utf-8?q?_am_Rhein?=") == "Köln am Rhein"
    assert decode_words("a =?utf-8?q?b?= c") == "a b c"
    assert decode_words("=?x-unknown?q?abc?=") == "=?x-unknown?q?abc?="  # kept as written
    assert decode_words("=?utf-8?q?bad=FF?=") == "bad\\xff"  # invalid bytes escaped, no U+FFFD


# --- envelope against headers --------------------------------------------------------------------


def test_rows_pair_like_with_like_across_several_recipients(server: TeachingServer) -> None:
    content = (
        b"From: you@tutor.test\r\nTo: alice@tutor.test, carol@tutor.test\r\n"
        b"Cc: you@tutor.test\r\nSubject: team\r\n\r\nbody"
    )
    recipients = ("you@tutor.test", "alice@tutor.test", "bob@tutor.test")
    queue_id = send(server, content, recipients=recipients)
    expected = [
        "MAIL FROM:<you@tutor.test> | From: you@tutor.test | same",
        "RCPT TO:<alice@tutor.test> | To: alice@tutor.test | same",
        "RCPT TO:<bob@tutor.test> | (none) | only in the envelope",
        "RCPT TO:<you@tutor.test> | Cc: you@tutor.test | same",
        "(none) | To: carol@tutor.test | only in the headers",
    ]
    for folder in ("you", "alice", "bob"):  # each copy knows the whole envelope
        view = mailbox_show(server, f"{folder}/1", "--plain")
        rows = [line.split(":", 1)[1].strip() for line in view.splitlines() if "|" in line]
        assert rows[1:] == expected, folder
    # in a table, each row holds one pair: the neighbours never share a row
    for name, view in every_view(server, queue_id).items():
        for line in view.splitlines():
            if "RCPT TO:<bob@tutor.test>" in line:
                assert "(none)" in line and "To:" not in line and "Cc:" not in line, name
            if "To: carol@tutor.test" in line:
                assert "(none)" in line and "RCPT" not in line, name


def test_a_missing_to_leaves_none_beside_the_recipient(server: TeachingServer) -> None:
    queue_id = send(server, b"From: you@tutor.test\r\nSubject: no To\r\n\r\nbody")
    views = every_view(server, queue_id)
    assert "RCPT TO:<you@tutor.test> | (none) | only in the envelope" in views["lesson --plain"]
    table = [line for line in views["colour console"].splitlines() if "RCPT TO:" in line]
    assert len(table) == 1 and "(none)" in table[0] and "only in the envelope" in table[0]


def test_pairs_from_the_comparison() -> None:
    comparison = Comparison(
        "bugs@looney.example", "Bugs Bunny", ("you@tutor.test",), "Daffy Duck", ""
    )
    assert comparison.pairs() == [
        Pair(
            "sender",
            "MAIL FROM:<bugs@looney.example>",
            "From: Bugs Bunny  (no address at all)",
            DIFFERS,
        ),
        Pair("recipient", "RCPT TO:<you@tutor.test>", None, ENVELOPE_ONLY),
        Pair("recipient", None, "To: Daffy Duck  (no address at all)", HEADERS_ONLY),
    ]
    named = Comparison("a@x.example", "=?utf-8?q?J=C3=B6rg?= <a@x.example>", (), "", "")
    assert named.pairs() == [
        Pair("sender", "MAIL FROM:<a@x.example>", "From: Jörg <a@x.example>", SAME)
    ]


# --- hostile text -------------------------------------------------------------------------------


def test_hostile_text_is_shown_literally_in_every_view(server: TeachingServer) -> None:
    content = (
        b"From: [bold]Boss[/bold] <you@tutor.test>\r\n"
        b"To: you@tutor.test\r\n"
        b"Subject: \x1b[31mred\x1b[0m \xe2\x80\xaeevil \xff\r\n"
        b"X-Title: \x1b]0;pwned\x07\r\n"
        b"\r\n"
        b"[bold red]body[/] \x1b[2J \xe2\x80\xaeRTL \xfe\r\n"
    )
    queue_id = send(server, content)
    for name, view in every_view(server, queue_id).items():
        assert_clean(view)
        assert "[bold]Boss[/bold]" in view, name
        assert "Subject: \\x1b[31mred\\x1b[0m \\u202eevil \\xff" in view, name
        assert "X-Title: \\x1b]0;pwned\\x07" in view, name
        assert "[bold red]body[/] \\x1b[2J \\u202eRTL \\xfe" in view, name


# --- the parse itself ----------------------------------------------------------------------------

line = st.sampled_from(
    [
        b"From: a@b.example",
        b"Subject: x",
        b" folded",
        b"\tfolded",
        b"no colon",
        b"",
        b"  ",
        b"X: \xff",
    ]
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(line, max_size=12), st.sampled_from([b"\n", b"\r\n"]), st.booleans())
def test_every_stored_line_is_in_the_header_section_or_the_body(
    lines: list[bytes], newline: bytes, final: bool
) -> None:
    raw = newline.join(lines) + (newline if final and lines else b"")
    if newline == b"\r\n" and not raw.partition(b"\n")[0].endswith(b"\r"):
        return  # a file whose first line ends in LF alone is read as LF throughout
    section = header_section(raw)
    shown = [stored for field in section.fields for stored in field.lines]
    shown += [b""] if section.blank_line else []
    shown += body_lines(raw, section)
    expected = raw.split(newline)
    if expected[-1] == b"":
        expected.pop()
    assert shown == expected
    assert section.blank_line == (b"" in expected)


def test_a_message_file_without_any_trace_headers(tmp_path: Path) -> None:
    """A file put into the Maildir by hand: no envelope, still every line shown."""
    folder = tmp_path / "you" / "new"
    folder.mkdir(parents=True)
    (folder / "1.hand").write_bytes(b"Subject: by hand\nno blank line follows")
    shown = run_cli("mailbox", "show", "you/1", "--maildir", str(tmp_path), "--plain")
    assert shown.returncode == 0, shown.stderr
    view = shown.stdout
    assert numbered(view)[0] == "Subject: by hand"
    assert numbered(view)[1].startswith("no blank line follows  ← not a header field")
    assert "no trace headers from this server: the envelope is not known" in view
    assert "MAIL FROM" not in view
