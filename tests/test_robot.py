"""The learner robot (tutor/robot): it reads the screen contract and types only what the
hints offer. Fast: the screen reading and its decisions, fed through the real terminal
emulator. Slow: every lesson and every challenge, with colour and with --plain."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pyte
import pytest

from tests.support import run_cli
from tutor.robot import Course, Robot
from tutor.robot.learner import ANSWER, PREDICTION, Failure, Plan
from tutor.robot.screen import Reading, offered_lines, read
from tutor.robot.terminal import _Screen

ROOT = Path(__file__).resolve().parent.parent
LESSONS = len(list((ROOT / "lessons").glob("*.toml")))
CHALLENGES = len(list((ROOT / "challenges").glob("*.toml")))


def emulate(output: str, rows: int = 12, columns: int = 60) -> Reading:
    """What the robot reads after a program wrote `output` to a rows x columns terminal."""
    screen = _Screen(columns, rows)
    pyte.ByteStream(screen).feed(output.replace("\n", "\r\n").encode())
    return read(screen.scrollback, list(screen.display), screen.cursor.y, screen.cursor.x)


# --- reading the contract ---------------------------------------------------------------------


def test_each_way_of_offering_lines() -> None:
    assert offered_lines("Type exactly: mail from:<you@tutor.test>") == (
        "mail from:<you@tutor.test>",
    )
    assert offered_lines("The lines are: Subject: hi / (empty) / body / .") == (
        "Subject: hi",
        "",
        "body",
        ".",
    )
    assert offered_lines("Type: rset — quit") == ("rset", "quit")
    assert offered_lines("The command is RCPT TO: and an address.") is None


def test_a_line_is_taken_verbatim_notes_and_all() -> None:
    """Whatever follows `Type exactly:` is the line: a note after it would be typed too."""
    assert offered_lines("Type exactly: mail from:<> (the null sender)") == (
        "mail from:<> (the null sender)",
    )


def test_the_step_its_hints_and_the_prompt_are_read_off_a_coloured_screen() -> None:
    reading = emulate(
        "\x1b[34m╭─\x1b[1;34m Step 2/11: helo \x1b[0m\x1b[34m──╮\x1b[0m\n"
        "smtp> /hint\n"
        "\x1b[1mHint 1/2:\x1b[0m Greet the server first.\n"
        "smtp> /hint\n"
        "\x1b[1mHint 2/2:\x1b[0m Type exactly: helo a.b.c\n"
        "smtp> "
    )
    assert reading.prompt == "smtp"
    assert reading.step == "Step 2/11"
    assert [(h.number, h.offer) for h in reading.hints] == [(1, None), (2, ("helo a.b.c",))]


def test_a_hint_wrapped_by_the_terminal_is_joined_with_one_space() -> None:
    reading = emulate(
        "Step 6/10\n"
        "Hint 2/2: The lines are: From: The Boss <boss@bigcorp.example> / To: Bob\n"
        "<bob@tutor.test> / (empty) / hi / .\n"
        "data> ",
        columns=80,
    )
    assert reading.hints[-1].offer == (
        "From: The Boss <boss@bigcorp.example>",
        "To: Bob <bob@tutor.test>",
        "",
        "hi",
        ".",
    )


def test_hints_of_an_earlier_step_do_not_count() -> None:
    reading = emulate(
        "Step 1/3\nHint 1/1: Type exactly: noop\nsmtp> noop\nStep 2/3\nsmtp> ", rows=4
    )
    assert reading.step == "Step 2/3"
    assert reading.hints == ()


def test_lines_that_scrolled_away_are_still_read() -> None:
    filler = "".join(f"reply line {n}\n" for n in range(30))
    reading = emulate(f"Step 3/9\n{filler}Hint 1/1: Type exactly: quit\nsmtp> ", rows=5)
    assert reading.step == "Step 3/9"
    assert reading.hints[-1].offer == ("quit",)


def test_the_toolbar_below_the_prompt_is_not_read() -> None:
    reading = emulate(
        "Step 2/3\nsmtp> \n\x1b[7mStep 9/9 · Hint 1/1: Type exactly: quit\x1b[0m\x1b[A\r\x1b[6C"
    )
    assert (reading.prompt, reading.step, reading.hints) == ("smtp", "Step 2/3", ())


def test_no_prompt_while_the_tutor_is_still_busy() -> None:
    assert emulate("Step 1/2\nsmtp> helo a.b.c\n  you → helo a.b.c").prompt == ""
    assert emulate("Step 1/2\nsmtp> helo").prompt == ""


@pytest.mark.parametrize(
    ("output", "prompt"),
    [
        ("data> ", "data"),
        ("answer> ", "answer"),
        ("Predict first: which class of reply will this get? (2, 3, 4 or 5) > ", "predict"),
        ("Press Enter to continue (/quit to stop) > ", "enter"),
    ],
)
def test_every_prompt_is_recognised(output: str, prompt: str) -> None:
    assert emulate(f"Step 1/2\n{output}", columns=100).prompt == prompt


def test_the_end_and_the_tutors_own_typing_are_noticed() -> None:
    assert emulate("╭─ End of lesson 3: Many recipients ─╮\n").ended == "End of lesson 3"
    assert emulate("smtp> helo a.b.c  (typed by the tutor)\nsmtp> ").shown_by_tutor


# --- what the robot types ---------------------------------------------------------------------


def decisions(plan: Plan, output: str) -> str | Failure:
    return plan.decide(emulate(output, rows=40, columns=100))


def test_it_asks_for_hints_until_one_offers_a_line_then_types_it() -> None:
    plan = Plan()
    screen = "Step 2/11\nsmtp> "
    assert decisions(plan, screen) == "/hint"
    screen += "/hint\nHint 1/2: Any name will do.\nsmtp> "
    assert decisions(plan, screen) == "/hint"
    screen += "/hint\nHint 2/2: Type exactly: helo a.b.c\nsmtp> "
    assert decisions(plan, screen) == "helo a.b.c"
    screen += "helo a.b.c\n  ← server 501 Syntax\nsmtp> "  # the same step came back
    assert decisions(plan, screen) == "/hint"
    screen += "/hint\nNo more hints: /show makes the tutor type the answer.\nsmtp> "
    failure = decisions(plan, screen)
    assert isinstance(failure, Failure)
    assert "Hint 2/2: Type exactly: helo a.b.c" in failure.reason
    assert "'helo a.b.c'" in failure.reason


def test_several_lines_are_typed_one_per_prompt_until_the_step_changes() -> None:
    plan = Plan()
    screen = "Step 5/9\nHint 1/1: The lines are: Subject: hi / (empty) / body / .\ndata> "
    assert decisions(plan, screen) == "Subject: hi"
    screen += "Subject: hi\ndata> "
    assert decisions(plan, screen) == ""
    screen += "\nStep 6/9\nsmtp> "  # done early: the rest is not typed
    assert decisions(plan, screen) == "/hint"


def test_the_other_prompts_get_neutral_answers() -> None:
    assert decisions(Plan(), "Step 1/2\nPredict first: 2, 3, 4 or 5? > ") == PREDICTION
    assert decisions(Plan(), "Step 1/2\nPress Enter to continue (/quit to stop) > ") == ""
    assert decisions(Plan(), "Questions\n1. What queue id?\nanswer> ") == ANSWER


def test_hints_that_run_out_without_an_offer_fail_with_the_last_hint() -> None:
    failure = decisions(
        Plan(), "Step 4/10\nHint 1/1: Think about the envelope.\nNo more hints.\nsmtp> "
    )
    assert isinstance(failure, Failure)
    assert "none offered a line to type" in failure.reason
    assert "Think about the envelope." in failure.reason


def test_a_line_typed_by_the_tutor_is_a_failure() -> None:
    failure = decisions(Plan(), "Step 2/3\nsmtp> quit  (typed by the tutor)\nsmtp> ")
    assert isinstance(failure, Failure)


# --- the robot against the real program ---------------------------------------------------------

TEACHER_LESSON = """\
format_version = 1
id = "tiny"
title = "A tiny lesson"
summary = "Greet, then leave."

[[steps]]
id = "connect"
kind = "connect"
explain = "The tutor connects."

[[steps]]
id = "helo"
explain = "Introduce yourself."
command = "helo a.b.c"
accept = ['(?i)^(helo|ehlo)\\s+\\S+']
expect = [250]
predict = true
hints = ["A greeting and a name.", "Type exactly: {helo}"]

[[steps]]
id = "read"
kind = "read"
explain = "That was all."
"""


def teacher_folder(tmp_path: Path, helo_hint: str) -> Path:
    folder = tmp_path / "lessons"
    folder.mkdir(parents=True)
    (folder / "01-tiny.toml").write_text(TEACHER_LESSON.replace("{helo}", helo_hint))
    return folder


@pytest.mark.posix
@pytest.mark.slow  # a whole lesson played twice through a pty: the fast tier's longest test
def test_a_teachers_lesson_passes_and_a_broken_hint_is_reported(tmp_path: Path) -> None:
    good = teacher_folder(tmp_path / "good", "helo a.b.c")
    result = run_cli("--lessons-dir", str(good), "lessons", "validate", "--follow-hints")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lesson 1 colour: ok" in result.stdout + result.stderr
    assert "lesson 1 plain: ok" in result.stdout + result.stderr

    broken = teacher_folder(tmp_path / "broken", "helo")  # 501: needs a name
    result = run_cli("--lessons-dir", str(broken), "lessons", "validate", "--follow-hints", "1")
    assert result.returncode == 1
    assert (
        "lesson 1 plain: FAILED at Step 2/3: the hints ran out; from 'Hint 2/2: Type exactly: "
        "helo' the robot typed 'helo' and the step did not complete"
    ) in result.stdout + result.stderr
    assert "── lesson 1 colour, the last screen ──" in result.stdout


def test_follow_hints_takes_numbers() -> None:
    result = run_cli("lessons", "validate", "--follow-hints", "lessons/")
    assert result.returncode == 2
    assert "--follow-hints takes lesson numbers" in result.stderr
    result = run_cli("challenge", "validate", "--follow-hints", "99")
    assert result.returncode == 1
    assert "no challenge 99" in result.stderr


def test_without_a_pseudo_terminal_it_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on Windows: one line, exit 1."""
    import os

    monkeypatch.delattr(os, "openpty", raising=False)
    result = run_cli("lessons", "validate", "--follow-hints")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "smtp-tutor: --follow-hints needs a pseudo-terminal, which this system lacks"
    )


@pytest.mark.slow
@pytest.mark.posix
@pytest.mark.parametrize("plain", [False, True], ids=["colour", "plain"])
@pytest.mark.parametrize(
    ("kind", "number"),
    [("lesson", n) for n in range(1, LESSONS + 1)]
    + [("challenge", n) for n in range(1, CHALLENGES + 1)],
)
def test_the_robot_completes_it_following_the_hints(kind: str, number: int, plain: bool) -> None:
    outcome = Robot(Course(kind), number, plain=plain).run()
    assert outcome.ok, outcome.line() + "\n" + textwrap.indent("\n".join(outcome.screen), "    ")
