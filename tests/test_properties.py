"""Properties over generated input (hypothesis): the wire rules, the readers of files and
transcripts, and the header summary the server makes of every message.

Each property is a promise made elsewhere in the code: a reply formatted then parsed is
the same reply; dot-stuffing is undone line by line as a server reads it and never ends a
message early; the lesson loader and the transcript reader report problems instead of
crashing, whatever the text.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from email.parser import HeaderParser
from email.policy import compat32
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tutor.engine import loader
from tutor.errors import UserError
from tutor.explain.transcript import parse as parse_transcript
from tutor.maildir.store import header_block, summarize_headers
from tutor.smtp.wire import Reply, dot_stuff, dot_unstuff, format_reply, parse_reply_line

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("SMTP_TUTOR_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    database=None,
    derandomize=True,  # the same examples on every run: CI stays reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# --- replies: format_reply and parse_reply_line --------------------------------------------------

reply_codes = st.integers(200, 559).filter(lambda code: code % 100 < 60)
reply_texts = st.text(
    st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=40
)


@PROPERTY_SETTINGS
@given(reply_codes, st.lists(reply_texts, min_size=1, max_size=6))
def test_a_formatted_reply_parses_back_to_itself(code: int, texts: list[str]) -> None:
    lines = format_reply(code, texts)
    parsed = [parse_reply_line(line) for line in lines]
    assert all(line is not None for line in parsed), lines
    reply = Reply(tuple(line for line in parsed if line is not None))
    assert [line.code for line in reply.lines] == [code] * len(texts)
    assert [line.final for line in reply.lines] == [False] * (len(texts) - 1) + [True]
    assert [line.text for line in reply.lines] == texts
    assert reply.code == code
    assert reply.wire_lines() == lines


@PROPERTY_SETTINGS
@given(reply_codes)
def test_a_bare_code_is_a_complete_reply(code: int) -> None:
    assert format_reply(code, []) == [str(code)]
    parsed = parse_reply_line(str(code))
    assert parsed is not None and parsed.code == code and parsed.final and parsed.text == ""


@PROPERTY_SETTINGS
@given(st.text(max_size=80))
@example("250-")
@example("999 nope")
@example("2500 four digits")
@example("250 2.1.5 ok\r\n")
def test_parsing_any_line_gives_a_reply_or_none(line: str) -> None:
    parsed = parse_reply_line(line)
    if parsed is not None:
        assert 200 <= parsed.code <= 559
        assert line.startswith(str(parsed.code))
        enhanced = parsed.enhanced
        assert enhanced is None or enhanced[0] in "245"


# --- dot-stuffing (RFC 5321 §4.5.2) ---------------------------------------------------------------


def server_lines(stuffed: bytes) -> Iterator[bytes]:
    """Split DATA as the server reads it: up to and including each CRLF."""
    start = 0
    while start < len(stuffed):
        end = stuffed.find(b"\r\n", start)
        assert end >= 0, "dot_stuff output must end with CRLF"
        yield stuffed[start : end + 2]
        start = end + 2


def normalised(body: bytes) -> bytes:
    """The message with every line ending (CRLF or bare LF) made CRLF, as DATA carries it."""
    lines = body.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join(line + b"\r\n" for line in lines)


message_lines = st.lists(
    st.one_of(
        st.sampled_from([b".", b"..", b".x", b"", b"\r", b"a\rb", b"From: x", b" .", b"\x00"]),
        st.binary(max_size=30),
    ),
    max_size=12,
)
messages = st.one_of(
    st.binary(max_size=400),
    st.tuples(message_lines, st.sampled_from([b"\r\n", b"\n"])).map(
        lambda parts: parts[1].join(parts[0])
    ),
)


@PROPERTY_SETTINGS
@given(messages)
@example(b".\r\n")
@example(b"a\r\r\n.\n..\n")
@example(b"\r\n.\r\n")
def test_dot_stuffing_round_trips_line_by_line(body: bytes) -> None:
    stuffed = dot_stuff(body)
    lines = list(server_lines(stuffed))
    assert b"".join(lines) == stuffed
    assert b".\r\n" not in lines, "a line of the message would end DATA early"
    assert b"".join(dot_unstuff(line) for line in lines) == normalised(body)


# --- the header summary reads only the header section --------------------------------------------

header_lines = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"From: Bugs Bunny <bugs@looney.example>",
                b"To: you@tutor.test",
                b"Cc: a@b.example, c@d.example",
                b"Subject: hello",
                b" folded continuation",
                b"\tmore",
                b"Bcc: hidden@x.example",
                b"",
                b"no colon here",
                b"\r",
            ]
        ),
        st.binary(max_size=20),
    ),
    max_size=10,
)


@PROPERTY_SETTINGS
@given(
    st.tuples(header_lines, st.sampled_from([b"\r\n", b"\n", b"\r"]), st.binary(max_size=200)).map(
        lambda parts: parts[1].join(parts[0]) + parts[2]
    )
)
@example(b"From: a\r\n\r\nTo: b\r\n")
@example(b"From: a\r\r\nTo: b\r\n")
@example(b"\r\nFrom: a\r\n")
def test_the_header_summary_ignores_the_body(content: bytes) -> None:
    summary = summarize_headers(content)
    # the whole message parsed, its header text UTF-8 where valid (RFC 6532), \xNN elsewhere
    full = HeaderParser(policy=compat32).parsestr(content.decode("utf-8", "backslashreplace"))

    def get(name: str) -> str:
        return ", ".join(" ".join(str(v).split()) for v in full.get_all(name) or [])

    assert (summary.header_from, summary.header_to, summary.header_cc, summary.subject) == (
        get("From"),
        get("To"),
        get("Cc"),
        get("Subject"),
    )
    assert content.startswith(header_block(content))


# --- the lesson loader: problems, never a crash ------------------------------------------------

toml_keys = st.sampled_from(
    [
        "format_version",
        "id",
        "title",
        "objectives",
        "explain",
        "command",
        "accept",
        "expect",
        "hints",
        "after",
        "kind",
        "lines",
        "goal",
        "predict",
        "optional",
        "counter_example",
        "checks",
        "on_reply",
        "open_relay",
        "idle_timeout",
        "250",
        "stored",
        "x-unknown",
    ]
)
toml_values = st.one_of(
    st.integers(-5, 700).map(str),
    st.sampled_from(
        [
            "1",
            "true",
            "false",
            '"conversation"',
            '"HELO a.b.c"',
            "'(?i)^(HELO|EHLO)\\s+\\S+$'",
            "['(']",
            "['(?i)^MAIL']",
            "[250]",
            "[250, 'x']",
            "[]",
            "{}",
            '{ stored = "you" }',
            '"""\nmulti\nline\n"""',
            "1979-05-27",
            "3.5",
            "[[1], [2]]",
            '"unterminated',
            "= =",
        ]
    ),
    st.text(max_size=12).map(lambda text: '"' + text.replace("\\", "").replace('"', "") + '"'),
)
toml_lines = st.one_of(
    st.tuples(toml_keys, toml_values).map(lambda kv: f"{kv[0]} = {kv[1]}"),
    st.sampled_from(
        ["[[steps]]", "[persona]", "[steps.on_reply]", "[[steps.checks]]", "[steps", "", "# note"]
    ),
    st.text(max_size=30),
)


def mutated_lesson(data: st.DataObject) -> str:
    """A shipped lesson with some of its lines dropped, duplicated or replaced."""
    files = sorted(LESSONS.glob("*.toml"))
    lines = data.draw(st.sampled_from(files)).read_text(encoding="utf-8").splitlines()
    for _ in range(data.draw(st.integers(1, 6))):
        if not lines:
            break
        where = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["drop", "copy", "replace"]))
        if action == "drop":
            del lines[where]
        elif action == "copy":
            lines.insert(where, lines[where])
        else:
            lines[where] = data.draw(toml_lines)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def lesson_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="lesson-fuzz-") as folder:
        yield Path(folder)


def check_loader(path: Path) -> None:
    problems: list[loader.Problem] = []
    lesson = loader.parse(path, 1, problems)
    if lesson is None:
        assert problems, "no lesson and no problem reported"
    for problem in problems:
        assert isinstance(problem, loader.Problem)
        assert problem.line >= 1
        assert str(problem).startswith(f"{path}:")
    try:
        loader.load(path, 1)
    except loader.LessonError as error:
        assert problems and str(error) == str(problems[0])
    else:
        assert not problems


@PROPERTY_SETTINGS
@given(st.lists(toml_lines, max_size=25))
def test_the_lesson_loader_reports_problems_for_random_toml(
    lesson_dir: Path, lines: list[str]
) -> None:
    path = lesson_dir / "01-random.toml"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogateescape")
    check_loader(path)


@PROPERTY_SETTINGS
@given(st.data())
def test_the_lesson_loader_reports_problems_for_damaged_lessons(
    lesson_dir: Path, data: st.DataObject
) -> None:
    path = lesson_dir / "01-damaged.toml"
    path.write_text(mutated_lesson(data), encoding="utf-8", errors="surrogateescape")
    check_loader(path)


@PROPERTY_SETTINGS
@given(st.binary(max_size=200))
@example(b"\xff\xfe not utf-8")
def test_the_lesson_loader_reports_problems_for_random_bytes(lesson_dir: Path, raw: bytes) -> None:
    path = lesson_dir / "01-bytes.toml"
    path.write_bytes(raw)
    check_loader(path)


# --- the transcript reader: a summary, or one "no replies" error ----------------------------------

transcript_lines = st.one_of(
    st.sampled_from(
        [
            "220 mx.example.test ESMTP ready",
            "250-mx.example.test Hello",
            "250 2.1.5 ok",
            "354 go ahead",
            "550 5.7.1 relay access denied",
            "421 4.4.2 bye",
            "221 2.0.0 bye",
            ".",
            "",
            "HELO a.b.c",
            "MAIL FROM:<a@b.example>",
            "RCPT TO:<you@tutor.test>",
            "DATA",
            "QUIT",
            "STARTTLS",
            "=== Trying mx.example.test:25...",
            "<-  220 mx ESMTP",
            " -> EHLO x",
            "<~  250 ok",
            " ~> QUIT",
            "<** 550 no",
            "*** Remote host closed connection unexpectedly.",
            "send: 'ehlo x\\r\\n'",
            "reply: b'250-mx\\r\\n'",
            "reply: b'250 ok\\r\\n'",
            "reply: retcode (250); Msg: b'ok'",
            "send: b'broken",
            "data: (354, b'go')",
            "connect: ('127.0.0.1', 25)",
            "Trying 127.0.0.1...",
            "Connected to localhost.",
            "Escape character is '^]'.",
            "Connection closed by foreign host.",
            "$ nc -C localhost 25",
            "250 2.0.0 OK id=3054452B33075",
        ]
    ),
    st.text(max_size=40),
)


@PROPERTY_SETTINGS
@given(st.lists(transcript_lines, max_size=30), st.sampled_from(["\n", "\r\n"]))
@example([], "\n")
@example(["send: 'x'", "reply: b'", "250 ok"], "\n")
def test_the_transcript_reader_never_crashes(lines: list[str], ending: str) -> None:
    text = ending.join(lines)
    try:
        transcript = parse_transcript(text)
    except UserError as error:
        message = str(error)
        assert "no SMTP reply found" in message or "empty" in message, message
        return
    assert transcript.format in ("swaks", "smtplib", "telnet", "nc")
    assert transcript.summary.outcome in ("accepted", "refused", "never sent")


@PROPERTY_SETTINGS
@given(st.text(max_size=300))
def test_the_transcript_reader_never_crashes_on_any_text(text: str) -> None:
    try:
        parse_transcript(text)
    except UserError as error:
        assert "no SMTP reply found" in str(error) or "empty" in str(error)
