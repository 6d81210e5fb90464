"""`demo` through every lesson, and transcripts in each format a teacher hands out."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.support import run_cli
from tutor.engine.loader import load_all

SEED = (
    "helo a.b.c\nmail from:<bugs@looney.example>\nrcpt to:<you@tutor.test>\ndata\n"
    "From: Bugs Bunny\nTo: Daffy Duck\nSubject: Loony Toons!\n\nHi there!\n.\nquit\n"
)


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, stdin=stdin, columns=100)


@pytest.mark.parametrize("number", [str(lesson.number) for lesson in load_all()])
def test_demo_plays_every_lesson_straight_through(number: str, tutor_home: Path) -> None:
    result = run("demo", number, "--delay", "0", "--plain")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert f"End of lesson {number}" in result.stdout
    assert "could not complete this step" not in result.stdout
    assert not (tutor_home / "progress.json").exists(), "a demo records no progress"


class _Strict(HTMLParser):
    """Fails on tags closed out of order: enough to call the export well-formed HTML."""

    VOID = frozenset({"meta", "br", "link", "img", "hr", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def test_learn_transcripts_in_every_format(tmp_path: Path) -> None:
    outputs = {}
    for extension in ("md", "html", "svg", "txt"):
        path = tmp_path / f"lesson1.{extension}"
        result = run("learn", "1", "--plain", "--transcript", str(path), stdin=SEED)
        assert result.returncode == 0, result.stderr
        outputs[extension] = path.read_text(encoding="utf-8")
    markdown = outputs["md"]
    assert markdown.startswith("# smtp-tutor: lesson 1, The SMTP conversation")
    assert "250 mx.tutor.test Hello a.b.c [127.0.0.1]" in markdown
    assert "Greeting accepted (HELO)" in markdown and "where it went: the envelope" in markdown
    parser = _Strict()
    parser.feed(outputs["html"])
    parser.close()
    assert parser.stack == [] and "Daffy Duck" in outputs["html"]
    svg = ElementTree.fromstring(outputs["svg"])
    assert svg.tag.endswith("svg")
    assert "221 2.0.0" in outputs["txt"]


def test_hostile_text_is_escaped_in_html_and_svg(tmp_path: Path) -> None:
    hostile = SEED.replace("Subject: Loony Toons!", "Subject: <script>alert(1)</script> & </svg>")
    for extension in ("html", "svg"):
        path = tmp_path / f"t.{extension}"
        run("learn", "1", "--plain", "--transcript", str(path), stdin=hostile)
        text = path.read_text(encoding="utf-8")
        assert "<script>" not in text and "</svg> &" not in text
    ElementTree.fromstring((tmp_path / "t.svg").read_text(encoding="utf-8"))


def test_unknown_transcript_extension_is_one_line(tmp_path: Path) -> None:
    result = run("learn", "1", "--transcript", str(tmp_path / "x.pdf"), stdin="")
    assert result.returncode == 2
    assert result.stderr.startswith("smtp-tutor: --transcript")
    assert "Traceback" not in result.stderr
