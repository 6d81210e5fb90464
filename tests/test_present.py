"""Presentation and demo pacing, and the light theme: what a class sees on a projector."""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from pathlib import Path

import pytest

from tests.pty_session import ANSI, PtySession
from tests.support import run_cli

DELAY = 0.5
REPLY = re.compile(r"← server \d{3}")
NEXT = re.compile(r"(?:smtp|data)> |Lesson 1 · The SMTP conversation · step \d+ of")


class TimedSession(PtySession):
    """A pty session that remembers when each piece of its output arrived."""

    def __init__(self, *args: str, **options: object) -> None:
        self.arrivals: list[tuple[float, int]] = []  # (when, length of the output by then)
        super().__init__(*args, **options)  # type: ignore[arg-type]

    @property
    def raw(self) -> str:
        return self._raw

    @raw.setter
    def raw(self, value: str) -> None:
        self._raw = value
        self.arrivals.append((time.monotonic(), len(value)))

    def arrived(self, position: int) -> float:
        """When the character at this position of the escape-free screen arrived."""
        offset = _raw_offset(self._raw, position)
        return next(when for when, length in self.arrivals if length > offset)


def _raw_offset(raw: str, position: int) -> int:
    """The index in the raw output of a position in the escape-free text."""
    kept = cursor = 0
    for match in ANSI.finditer(raw):
        gap = match.start() - cursor
        if kept + gap > position:
            break
        kept += gap
        cursor = match.end()
    return cursor + (position - kept)


@pytest.mark.slow  # four replies held for the delay each, in a pseudo-terminal: 6 s
@pytest.mark.posix
def test_a_presented_demo_holds_each_reply_on_screen_for_the_delay() -> None:
    """Between a reply appearing and whatever replaces it (the next step's clean screen,
    the next command) there is at least the delay, so the class can read it."""
    pytest.importorskip("pexpect") if sys.platform != "win32" else None
    demo = TimedSession(
        "demo",
        "1",
        "--present",
        "--delay",
        str(DELAY),
        rows=35,
        columns=100,
        environment={**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "35"},
    )
    for _ in range(4):  # the greeting, then HELO, MAIL and RCPT
        demo.expect(REPLY.pattern)
    demo.press("q")  # read while the RCPT reply is held
    assert demo.finish() == 1  # stopped before the end
    screen = demo.screen()
    assert re.search(r"Demo stopped at step \d+\. `smtp-tutor demo 1` plays it again", screen)
    assert "Progress is kept" not in screen  # a demo keeps none
    replies = [m.end() for m in REPLY.finditer(screen)]
    assert len(replies) >= 4
    held = []
    for end in replies:
        following = NEXT.search(screen, end)
        if following is not None:
            shown, replaced = demo.arrived(end - 1), demo.arrived(following.start())
            if replaced > shown:  # in one read, the test was too late to time them
                held.append(replaced - shown)
    # A read the machine delays makes a reply seem to arrive late, so a hold can only be
    # measured short, never long: most of them, not every one, must show the delay.
    assert len(held) >= 2, screen
    assert statistics.median(held) >= DELAY * 0.95, held  # slack for the clock's granularity
    assert screen.count("250 mx.tutor.test Hello a.b.c [127.0.0.1]") == 1  # once, not twice
    assert "(typed by the tutor)" in screen


def test_learn_present_shows_each_reply_and_its_meaning_once(tmp_path: Path) -> None:
    script = tmp_path / "class.txt"
    script.write_text("\nhelo a.b.c\n\n/quit\n")
    result = run_cli("learn", "1", "--present", "--script", str(script), columns=100)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert out.count("250 mx.tutor.test Hello a.b.c [127.0.0.1]") == 1
    assert out.count("Greeting accepted (HELO)") == 1
    assert out.count("HELO is the old greeting") == 1  # the meaning, once
    assert out.count("250 · DONE") == 1
    assert out.count("RFC 5321 §4.1.1.1") == 1


def test_demo_present_shows_each_reply_once() -> None:
    result = run_cli("demo", "1", "--present", "--delay", "0", columns=100)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout.split("Your session, as a sequence diagram")[0]  # the end repeats it
    assert out.count("250 mx.tutor.test Hello a.b.c [127.0.0.1]") == 1
    assert out.count("Greeting accepted (HELO)") == 1
    assert out.count("221 · DONE") == 1


# --- the light theme ------------------------------------------------------------------------

SGR = re.compile(r"\x1b\[([0-9;]*)m")
YELLOW_CYAN = {"33", "36", "93", "96", "43"}  # foreground yellow/cyan, bright too


def _text_attributes(output: str) -> set[str]:
    """Every SGR attribute used, with 256-colour and true-colour values kept whole."""
    found: set[str] = set()
    for match in SGR.finditer(output):
        parts = match.group(1).split(";")
        index = 0
        while index < len(parts):
            if parts[index] in ("38", "48") and index + 1 < len(parts):
                width = 3 if parts[index + 1] == "5" else 5
                found.add(";".join(parts[index : index + width]))
                index += width
            else:
                found.add(parts[index])
                index += 1
    return found


@pytest.fixture
def colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("COLORTERM", raising=False)


@pytest.mark.parametrize("term", ["xterm-256color", "xterm"])
def test_the_light_theme_has_no_yellow_cyan_or_faint_text(
    term: str, colour: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERM", term)
    dark = _text_attributes(run_cli("demo", "1", "--delay", "0").stdout)
    light = _text_attributes(run_cli("demo", "1", "--delay", "0", "--theme", "light").stdout)
    assert dark & YELLOW_CYAN or "38;5;6" in dark  # the dark theme does use them
    assert "2" in dark  # and faint text
    assert not light & (YELLOW_CYAN | {"2", "38;5;3", "38;5;6", "38;5;11", "38;5;14"}), light
    assert light != dark


def test_theme_is_a_shared_option_and_plain_still_wins(colour: None) -> None:
    before = run_cli("--theme", "light", "codes", "250")
    after = run_cli("codes", "250", "--theme=light")
    assert before.returncode == after.returncode == 0
    assert before.stdout == after.stdout and "\x1b[" in before.stdout
    plain = run_cli("codes", "250", "--theme", "light", "--plain")
    assert plain.returncode == 0 and "\x1b" not in plain.stdout
    wrong = run_cli("--theme", "blue", "codes")
    assert wrong.returncode == 2 and "'blue' is not a theme: choose dark or light" in wrong.stderr


def test_a_light_svg_transcript_is_drawn_on_white(colour: None, tmp_path: Path) -> None:
    light, dark = tmp_path / "light.svg", tmp_path / "dark.svg"
    run_cli("demo", "1", "--delay", "0", "--theme", "light", "--transcript", str(light))
    run_cli("demo", "1", "--delay", "0", "--transcript", str(dark))
    assert 'fill="#ffffff"' in light.read_text() and 'fill="#ffffff"' not in dark.read_text()


# --- a terminal that cannot draw --------------------------------------------------------------


@pytest.mark.posix
def test_term_dumb_opens_the_lesson_menu_with_plain_line_input() -> None:
    pytest.importorskip("pexpect") if sys.platform != "win32" else None
    environment = {**os.environ, "TERM": "dumb", "COLUMNS": "100"}
    environment.pop("FORCE_COLOR", None)
    tutor = PtySession(rows=35, columns=100, environment=environment)
    tutor.type("1", prompt=r"Lesson \(c = continue with lesson 1, q = quit\) > ")
    tutor.type("/quit", prompt=r"smtp> ")
    tutor.expect(r"Stopped at step 2")
    tutor.type("q", prompt=r"in progress \(at helo\)[\s\S]*Lesson \(c = continue with lesson 1")
    assert tutor.finish() == 0
    assert "\x1b" not in tutor.raw  # no colour, no cursor movement: plain lines throughout
