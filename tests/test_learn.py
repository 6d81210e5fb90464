"""The main job, driven as a learner drives it: the real CLI in a pseudo-terminal."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.pty_session import PtySession
from tests.support import SEED_LINES, run_cli

pexpect = pytest.importorskip("pexpect") if sys.platform != "win32" else None

pytestmark = pytest.mark.posix

SEED = [*SEED_LINES, "quit"]


class Tutor(PtySession):
    """smtp-tutor in a 50-row pty, prompt_toolkit's cursor queries off."""

    def __init__(self, *args: str, columns: int = 120, env: dict[str, str] | None = None) -> None:
        environment = {
            **os.environ,
            "PROMPT_TOOLKIT_NO_CPR": "1",
            "TERM": "xterm-256color",
            "COLUMNS": str(columns),
            "LINES": "50",
            **(env or {}),
        }
        super().__init__(*args, rows=50, columns=columns, environment=environment)


@pytest.fixture
def home(tutor_home: Path) -> Path:
    return tutor_home


def run_seed(tutor: Tutor) -> None:
    for line in SEED:
        tutor.type(line)


def test_lesson_1_by_typing_the_seed_session(home: Path) -> None:
    tutor = Tutor("learn", "1")
    tutor.expect(r"220 mx\.tutor\.test ESMTP smtp-tutor ready")
    run_seed(tutor)
    tutor.expect(r"End of lesson 1")
    assert tutor.finish() == 0
    screen = tutor.screen()
    # the exact bytes sent, with the line ending visible, and the real address in the reply
    assert "helo a.b.c␍␊" in screen
    assert "250 mx.tutor.test Hello a.b.c [127.0.0.1]" in screen
    # every reply is explained: one annotation (with its class) per reply
    for code in ("220", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0 OK id=", "221 2.0.0"):
        assert code in screen
    assert screen.count("positive completion") >= 5 and "positive intermediate" in screen
    # the envelope against the headers
    assert "where it went: the envelope" in screen
    assert "From: Bugs Bunny" in screen and "To: Daffy Duck" in screen
    assert "RCPT TO:<you@tutor.test>" in screen
    assert "Delivered to: you (you@tutor.test)" in screen
    progress = json.loads((home / "progress.json").read_text())
    assert progress["lessons"]["conversation"]["status"] == "done"
    assert len(list((home / "Maildir" / "you" / "new").iterdir())) == 1


@pytest.mark.slow
def test_sequence_errors_are_real_replies_and_the_step_waits(home: Path) -> None:
    tutor = Tutor("learn", "1")
    tutor.type("helo a.b.c")
    tutor.type("rcpt to:<you@tutor.test>")  # RCPT before MAIL
    tutor.expect(r"503 5\.5\.1 Bad sequence of commands: send MAIL FROM first")
    tutor.expect(r"not what this step asks for")
    tutor.type("data")  # DATA before RCPT
    tutor.expect(r"503 5\.5\.1 Bad sequence of commands: no valid recipients yet")
    tutor.type("mail from:you@tutor.test")  # a syntax error: no angle brackets
    tutor.expect(r"501 5\.5\.4 Syntax: MAIL FROM:<address> \(angle brackets are required\)")
    assert "Step 4/11" not in tutor.screen()  # the MAIL step waited through every error
    tutor.type("mail from:<you@tutor.test>")
    tutor.expect(r"Step 4/11")
    tutor.type("/quit")
    assert tutor.finish() == 1


@pytest.mark.slow
def test_early_quit_reconnects_and_starts_the_session_again(home: Path) -> None:
    tutor = Tutor("learn", "1")
    tutor.type("helo a.b.c")
    tutor.type("mail from:<you@tutor.test>")
    tutor.type("quit")
    tutor.expect(r"221 2\.0\.0")
    tutor.expect(r"A new connection starts a new session")
    tutor.expect(r"220 mx\.tutor\.test ESMTP")  # a new greeting
    tutor.expect(r"Step 2/11")  # back to HELO: the server forgot everything
    tutor.type("/quit")
    assert tutor.finish() == 1


def test_hints_in_stages_then_show_me_counts_as_helped(home: Path) -> None:
    tutor = Tutor("learn", "1")
    tutor.type("/hint")
    tutor.expect(r"Hint 1/")
    tutor.type("/hint")
    tutor.expect(r"Hint 2/")
    tutor.type("/hint")
    tutor.expect(r"Hint 3/3")
    tutor.type("/hint")  # what /show does is said in this screen's own words
    tutor.expect(r"No more hints: /show makes the tutor type the answer")
    tutor.type("/show")
    tutor.expect(r"\(typed by the tutor\)")
    tutor.expect(r"250 mx\.tutor\.test Hello")
    tutor.expect(r"Step 3/11")
    tutor.type("/quit")
    assert tutor.finish() == 1
    progress = json.loads((home / "progress.json").read_text())
    assert progress["lessons"]["conversation"]["assisted"] == ["helo"]


@pytest.mark.slow
def test_resume_after_quitting_replays_earlier_steps(home: Path) -> None:
    tutor = Tutor("learn", "1")
    tutor.type("helo a.b.c")
    tutor.type("mail from:<you@tutor.test>")
    tutor.type("/quit")
    tutor.expect(r"Progress is kept")
    assert tutor.finish() == 1
    again = Tutor()  # no arguments: the menu offers to continue
    again.expect(r"c = continue with lesson 1")
    again.type("c", prompt=r"q = quit\) >")
    again.expect(r"Picking up where you left off")
    again.expect(r"Step 4/11")
    for line in SEED[2:]:
        again.type(line)
    again.expect(r"End of lesson 1")
    again.type("q", prompt=r"q = quit\) >")
    assert again.finish() == 0
    progress = json.loads((home / "progress.json").read_text())
    assert progress["lessons"]["conversation"]["status"] == "done"


@pytest.mark.slow
def test_a_corrupt_progress_file_is_kept_aside_with_one_warning(home: Path) -> None:
    (home / "progress.json").write_text("{not json")
    tutor = Tutor("learn", "1")
    tutor.expect(r"warning: progress file was damaged; kept it as progress\.corrupt-\d+\.json")
    tutor.type("/quit")
    assert tutor.finish() == 1
    assert list(home.glob("progress.corrupt-*.json"))


@pytest.mark.parametrize("number", [str(n) for n in range(2, 12)])
@pytest.mark.slow
def test_lessons_2_to_11_complete_through_the_interactive_path(home: Path, number: str) -> None:
    from tutor.engine.answers import canonical
    from tutor.engine.loader import load_all

    lesson = load_all()[int(number) - 1]
    tutor = Tutor("learn", number)
    for step in lesson.steps:
        if step.predict:
            tutor.type("5", prompt=r"Predict first")
        answer = canonical(step)
        if answer.action in ("advance", "library", "pipeline"):
            tutor.type("", prompt=r"Press Enter to continue")
        for line in answer.lines if answer.action == "lines" else ():
            tutor.type(line)
    for _question in lesson.questions:
        tutor.type("I am not sure", prompt=r"answer>")
    tutor.expect(rf"End of lesson {number}")
    assert tutor.finish() == 0
    if number == "2":
        screen = tutor.screen()
        assert "Python's smtplib.send_message" in screen
        assert "RCPT TO:<postmaster@tutor.test>" in screen  # derived from Bcc:


def test_plain_and_no_color_have_no_escape_codes(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A script, output to a pipe (in-process: the terminal is what the other tests here
    are for)."""
    script = tmp_path / "seed.txt"
    script.write_text("\n".join(SEED) + "\n")
    monkeypatch.setenv("NO_COLOR", "1")
    for flags in (["--plain"], []):
        result = run_cli("learn", "1", "--script", str(script), *flags, columns=80)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "\x1b" not in result.stdout
        assert "End of lesson 1" in result.stdout
        assert "Delivered to: you (you@tutor.test)" in result.stdout
    assert "╭" not in result.stdout or flags == []


@pytest.mark.slow
def test_piped_stdin_uses_plain_line_input(home: Path) -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "tutor", "learn", "1", "--plain"],
        input="\n".join(SEED[:3]) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1  # input ended before the lesson did
    assert "smtp> helo a.b.c" in result.stdout
    assert "250 2.1.5 <you@tutor.test> recipient verified" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_broken_lesson_file_is_one_line_with_file_and_line(home: Path, tmp_path: Path) -> None:
    import subprocess

    (tmp_path / "01-broken.toml").write_text(
        'format_version = 1\nid = "x"\ntitle = "t"\n'
        '[[steps]]\nid = "a"\nexplain = "e"\ncommand = "helo x"\n'
        "accept = ['(unclosed']\nexpect = [250]\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "tutor", "--lessons-dir", str(tmp_path), "learn", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith(
        f"smtp-tutor: {tmp_path / '01-broken.toml'}:8: accept pattern"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_hostile_lines_are_shown_literally_in_a_lesson(home: Path, tmp_path: Path) -> None:
    import subprocess

    script = tmp_path / "hostile.txt"
    script.write_bytes(
        b"helo [bold red]x[/] \x1b]0;pwned\x07\xe2\x80\xae\n"
        b"mail from:<a@example.test>\nrcpt to:<you@tutor.test>\ndata\n"
        b"Subject: \x1b[2J[link=x]y[/link]\n\nbody\n.\nquit\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "tutor", "learn", "1", "--script", str(script)],
        capture_output=True,
        timeout=60,
        env=dict(os.environ, NO_COLOR="1", COLUMNS="200"),
    )
    out = result.stdout
    assert result.returncode == 0, out.decode(errors="replace")
    assert b"\x1b" not in out and b"\x07" not in out and "\u202e".encode() not in out
    text = out.decode()
    assert "helo [bold red]x[/] \\x1b]0;pwned\\x07\\u202e␍␊" in text
    assert "Subject: \\x1b[2J[link=x]y[/link]␍␊" in text


def test_presentation_mode_shows_one_step_per_screen_with_a_large_code(home: Path) -> None:
    tutor = Tutor("learn", "1", "--present")
    tutor.expect(r"Lesson 1 · The SMTP conversation · step 1 of 11")
    tutor.expect(r"220 · DONE")
    tutor.type("", prompt=r"Enter: next step · b: back")
    tutor.type("helo a.b.c")
    tutor.expect(r"██████   ██████   ██████")  # 250, in the block font
    tutor.expect(r"250 · DONE")
    tutor.type("b", prompt=r"Enter: next step · b: back")
    tutor.expect(r"step 2 of 11")  # the previous screen again, to re-read
    tutor.type("", prompt=r"Enter: next step · b: back")
    tutor.expect(r"step 3 of 11")
    tutor.type("/quit")
    assert tutor.finish() == 1


def test_term_dumb_gets_plain_line_input_in_a_terminal(home: Path) -> None:
    tutor = Tutor("learn", "1", env={"TERM": "dumb"})
    tutor.type("helo a.b.c", prompt=r"smtp> ")
    tutor.expect(r"250 mx\.tutor\.test Hello a\.b\.c \[127\.0\.0\.1\]")
    tutor.type("/quit", prompt=r"smtp> ")
    assert tutor.finish() == 1
    assert "\x1b[" not in tutor.raw.split("Step 2/11")[1]  # no colour, no cursor movement


@pytest.mark.slow
def test_a_goal_step_is_reached_by_other_commands_than_the_canonical_ones(home: Path) -> None:
    """Lesson 6 asks for any unknown command and names 'hello' as its example: 'frobnicate'
    reaches the goal just as well, because steps are judged on what happened."""
    tutor = Tutor("learn", "6")
    tutor.type("4", prompt=r"Predict first")  # a wrong prediction, to see it corrected
    tutor.type("frobnicate now")
    tutor.expect(r"500 5\.5\.2 Command not recognized: FROBNICATE")
    tutor.expect(r"You predicted 4xx; the server answered 500 \(5xx\)")
    tutor.expect(r"✓ Done\.")
    tutor.expect(r"Step 3/")
    tutor.type("5", prompt=r"Predict first")
    tutor.type("/quit")
    assert tutor.finish() == 1
