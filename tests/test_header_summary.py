"""The server's one-pass header summary gives what the standard library's email parser
gives (HeaderParser, compat32), whatever the header section: folded, repeated, malformed,
non-UTF-8, odd line endings, Unix From_ lines, fields without a name.

The reference is the summary as the server made it before (tutor/maildir/store.py,
`summarize_headers`): the email parser over the header block, UTF-8 where valid and
`\\xNN` elsewhere, each value's whitespace made single spaces, repeated fields joined.
"""

from __future__ import annotations

import os
from email.parser import HeaderParser
from email.policy import compat32

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tutor.maildir.store import HeaderSummary, header_block, summarize_headers

SETTINGS = settings(
    max_examples=int(os.environ.get("SMTP_TUTOR_PROPERTY_EXAMPLES", "150")) * 4,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def parsed_by_the_email_package(content: bytes) -> HeaderSummary:
    text = header_block(content).decode("utf-8", "backslashreplace")
    headers = HeaderParser(policy=compat32).parsestr(text)

    def get(name: str) -> str:
        return ", ".join(" ".join(str(v).split()) for v in headers.get_all(name) or [])

    return HeaderSummary(get("From"), get("To"), get("Cc"), get("Subject"), get("Date"))


# Pieces that header sections are made of, the odd ones included: names in any case, a
# name with a space before its colon, a colon with no name, Unix From_ lines, folding
# whitespace, every line ending the parser knows, whitespace str.split() knows and the
# parser does not end lines at (NEL, NBSP, FS, VT, FF, U+2028), bytes that are not UTF-8.
PIECES = [
    b"From: ",
    b"from:",
    b"FROM:",
    b"To:",
    b"to :",
    b"Cc:",
    b"CC: ",
    b"Subject:",
    b"SUBJECT: ",
    b"Date: ",
    b"X-Other: ",
    b"Reply-To:",
    b"From ",
    b"From x@y ",
    b":",
    b": no name",
    b"Bad Name: v",
    b"From:\xc3",
    b" ",
    b"\t",
    b"  ",
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n ",
    b"\r\n\t",
    b"\n ",
    b"\r ",
    b"\r\n\r\n",
    b"a@b.example",
    b"Alice <a@b.example>",
    b"J\xc3\xb6rg <j\xc3\xb6rg@sch\xc3\xbcle.example>",
    b"\xff\xfe",
    b"\xed\xa0\x80",
    b"\xc2\x85",
    b"\xc2\xa0",
    b"\xe2\x80\xa8",
    b"\x1c",
    b"\x0b\x0c",
    b"\x00",
    b"hello world",
    b",",
    b"=?utf-8?q?caf=C3=A9?=",
    b"Mon, 30 Nov 2026 09:54:02 +0000",
]

sections = st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=12)), max_size=40).map(
    b"".join
)


@SETTINGS
@given(sections)
@example(b"From: a\r\n\r\nTo: b\r\n")
@example(b"From: a\r\r\nTo: b\r\n")
@example(b"\r\nFrom: a\r\n")
@example(b" folded first\r\nFrom: a\r\n")
@example(b"From x@y Mon\r\nFrom: a\r\n b\r\nFrom c\r\n d\r\nTo: e\r\n")
@example(b"To: a\r\n: no name\r\n continued\r\nTo: b")
@example(b"Subject: one\r\nSubject:\r\nsubject: three\r\n")
@example(b"Subject: a\xc2\x85b\xc2\xa0c\x1cd\r\n")
@example(b"From: a\rFrom: b\nFrom: c\r\n")
@example(b"From: \xff\xfe <x@y>\r\n")
@example(b"")
@example(b"From: a")
@example(b"From: a\r")
def test_the_summary_is_the_email_parsers(content: bytes) -> None:
    assert summarize_headers(content) == parsed_by_the_email_package(content)


@SETTINGS
@given(st.binary(max_size=300))
def test_the_summary_is_the_email_parsers_for_any_bytes(content: bytes) -> None:
    assert summarize_headers(content) == parsed_by_the_email_package(content)


def test_a_large_header_section_read_in_the_parsers_chunks_agrees() -> None:
    # The email parser reads 8 KiB at a time: a line end split across two reads (a CR
    # ending one, its LF starting the next) must still be one line end.
    filler = b"X-Filler: " + b"x" * 8180 + b"\r\n"
    for shift in range(-3, 4):
        content = (
            b"From: a@b.example\r\n"
            + filler[: len(filler) + shift]
            + b"\r\n To: folded?\r\nTo: c@d.example\r\nSubject: s\r\n\r\nbody"
        )
        assert summarize_headers(content) == parsed_by_the_email_package(content)
