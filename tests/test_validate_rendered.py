"""Lesson text rendered one way and checked as rendered: `lessons validate` and
`challenge validate` read every text the way the screen prints it, and the learner can
type what a hint offers.

Each broken lesson is a small file run through the real CLI (`lessons validate PATH`);
the message must point at the file and line of the text at fault.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from tests.support import run_cli
from tutor.ui.common.safe import lesson_markdown
from tutor.ui.common.terminal import build_console

HEAD = 'format_version = 1\nid = "mine"\ntitle = "A teacher\'s lesson"\n'
CONNECT = '[[steps]]\nid = "connect"\nkind = "connect"\nexplain = "Connecting."\n'
HELO = """
[[steps]]
id = "helo"
explain = "Say hello."
command = "helo a.b.c"
accept = ['(?i)^helo\\s']
expect = [250]
"""
MAIL = """
[[steps]]
id = "mail"
explain = "The sender."
command = "mail from:<you@tutor.test>"
accept = ['(?i)^mail\\s+from:']
expect = [250]
"""


def write(tmp_path: Path, body: str, *, head: str = HEAD, name: str = "01-mine.toml") -> Path:
    folder = tmp_path / "lessons"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(head + CONNECT + body, encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    """The line of the file holding `needle` (exactly one does)."""
    found = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    assert len(found) == 1, (needle, found)
    return found[0]


def validate(path: Path, *extra: str, what: str = "lessons") -> str:
    result = run_cli(what, "validate", *extra, str(path), columns=300)
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stdout


def printed(text: str, *, colour: bool) -> str:
    console = build_console(io.StringIO(), colour=colour, force_terminal=colour, record=True)
    console.width = 200
    console.print(lesson_markdown(text))
    return "\n".join(line.rstrip() for line in console.export_text(styles=False).splitlines())


# --- the rendering itself ------------------------------------------------------------------


@pytest.mark.parametrize("colour", [True, False])
def test_angle_brackets_are_text_never_a_link_or_a_tag(colour: bool) -> None:
    shown = printed(
        "**Hint 3/3:** Type exactly: mail from:<you@tutor.test>\n\n"
        "- Give MAIL FROM:<sender> and RCPT TO:<recipient>\n\n"
        "Inside brackets: <you@tutor.test>. A tag: <b>bold</b>.",
        colour=colour,
    )
    assert "Hint 3/3: Type exactly: mail from:<you@tutor.test>\n" in shown
    assert "MAIL FROM:<sender> and RCPT TO:<recipient>" in shown
    assert "Inside brackets: <you@tutor.test>. A tag: <b>bold</b>." in shown


def test_without_colour_a_command_is_quoted_and_an_offered_line_is_not() -> None:
    text = "Type `quit` to leave.\n\n**Hint 1/1:** Type exactly: quit"
    plain = printed(text, colour=False)
    assert 'Type "quit" to leave.' in plain
    assert plain.endswith("\nHint 1/1: Type exactly: quit")
    coloured = printed(text, colour=True)
    assert "Type quit to leave." in coloured  # colour marks the command instead
    assert "`" not in plain + coloured


def test_an_offered_line_is_shown_exactly_even_with_markdown_characters() -> None:
    gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
    for colour in (True, False):
        shown = printed(f"The lines are: Subject: *hi* / (empty) / {gtube} / .", colour=colour)
        assert f"The lines are: Subject: *hi* / (empty) / {gtube} / ." in shown


def test_a_learner_types_the_third_hint_and_gets_250(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The issue itself: lesson 1's MAIL step, /hint three times, the hint typed as shown
    (the second run resumes at the MAIL step)."""
    script = "helo a.b.c\n/hint\n/hint\n/hint\n"
    for flags, colour in ((["--plain"], False), ([], True)):
        monkeypatch.setenv("SMTP_TUTOR_HOME", str(tmp_path / f"home-{colour}"))
        if colour:
            monkeypatch.delenv("NO_COLOR", raising=False)
            monkeypatch.setenv("FORCE_COLOR", "1")
        first = run_cli("learn", "1", *flags, stdin=script + "/quit\n")
        out = re.sub(r"\x1b\[[0-9;]*m", "", first.stdout)
        offered = re.search(r"^Hint 3/3: Type exactly: (.*?) *$", out, re.MULTILINE)
        assert offered is not None, out
        assert offered.group(1) == "mail from:<you@tutor.test>"
        assert "Step 3/11" in out and "Step 3/11:" not in out  # the step's id is not shown
        typed = run_cli("learn", "1", *flags, stdin=f"{offered.group(1)}\n/quit\n")
        replies = re.sub(r"\x1b\[[0-9;]*m", "", typed.stdout)
        assert "250 2.1.0 <you@tutor.test> sender address syntactically correct" in replies


# --- lessons validate: each failure mode --------------------------------------------------


def test_a_text_that_loses_its_angle_brackets_is_caught(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HELO + 'after = "Read [the rule](<https://www.rfc-editor.org/rfc/rfc5321>) again."\n',
    )
    out = validate(path, "--static")
    line = line_of(path, "after =")
    assert (
        f"{path}:{line}: step 'helo': after: the screen loses "
        "'<https://www.rfc-editor.org/rfc/rfc5321>' (it shows 'Read the rule again.')" in out
    )


def test_literal_markdown_on_the_screen_is_caught(tmp_path: Path) -> None:
    head = HEAD + 'summary = "Send `quit` at the end."\n'
    path = write(tmp_path, HELO + 'after = "Now `quit or go on."\n', head=head)
    out = validate(path, "--static")
    summary, after = line_of(path, "summary ="), line_of(path, "after =")
    assert f"{path}:{summary}: summary is shown as written, not as Markdown" in out
    assert f"{path}:{after}: step 'helo': after: a literal ` shows on the screen" in out


def test_an_offered_line_its_step_does_not_accept_is_caught(tmp_path: Path) -> None:
    body = HELO + MAIL + 'hints = ["Type exactly: mail you@tutor.test"]\n'
    path = write(tmp_path, body)
    out = validate(path, "--static")
    line = line_of(path, "Type exactly: mail you")
    assert (
        f"{path}:{line}: step 'mail': hint 1: offers 'mail you@tutor.test', "
        "which the step's `accept` does not match" in out
    )


def test_an_offered_line_that_does_not_complete_its_step_is_caught(tmp_path: Path) -> None:
    body = HELO + MAIL + 'hints = ["Type exactly: mail from:you@tutor.test"]\n'
    path = write(tmp_path, body)
    out = validate(path)
    line = line_of(path, "Type exactly: mail from:you")
    assert (
        f"{path}:{line}: step 'mail': hint 1 offers 'mail from:you@tutor.test', which does not "
        "complete the step (the server replied 501 5.5.4" in out
    )


def test_offered_lines_are_replayed_in_the_steps_context(tmp_path: Path) -> None:
    """A goal's hint that forgets a command the goal needs (DATA) is caught by the replay."""
    body = (
        HELO
        + """
[[steps]]
id = "send"
kind = "goal"
goal = "Store a message for you."
explain = "Send yourself a message."
command = "mail from:<you@tutor.test>\\nrcpt to:<you@tutor.test>\\ndata"
lines = ["Subject: hi", "", "hello"]
hints = [
    "The lines are: mail from:<> / rcpt to:<you@tutor.test> / Subject: hi / (empty) / hello / .",
]
[[steps.checks]]
stored_in = "you"
"""
    )
    path = write(tmp_path, body)
    out = validate(path)
    line = line_of(path, "The lines are:")
    assert f"{path}:{line}: step 'send': hint 1 offers 'mail from:<> / rcpt to:<you" in out
    assert "which does not complete the step (the server replied 500 5.5.2" in out


def test_an_expect_the_canonical_reply_contradicts_is_caught(tmp_path: Path) -> None:
    """expect = [250] with a check that a 550 satisfies: the learner would read "Done." on
    a refusal, because the step completes on its checks."""
    body = (
        HELO
        + MAIL
        + """
[[steps]]
id = "rcpt"
explain = "Someone who is not here."
command = "rcpt to:<nobody@tutor.test>"
accept = ['(?i)^rcpt\\s+to:']
expect = [250]
[[steps.checks]]
recipients_refused = 1
"""
    )
    path = write(tmp_path, body)
    out = validate(path)
    line = max(n for n, text in enumerate(path.read_text().splitlines(), 1) if "expect" in text)
    assert (
        f"{path}:{line}: step 'rcpt': expect [250] disagrees with the reply its canonical "
        "answer gets ('550 5.1.1" in out
    )


def test_an_on_reply_code_that_can_never_occur_is_caught(tmp_path: Path) -> None:
    body = (
        HELO
        + MAIL
        + """[steps.on_reply]
"501" = "Angle brackets, please."
"354" = "Go on with the message."
"""
    )
    path = write(tmp_path, body)
    out = validate(path)
    line = line_of(path, '"354"')
    assert (
        f"{path}:{line}: step 'mail': on_reply '354' can never be shown: no reply to what "
        "a command step like this accepts matches it" in out
    )
    assert "'501'" not in out


@pytest.mark.parametrize(
    ("hint", "message"),
    [
        (
            "Type exactly: quit\\n\\nThen read the reply.",
            "text after the offered line ('Then read the reply.'): the offer must end it",
        ),
        ("Type exactly: `quit`", "offered line '`quit`': no quotes or backticks around"),
        ('Type exactly: \\"quit\\"', "offered line '\"quit\"': no quotes or backticks around"),
        ("Type: quit (221)", "offered line 'quit (221)': a note in it would be typed too"),
        ("Type: rset — then: quit", "offered line 'then: quit': a note in it would be typed"),
        (
            "The lines are: rset / (empty line) / quit",
            "write (empty) for an empty line, as the screen contract does",
        ),
        ("Type: quit", "Type: offers one line: write Type exactly: instead"),
        (
            "Say goodbye with QUIT.",
            "the last hint must offer what to type (Type exactly: LINE, The lines are: A / B",
        ),
    ],
)
def test_a_hint_that_breaks_the_screen_contract_is_caught(
    tmp_path: Path, hint: str, message: str
) -> None:
    body = f"""
[[steps]]
id = "quit"
explain = "Leave."
command = "quit"
accept = ['(?i)^quit\\b']
expect = [221]
hints = ["One word.", "{hint}"]
"""
    path = write(tmp_path, body)
    out = validate(path, "--static")
    line = line_of(path, '"One word.", ')
    assert f"{path}:{line}: step 'quit': hint 2" in out
    assert message in out, out


def test_a_challenge_hint_must_end_in_typeable_lines(tmp_path: Path) -> None:
    head = 'format_version = 1\nid = "mine"\ntitle = "A challenge"\n'
    body = """
[[steps]]
id = "goal"
kind = "goal"
goal = "Say goodbye."
explain = "Leave."
command = "quit"
counter_example = "noop"
hints = ["Type: quit (221)"]
[[steps.checks]]
reply = 221
"""
    path = write(tmp_path, body, head=head)
    out = validate(path, what="challenge")
    line = line_of(path, "hints =")
    assert f"{path}:{line}: step 'goal': hint 1: Type: offers one line" in out
    assert (
        f"{path}:{line}: step 'goal': hint 1 offers 'quit (221)', which does not "
        "complete the step (the server replied 501 5.5.4" in out
    )
