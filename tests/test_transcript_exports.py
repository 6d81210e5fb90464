"""Transcripts cannot be broken out of, and are written as they go, capped.

Whatever a client sends, a Markdown transcript rendered by markdown-it (CommonMark, raw
HTML allowed, as the most permissive viewer would) has the client's text only inside its
code block; an HTML transcript only as text inside the transcript's own elements; an SVG
is well-formed with the client's text only in text nodes. Known payloads (a fence at a
wrap boundary, `<script>`, a remote image, `</pre>`, `]]>`, ANSI, bidi, U+2028) and
hypothesis-generated lines go through serve's writer, `learn --transcript` and a real
`serve --transcripts`; a cut transcript stays under its cap and says where it was cut;
a file is valid after every event, so a serve killed with SIGKILL leaves one; no format
loads anything from elsewhere (a font, a stylesheet, an image), whatever the client typed.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from tests.serve_process import ServeProcess
from tests.support import RawClient, run_cli
from tutor.smtp.events import Event, Exchange, MessageStored, SessionClosed, SessionOpened
from tutor.smtp.textsafe import visible
from tutor.ui.common.transcript_export import Cap
from tutor.ui.serve.serve_transcripts import TAIL_EVENTS, SessionTranscripts

FORMATS = ("md", "html", "svg", "txt")
PAYLOADS = [
    "```",
    "````` ~~~",
    "<script>alert(1)</script>",
    "![x](http://evil/)",
    "</pre></code></body><img src=x onerror=alert(1)>",
    "]]><x/><!--",
    "\x1b[31mred\x1b[0m\x1b]8;;http://evil/\x07link",
    "\u202eevil\u2066 bidi",
    "line\u2028Injected-Header: yes\u2029",
    "&amp; &lt;b&gt; &#60;script&#62;",
    "<!DOCTYPE x><?xml?>",
    "[link](javascript:alert(1)) <http://evil/> *em* _u_ # h",
    "\x00\x08\x0b\x0c\x85\ufeff\ufffe",
]
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("SMTP_TUTOR_PROPERTY_EXAMPLES", "25")),
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


# --- what each format may hold ---------------------------------------------------------------


def markdown_code(text: str) -> str:
    """The one code block's content; fails on any token client text could have made."""
    tokens = MarkdownIt("commonmark", {"html": True}).parse(text)
    kinds = [token.type for token in tokens]
    heading = ["heading_open", "inline", "heading_close"]
    assert kinds == [*heading, "paragraph_open", "inline", "paragraph_close", "fence"], kinds
    for token in tokens:
        for child in token.children or []:
            assert child.type == "text", (child.type, child.content)
    rendered = MarkdownIt("commonmark", {"html": True}).render(text)
    assert set(re.findall(r"</?([a-zA-Z0-9]+)", rendered)) == {"h1", "p", "pre", "code"}
    return tokens[-1].content


class _Page(HTMLParser):
    """Every tag, attribute and text of an HTML transcript."""

    TAGS = frozenset({"html", "head", "meta", "title", "body", "pre", "code", "span"})
    VOID = frozenset({"meta"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in self.TAGS, tag
        for name, value in attrs:
            assert name in ("charset", "style"), (tag, name)
            assert value is not None and re.fullmatch(_CSS, value), value
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"

    def handle_data(self, data: str) -> None:
        if "code" in self.stack:
            assert self.stack[-2:] in (["pre", "code"], ["code", "span"]), self.stack
            self.text.append(data)
        else:
            assert self.stack[-1:] == ["title"] or not data.strip(), (self.stack, data)

    def handle_comment(self, data: str) -> None:
        raise AssertionError(f"a comment: {data!r}")

    def handle_decl(self, decl: str) -> None:
        assert decl == "DOCTYPE html", decl

    def handle_pi(self, data: str) -> None:
        raise AssertionError(f"a processing instruction: {data!r}")

    def unknown_decl(self, data: str) -> None:
        raise AssertionError(f"a declaration: {data!r}")


_CSS_VALUE = r"[#a-zA-Z0-9 ,.'-]+"
_CSS = rf"utf-8|[a-z-]+: {_CSS_VALUE}(; [a-z-]+: {_CSS_VALUE})*"


def html_text(text: str) -> str:
    page = _Page()
    page.feed(text)
    page.close()
    assert page.stack == [], page.stack
    return "".join(page.text)


SVG = "{http://www.w3.org/2000/svg}"
_SVG_ATTRIBUTES = {
    "width": r"\d+(\.\d+)?%?",
    "height": r"\d+(\.\d+)?%?",
    "viewBox": r"0 0 \d+ \d+",
    "x": r"\d+(\.\d+)?",
    "y": r"\d+(\.\d+)?",
    "textLength": r"\d+(\.\d+)?",
    "fill": r"#[0-9a-f]{6}",
    "font-family": _CSS_VALUE,
    "font-size": r"\d+",
    "font-weight": "bold",
    "font-style": "italic",
    "text-decoration": "underline|line-through",
}


def svg_text(text: str) -> str:
    """The SVG's texts, row by row; fails on any element or attribute not its own."""
    root = ElementTree.fromstring(text)
    rows: list[str] = []
    for element in root.iter():
        tag = element.tag.removeprefix(SVG)
        assert tag in ("svg", "title", "rect", "g", "text"), tag
        for name, value in element.attrib.items():
            assert name in _SVG_ATTRIBUTES, (tag, name)
            assert re.fullmatch(_SVG_ATTRIBUTES[name], value), (name, value)
        assert not (element.tail or "").strip(), element.tail
        if tag == "text":
            assert len(element) == 0
            rows.append((element.text or "").replace("\xa0", " "))
        elif tag != "title":
            assert not (element.text or "").strip(), (tag, element.text)
    return "\n".join(rows)


def client_text_of(path: Path) -> str:
    """The transcript's text where client text may be, checked for its format."""
    text = path.read_text(encoding="utf-8")
    kind = path.suffix
    if kind == ".md":
        return markdown_code(text)
    if kind == ".html":
        return html_text(text)
    if kind == ".svg":
        return svg_text(text)
    return text


def squeezed(text: str) -> str:
    """Without whitespace: wrapped rows read as one line."""
    return re.sub(r"\s+", "", text)


def assert_shown(path: Path, payload: str) -> None:
    shown = client_text_of(path)
    assert squeezed(visible(payload)) in squeezed(shown), (path.name, payload)


# --- serve's writer, fed the server's events -------------------------------------------------


def session_events(lines: list[str]) -> list[Event]:
    events: list[Event] = [SessionOpened(1, "127.0.0.1", 40000, 25)]
    events.append(Exchange(1, "greeting", b"", ("220 mx.tutor.test ESMTP",)))
    for line in lines:
        sent = line.encode("utf-8", "surrogatepass") + b"\r\n"
        events.append(Exchange(1, "command", sent, ("500 5.5.2 " + line[:40],)))
    body = "".join(f"{line}\r\n" for line in lines[:5]).encode() + b".\r\n"
    events.append(Exchange(1, "data", body, ("250 2.0.0 OK id=1",)))
    first = lines[0] if lines else ""
    events.append(
        MessageStored(
            1,
            queue_id="1",
            sender=first,
            recipients=("you@tutor.test",),
            copies=(),
            header_from=first,
            header_to=first,
            header_cc=first,
            subject=first,
            size=len(body),
        )
    )
    events.append(SessionClosed(1, "client"))
    return events


def write_session(directory: Path, extension: str, events: list[Event]) -> Path:
    transcripts = SessionTranscripts(directory, extension)
    for event in events:
        transcripts.feed(event)
    transcripts.close()
    return handout(transcripts.folders[-1], 1, extension)


def handout(folder: Path, number: int, extension: str) -> Path:
    """Session `number`'s handout in a RUN folder (DIR/RUN/STUDENT/session-NNNN.EXT)."""
    [path] = folder.glob(f"*/session-{number:04d}.{extension}")
    return path


def at_wrap(prefix: int, payload: str) -> str:
    return "x" * prefix + payload


client_lines = st.lists(
    st.one_of(
        st.sampled_from(PAYLOADS),
        st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",))),
        st.builds(at_wrap, st.integers(0, 200), st.sampled_from(PAYLOADS[:4])),
    ),
    min_size=1,
    max_size=6,
)


@PROPERTY_SETTINGS
@given(client_lines)
def test_client_text_never_leaves_its_place_in_a_serve_transcript(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for extension in FORMATS:
            path = write_session(Path(folder), extension, session_events(lines))
            for line in lines:
                assert_shown(path, line)


@pytest.mark.parametrize("extension", FORMATS)
def test_known_payloads_at_every_wrap_boundary(tmp_path: Path, extension: str) -> None:
    lines = [at_wrap(prefix, payload) for payload in PAYLOADS for prefix in (86, 87, 94, 95)]
    lines += [at_wrap(prefix, "`" * 120) for prefix in (0, 86, 92)]
    path = write_session(tmp_path, extension, session_events(lines + PAYLOADS))
    for line in lines + PAYLOADS:
        assert_shown(path, line)
    if extension == "md":  # the fence grew past the longest run, and closes the file
        text = path.read_text(encoding="utf-8")
        fence = text.rstrip("\n").rsplit("\n", 1)[1]
        longest = max(len(run) for run in re.findall("`+", markdown_code(text)))
        assert set(fence) == {"`"} and len(fence) == longest + 1 > 90


def test_a_wrapped_row_never_starts_with_client_text(tmp_path: Path) -> None:
    """The hanging indent: a row starts with the session's tag, or with six spaces."""
    lines = [at_wrap(prefix, "```<b>x</b>") for prefix in range(80, 100)]
    path = write_session(tmp_path, "txt", session_events(lines))
    rows = path.read_text(encoding="utf-8").splitlines()
    assert any(row.startswith("      ```<b>") for row in rows)
    assert all(row.startswith(("#1 ", " " * 6)) for row in rows), rows


# --- learn --transcript: the console's record, whole -----------------------------------------

SEED = (
    "helo a.b.c\nmail from:<bugs@looney.example>\nrcpt to:<you@tutor.test>\ndata\n"
    "From: Bugs Bunny\nTo: Daffy Duck\nSubject: {subject}\n\nHi there!\n.\nquit\n"
)


WRAPS = (88, 93, 94, 95, 99, 100)  # where `you → LINE` folds at 100 columns, and around


def test_learn_transcripts_hold_hostile_lines_in_place(tmp_path: Path) -> None:
    """As first found: a line sent in the lesson that wraps so that ``` starts a row."""
    hostile = [at_wrap(prefix, "```") + "<script>alert(1)</script>" for prefix in WRAPS]
    hostile += [payload for payload in PAYLOADS if "\x00" not in payload]
    typed = "".join(f"{line}\n" for line in hostile)
    stdin = typed + SEED.format(subject="<img src=http://evil/> ```")
    for extension in FORMATS:
        path = tmp_path / f"lesson1.{extension}"
        arguments = ("learn", "1", "--plain", "--transcript", str(path))
        result = run_cli(*arguments, stdin=stdin, columns=100)
        assert result.returncode == 0, result.stderr
        for line in hostile:
            assert_shown(path, line)
    rows = (tmp_path / "lesson1.txt").read_text(encoding="utf-8").splitlines()
    assert any(row.startswith("```<script>") for row in rows), "no row starts with a fence"


def test_a_lesson_title_is_escaped_in_the_markdown_heading(tmp_path: Path) -> None:
    from io import StringIO

    from rich.console import Console

    from tutor.ui.common.transcript_export import write

    console = Console(file=StringIO(), record=True, width=80)
    console.print("a row")
    path = tmp_path / "t.md"
    write(console, path, "<img src=http://evil/> *x* [y](z) `c` # h")
    assert "a row" in markdown_code(path.read_text(encoding="utf-8"))


# --- caps and cuts ----------------------------------------------------------------------------


NOOPS = 5_000


def noop_flood(count: int) -> list[Event]:
    events: list[Event] = [SessionOpened(1, "127.0.0.1", 40000, 25)]
    noop = Exchange(1, "command", b"NOOP\r\n", ("250 2.0.0 OK",))
    events += [noop] * count
    events.append(Exchange(1, "command", b"QUIT\r\n", ("221 2.0.0 Bye",)))
    events.append(SessionClosed(1, "quit"))
    return events


@pytest.mark.parametrize("extension", FORMATS)
def test_a_flood_is_cut_under_the_cap_with_a_note_and_its_end(
    tmp_path: Path, extension: str
) -> None:
    """5,000 NOOPs: 2,000 rows written, then counted; the note, then the close."""
    path = write_session(tmp_path, extension, noop_flood(NOOPS))
    text = client_text_of(path)
    size = path.stat().st_size
    assert size < 1024 * 1024
    note = re.search(r"… transcript cut here: ([\d,]+) more lines, ([\d,]+) bytes", text)
    assert note is not None, text[-2000:]
    lines, left_out = (int(group.replace(",", "")) for group in note.groups())
    written = squeezed(text).count("C:NOOP")
    rows = 1_000 if extension == "svg" else 2_000
    assert rows // 2 - 5 <= written <= rows // 2 + TAIL_EVENTS
    # Every NOOP is shown or counted: two lines, NOOP␍␊ and 250 2.0.0 OK␍␊, 20 bytes.
    assert lines == 2 * (NOOPS - written)
    assert left_out == lines // 2 * 20
    assert text.rstrip().endswith("closed after QUIT")


def test_a_transcript_is_whole_after_every_event(tmp_path: Path) -> None:
    """What serve leaves if it is killed at any point: a file each viewer can read."""
    small = Cap(rows=200, size=1024 * 1024)
    for extension in FORMATS:
        transcripts = SessionTranscripts(tmp_path / extension, extension, small)
        for count, event in enumerate(noop_flood(150)[:-1]):
            transcripts.feed(event)
            path = handout(transcripts.folders[-1], 1, extension)
            if count % 10 == 0 or 95 <= count <= 105:
                client_text_of(path)  # parses, whatever has been written so far
        assert "transcript cut here: it reached its cap while" in client_text_of(path)
        transcripts.close()


def test_a_small_cap_bounds_every_format(tmp_path: Path) -> None:
    from io import StringIO

    from rich.console import Console
    from rich.text import Text

    from tutor.ui.common.transcript_export import TranscriptWriter

    console = Console(file=StringIO(), width=100, color_system="truecolor")
    cap = Cap(rows=10_000, size=128 * 1024)
    for extension in FORMATS:
        path = tmp_path / f"t.{extension}"
        writer = TranscriptWriter(path, "t", console, cap=cap)
        row = Text("`" * 50 + "<b>" * 10 + "é" * 30, style="bold red on white")
        added = 0
        while writer.add([row]):
            added += 1
        writer.finish((7, 70), [row] * 200)
        assert path.stat().st_size <= cap.size, extension
        assert added > 0 and "… transcript cut here: " in client_text_of(path), extension


# --- a real serve ------------------------------------------------------------------------------


@pytest.mark.posix
def test_serve_killed_mid_session_leaves_valid_transcripts(tmp_path: Path) -> None:
    handouts = tmp_path / "handouts"
    process = ServeProcess(
        tmp_path / "Maildir",
        "--plain",
        "--transcripts",
        str(handouts),
        "--transcript-format",
        "svg",
    )
    try:
        client = RawClient(process.address)
        for payload in PAYLOADS:
            client.cmd(payload.encode())
        client.cmd("NOOP")
        process.wait_for(rb"#1 +C: NOOP")
        os.kill(process.proc.pid, signal.SIGKILL)
        process.proc.wait(timeout=10)
        client.close()
    finally:
        process.kill()
    [run] = handouts.iterdir()
    path = handout(run, 1, "svg")
    shown = svg_text(path.read_text(encoding="utf-8"))
    assert "NOOP" in shown
    for payload in PAYLOADS:
        assert squeezed(visible(payload)) in squeezed(shown), payload


def test_a_transcript_that_cannot_be_written_stops_alone(tmp_path: Path) -> None:
    """A folder removed under serve: that session's transcript stops, the feed goes on."""
    import shutil

    folder = tmp_path / "handouts"
    transcripts = SessionTranscripts(folder, "html")
    shutil.rmtree(folder)
    for event in noop_flood(3):
        transcripts.feed(event)
    transcripts.close()
    assert list(transcripts.failures) == [
        "transcript of session 1 not written: No such file or directory"
    ]


# --- nothing remote ---------------------------------------------------------------------------

URLS = [
    "https://fonts.example/x.woff2",
    "<img src=https://evil.example/x.png>",
    '<link rel="stylesheet" href="http://evil.example/a.css">',
    "![x](https://evil.example/y.png) <https://evil.example/>",
    "@import url(http://evil.example/b.css); url('https://evil.example/c')",
    '<?xml-stylesheet href="http://evil.example/s.xsl"?>',
]
SVG_NAMESPACE = 'xmlns="http://www.w3.org/2000/svg"'  # an identifier, never fetched


class _References(HTMLParser):
    """Every attribute value and style text of an HTML page: where a URL would be fetched."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.places: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.places += [f"{tag} {name}={value}" for name, value in attrs]
        self._in_style = tag == "style"

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.places.append(data)

    def handle_pi(self, data: str) -> None:
        self.places.append(data)


def fetched_references(path: Path) -> list[str]:
    """What a viewer of this transcript would load from elsewhere: URLs (or url(), @import)
    in HTML or SVG attributes and styles, Markdown links and images; plain text has none."""
    text = path.read_text(encoding="utf-8")
    remote = re.compile(r"https?:|//|url\(|@import", re.IGNORECASE)
    if path.suffix == ".html":
        page = _References()
        page.feed(text)
        return [place for place in page.places if remote.search(place)]
    if path.suffix == ".svg":
        places = [text.split("<svg", 1)[0]]  # the prologue: a stylesheet's PI, a DTD
        for element in ElementTree.fromstring(text).iter():
            places += [f"{key}={value}" for key, value in element.attrib.items()]
            if element.tag.endswith("style"):
                places.append(element.text or "")
        return [place for place in places if remote.search(place)]
    if path.suffix == ".md":
        tokens = MarkdownIt("commonmark", {"html": True}).parse(text)
        everything = [t for token in tokens for t in [token, *(token.children or [])]]
        return [
            f"{token.type} {token.attrs}"
            for token in everything
            if token.attrs or token.type.startswith(("link", "image", "html"))
        ]
    return []


@pytest.mark.parametrize("extension", FORMATS)
def test_no_transcript_loads_anything_remote(tmp_path: Path, extension: str) -> None:
    """A handout opens offline and tells no server it was opened: no font from a CDN, no
    stylesheet, no image; URLs the client typed are text, never an attribute or a link."""
    plain = write_session(tmp_path / "plain", extension, session_events(["NOOP", "QUIT"]))
    text = plain.read_text(encoding="utf-8").replace(SVG_NAMESPACE, "", 1)
    assert "http://" not in text and "https://" not in text and "url(" not in text
    assert fetched_references(plain) == []

    typed = write_session(tmp_path / "typed", extension, session_events(URLS + PAYLOADS))
    assert fetched_references(typed) == []
    for line in URLS:
        assert_shown(typed, line)


def test_no_lesson_transcript_loads_anything_remote(tmp_path: Path) -> None:
    stdin = "".join(f"{line}\n" for line in URLS) + SEED.format(subject="https://evil.example/")
    for extension in FORMATS:
        path = tmp_path / f"lesson1.{extension}"
        result = run_cli("learn", "1", "--plain", "--transcript", str(path), stdin=stdin)
        assert result.returncode == 0, result.stderr
        assert fetched_references(path) == [], extension
