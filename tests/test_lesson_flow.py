"""The lesson screen's flow as the learner reads it: predictions that cannot swallow a
command, replies explained in full once and then briefly, /more, the toolbar's width."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import run_cli
from tutor.ui.line_input import toolbar_text
from tutor.ui.reply_detail import ReplyMemory, Verbosity
from tutor.wire import Reply, parse_reply_line

LESSON_3_START = ["ehlo client.example", "mail from:<you@tutor.test>"]


def learn(tmp_path: Path, number: str, lines: list[str], *options: str) -> str:
    script = tmp_path / "script.txt"
    script.write_text("\n".join([*lines, "/quit"]) + "\n", encoding="utf-8")
    result = run_cli("learn", number, "--script", str(script), "--plain", *options)
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


def reply(line: str) -> Reply:
    parsed = parse_reply_line(line)
    assert parsed is not None
    return Reply((parsed,))


# --- the prediction prompt ----------------------------------------------------------------


def test_a_command_at_the_prediction_prompt_is_carried_out(tmp_path: Path) -> None:
    out = learn(tmp_path, "3", [*LESSON_3_START, "rcpt to:<nobody@tutor.test>"])
    said = out.index("That is a command, not a prediction: prediction skipped")
    assert out.index("S: 550 5.1.1", said) > said  # and it went to the server
    assert "Your prediction" not in out  # nothing was recorded as a prediction


def test_a_slash_command_at_the_prediction_prompt_is_carried_out(tmp_path: Path) -> None:
    out = learn(tmp_path, "3", [*LESSON_3_START, "/hint"])
    assert "/hint is carried out now" in out
    assert "Hint 1/" in out


@pytest.mark.parametrize("guess", ["5", "5xx", "550"])
def test_a_prediction_is_a_class(tmp_path: Path, guess: str) -> None:
    out = learn(tmp_path, "3", [*LESSON_3_START, guess, "rcpt to:<nobody@tutor.test>"])
    assert "Your prediction was right: 5xx." in out


def test_a_prediction_that_is_no_class_is_skipped_with_a_word(tmp_path: Path) -> None:
    out = learn(tmp_path, "3", [*LESSON_3_START, "7", "rcpt to:<nobody@tutor.test>"])
    assert "A prediction is one digit, 2 to 5: skipped this time." in out
    assert "Your prediction" not in out and "You predicted" not in out


# --- full once, then brief ----------------------------------------------------------------


def test_reply_memory_full_once_per_class_and_code() -> None:
    memory = ReplyMemory()
    assert not memory.brief(reply("250 2.1.0 sender ok"))  # class 2 and 2.1.0: new
    assert not memory.brief(reply("250 2.1.5 recipient ok"))  # 2.1.5: new
    assert memory.brief(reply("250 2.1.5 recipient ok"))  # both seen
    assert not memory.brief(reply("550 5.1.1 no such user"))
    assert memory.brief(reply("550 5.1.1 other text, same code"))
    verbose = ReplyMemory(Verbosity.VERBOSE)
    verbose.brief(reply("250 2.1.5 ok"))
    assert not verbose.brief(reply("250 2.1.5 ok"))
    assert ReplyMemory(Verbosity.BRIEF).brief(reply("354 go ahead"))


RCPT_TWICE = [
    *LESSON_3_START,
    "",
    "rcpt to:<nobody@tutor.test>",
    "",
    "rcpt to:<nobody2@tutor.test>",
]
DETAIL = "The server knows the domain but not the mailbox"  # 550 5.1.1's full explanation


def test_a_code_met_before_is_explained_in_one_line_and_more_expands_it(
    tmp_path: Path,
) -> None:
    out = learn(tmp_path, "3", [*RCPT_TWICE, "/more"])
    assert out.count(DETAIL) == 2  # the first 550 5.1.1 in full, then /more
    second = out.index("S: 550 5.1.1 <nobody2@tutor.test>")
    assert "(a code you have met is explained briefly from now on" in out[second:]
    more = out.index("/more")
    assert DETAIL in out[more:]


@pytest.mark.parametrize(("option", "count"), [("--verbose", 2), ("--brief", 0)])
def test_brief_and_verbose(tmp_path: Path, option: str, count: int) -> None:
    out = learn(tmp_path, "3", RCPT_TWICE, option)
    assert out.count(DETAIL) == count
    assert "No such user: <nobody2@tutor.test>" in out  # the headline always stays


def test_brief_and_verbose_together_are_a_usage_error() -> None:
    result = run_cli("--brief", "learn", "1", "--verbose")
    assert result.returncode == 2 and "contradict" in result.stderr


# --- the toolbar --------------------------------------------------------------------------


@pytest.mark.parametrize("columns", [80, 100, 40])
def test_the_toolbar_fits_the_terminal(columns: int) -> None:
    status = (
        "greeted: EHLO a-rather-long-client-name.example · sender: <you@tutor.test> · "
        "recipients: 3 accepted, 2 refused · in DATA"
    )
    keys = "Enter: send · /hint /show /skip /back /quit"
    text = toolbar_text(status, keys, columns)
    assert len(text) < columns
    assert text.startswith("greeted: EHLO")
    assert toolbar_text("", keys, columns) == keys[: columns - 1]
