"""MIME: the encoders behind /b64 and /qp, the tree `mailbox show` draws, hostile input,
and the checks that judge parts (tutor/smtp/mime.py, ui/common/mime_view.py)."""

from __future__ import annotations

import base64
import binascii
import time
from pathlib import Path

import pytest

from tests.support import run_cli
from tutor.engine.checks import evaluate
from tutor.smtp.events import Copy, MessageStored
from tutor.smtp.mime import (
    MAX_DEPTH,
    MAX_PARTS,
    SCAN_LIMIT,
    TEXT_LIMIT,
    base64_lines,
    parse_body_lines,
    parse_message,
    quoted_printable_lines,
)

MULTIPART = b"""\
From: you@tutor.test
Subject: MIME by hand
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=MIX

--MIX
Content-Type: multipart/alternative; boundary=ALT

--ALT
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hello caf=C3=A9
--ALT
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>Hello caf=C3=A9</p>
--ALT--
--MIX
Content-Type: text/plain
Content-Disposition: attachment; filename=note.txt
Content-Transfer-Encoding: base64

aGk=
--MIX--
""".replace(b"\n", b"\r\n")


# --- the encoders -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["hi", "café", "x" * 200, "é" * 100, ". leading dot", "ends in space ", "a=b\tc", ""]
)
def test_quoted_printable_lines_decode_back_and_keep_the_rules(text: str) -> None:
    lines = quoted_printable_lines(text)
    assert all(len(line) <= 76 for line in lines)
    assert all(line.isascii() and line.replace("\t", "").isprintable() for line in lines)
    assert not any(line.endswith((" ", "\t")) for line in lines)  # RFC 2045 §6.7 (3)
    assert not any(line.startswith(".") for line in lines)  # never an SMTP end of data
    assert binascii.a2b_qp("\r\n".join(lines)).decode("utf-8") == text


def test_quoted_printable_of_cafe_is_what_the_lesson_says() -> None:
    assert quoted_printable_lines("café") == ["caf=C3=A9"]
    long = quoted_printable_lines("é" * 40)
    assert all(line.endswith("=") for line in long[:-1])  # soft breaks
    assert all(len(line.rstrip("=")) % 3 == 0 for line in long)  # never inside an =XX


@pytest.mark.parametrize("text", ["hi", "Hello, world", "x" * 300, "é" * 60])
def test_base64_lines_are_76_characters_at_most_and_decode_back(text: str) -> None:
    lines = base64_lines(text)
    assert all(len(line) <= 76 for line in lines)
    assert all(len(line) == 76 for line in lines[:-1])
    assert base64.b64decode("".join(lines)).decode("utf-8") == text
    assert base64_lines("hi") == ["aGk="]


# --- the tree -----------------------------------------------------------------------------


def test_the_tree_of_a_hand_made_multipart() -> None:
    root = parse_message(MULTIPART)
    shape = [(p.number, p.content_type, p.encoding) for p in root.walk()]
    assert shape == [
        ("1", "multipart/mixed", "7bit"),
        ("1.1", "multipart/alternative", "7bit"),
        ("1.1.1", "text/plain", "quoted-printable"),
        ("1.1.2", "text/html", "quoted-printable"),
        ("1.2", "text/plain", "base64"),
    ]
    parts = list(root.walk())
    assert parts[2].text == "Hello café" and parts[2].decoded_size == 11
    assert parts[4].filename == "note.txt" and parts[4].text == "hi"
    assert not any(p.problems for p in parts)


def test_the_body_lines_alone_find_the_outer_boundary() -> None:
    body = MULTIPART.split(b"\r\n\r\n", 1)[1].decode().split("\r\n")
    tree = parse_body_lines(body)
    assert tree is not None and tree.boundary == "MIX"
    assert [p.content_type for p in tree.walk()][1:] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/plain",
    ]
    assert parse_body_lines(["just text", "--not a boundary"]) is None


def test_charsets_are_honoured_and_unknown_ones_said() -> None:
    latin = (
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9"
    )
    assert parse_message(latin).text == "café"
    for charset in (b"x-no-such-charset", b"rot13", b"base64", b"zlib"):
        raw = b"Content-Type: text/plain; charset=" + charset + b"\r\n\r\ncaf\xc3\xa9"
        part = parse_message(raw)
        assert part.text == "café"
        assert any("unknown charset" in p for p in part.problems)


def test_bad_encodings_are_problems_not_crashes() -> None:
    bad = b"Content-Transfer-Encoding: base64\r\n\r\n!!not base64 at all***\r\n"
    part = parse_message(bad)
    assert any("not valid base64" in p for p in part.problems)
    odd = b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n"
    assert any("unknown Content-Transfer-Encoding" in p for p in parse_message(odd).problems)
    eight = b"Content-Type: text/plain; charset=utf-8\r\n\r\ncaf\xc3\xa9"
    assert any("8-bit octets" in p for p in parse_message(eight).problems)
    qp8 = b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf\xc3\xa9"
    assert any("quoted-printable" in p for p in parse_message(qp8).problems)
    no_boundary = b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n"
    assert parse_message(no_boundary).problems
    never = b"Content-Type: multipart/mixed; boundary=zz\r\n\r\nno parts here\r\n"
    assert any("never appears" in p for p in parse_message(never).problems)
    unclosed = b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n\r\nhi\r\n"
    assert any("no closing line" in p for p in parse_message(unclosed).problems)


def _nested(depth: int) -> bytes:
    head = b""
    tail = b""
    for level in range(depth):
        b = f"b{level}".encode()
        head += b"Content-Type: multipart/mixed; boundary=" + b + b"\r\n\r\n--" + b + b"\r\n"
        tail = b"\r\n--" + b + b"--" + tail
    return head + b"Content-Type: text/plain\r\n\r\ndeep" + tail


def test_hostile_trees_are_bounded() -> None:
    started = time.monotonic()
    deep = parse_message(_nested(5000))
    assert max(p.number.count(".") for p in deep.walk()) < MAX_DEPTH
    assert any("nested more than" in p for part in deep.walk() for p in part.problems)
    many = b"Content-Type: multipart/mixed; boundary=m\r\n\r\n" + b"--m\r\n\r\nx\r\n" * 20_000
    tree = parse_message(many + b"--m--\r\n")
    assert len(list(tree.walk())) <= MAX_PARTS + 1
    assert any("more than" in p for p in tree.problems)
    huge = b"Content-Type: text/plain\r\n\r\n" + b"y" * (3 * SCAN_LIMIT)
    part = parse_message(huge)
    assert part.truncated and part.text is not None and len(part.text) == TEXT_LIMIT
    assert any("only the first" in p for p in part.problems)
    assert time.monotonic() - started < 20  # bounded work, however the input is built


HOSTILE = (
    b"Subject: hostile\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="\x1b[31mB"\r\n\r\n'
    b"--\x1b[31mB\r\n"
    b"Content-Type: text/\x1b[2Jplain; charset=utf-8\r\n"
    b'Content-Disposition: attachment; filename="\x1b]0;owned\x07evil\xe2\x80\xae.txt"\r\n'
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"ring=07 clear=1B[2J title=1B]0;x=07 bidi=E2=80=AE\r\n"
    b"--\x1b[31mB\r\n"
    b"Content-Type: text/plain; charset=x-klingon\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    b"G1szMW0=*&^%\r\n"
    b"--\x1b[31mB--\r\n"
)


def _maildir(tmp_path: Path, raw: bytes) -> Path:
    folder = tmp_path / "you" / "new"
    folder.mkdir(parents=True)
    (folder / "1.hand").write_bytes(raw)
    return tmp_path


@pytest.mark.parametrize("plain", [["--plain"], []])
def test_mailbox_show_draws_the_tree(tmp_path: Path, plain: list[str]) -> None:
    root = _maildir(tmp_path, MULTIPART)
    shown = run_cli("mailbox", "show", "you/1", "--maildir", str(root), *plain)
    assert shown.returncode == 0, shown.stderr
    view = shown.stdout
    assert "MIME structure" in view
    assert "1.1.1 text/plain; charset=utf-8  quoted-printable  15 bytes, 11 decoded" in view
    assert "│ Hello café" in view
    assert "1.2 text/plain  base64  4 bytes, 2 decoded  file note.txt" in view
    assert "│ hi" in view


def test_mailbox_show_of_hostile_mime_never_emits_escapes(tmp_path: Path) -> None:
    root = _maildir(tmp_path, HOSTILE)
    shown = run_cli("mailbox", "show", "you/1", "--maildir", str(root), "--plain")
    assert shown.returncode == 0, shown.stderr
    view = shown.stdout
    assert "\x1b" not in view and "\x07" not in view and "\u202e" not in view
    assert "MIME structure" in view
    assert "\\x1b[31mB" in view  # the boundary, made visible
    assert "\\x07" in view and "\\u202e" in view  # the decoded text's controls, visible
    assert "unknown charset 'x-klingon'" in view
    assert "not valid base64" in view


def test_a_message_without_mime_gets_no_tree(tmp_path: Path) -> None:
    root = _maildir(tmp_path, b"Subject: plain\r\n\r\njust text\r\n")
    shown = run_cli("mailbox", "show", "you/1", "--maildir", str(root), "--plain")
    assert shown.returncode == 0 and "MIME structure" not in shown.stdout


def test_deep_and_huge_files_show_quickly(tmp_path: Path) -> None:
    root = _maildir(tmp_path, _nested(3000) + b"\r\n" + b"z" * (2 * SCAN_LIMIT))
    started = time.monotonic()
    shown = run_cli("mailbox", "show", "you/1", "--maildir", str(root), "--plain")
    assert shown.returncode == 0, shown.stderr
    assert "nested more than" in shown.stdout
    assert time.monotonic() - started < 60


# --- the checks ---------------------------------------------------------------------------


def _stored(body: bytes) -> MessageStored:
    lines = tuple(body.decode("utf-8", "replace").split("\r\n"))
    return MessageStored(
        1,
        queue_id="Q1",
        sender="you@tutor.test",
        recipients=("you@tutor.test",),
        copies=(Copy("you", "k", "you@tutor.test"),),
        header_from="",
        header_to="",
        header_cc="",
        subject="",
        size=len(body),
        body_lines=lines,
    )


def test_the_mime_checks_judge_the_stored_parts() -> None:
    events = [_stored(MULTIPART.split(b"\r\n\r\n", 1)[1])]
    assert evaluate("mime_part", "multipart/alternative", events).ok
    assert evaluate("mime_part", "text/html quoted-printable", events).ok
    assert not evaluate("mime_part", "text/html base64", events).ok
    assert evaluate("attachment", "note.txt", events).ok
    assert not evaluate("attachment", "other.txt", events).ok
    assert evaluate("decoded_has", "café", events).ok
    assert evaluate("decoded_has", "hi", events).ok
    assert not evaluate("decoded_has", "nowhere", events).ok


def test_decoded_has_wants_a_faultless_encoded_part() -> None:
    raw = "--B\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncafé\r\n--B--"
    assert not evaluate("decoded_has", "café", [_stored(raw.encode())]).ok
    sent_as_is = b"--B\r\nContent-Type: text/plain\r\n\r\nHello, world\r\n--B--"
    assert not evaluate("decoded_has", "Hello, world", [_stored(sent_as_is)]).ok
    assert not evaluate("mime_part", "text/plain", [_stored(b"no parts\r\n")]).ok
    assert not evaluate("decoded_has", "x", []).ok


def test_the_encoders_work_where_a_step_asks_for_enter(tutor_home: Path) -> None:
    """Lesson 14's step 4 says to try /qp and /b64, then press Enter: at that prompt they
    are carried out and the step waits, rather than being taken for the Enter."""
    script = "ehlo client.example\n\n/qp café\n/b64 hi\n/quit\n"
    result = run_cli("learn", "14", "--plain", stdin=script)
    assert "caf=C3=A9" in result.stdout and "aGk=" in result.stdout
    assert "Stopped at step 4." in result.stdout
