"""The lesson screen's flow as the learner reads it: predictions that cannot swallow a
command, replies explained in full once and then briefly, /more, the toolbar's width."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import SEED_LINES, reply, run_cli
from tutor.ui.common.line_input import toolbar_text
from tutor.ui.common.reply_detail import ReplyMemory, Verbosity

LESSON_3_START = ["ehlo client.example", "mail from:<you@tutor.test>"]


def learn(tmp_path: Path, number: str, lines: list[str], *options: str) -> str:
    script = tmp_path / "script.txt"
    script.write_text("\n".join([*lines, "/quit"]) + "\n", encoding="utf-8")
    result = run_cli("learn", number, "--script", str(script), "--plain", *options)
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


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


# --- resume, replay, skip -----------------------------------------------------------------

SEED = SEED_LINES


def progress_of(home: Path, lesson_id: str) -> dict[str, object]:
    import json

    entry = json.loads((home / "progress.json").read_text(encoding="utf-8"))["lessons"]
    return dict(entry[lesson_id])


def test_resume_replays_the_learners_own_lines_visibly(tmp_path: Path, tutor_home: Path) -> None:
    learn(tmp_path, "1", ["HELO my.own.name", "mail from:<me@own.example>"])
    assert progress_of(tutor_home, "conversation")["session"] == [
        "HELO my.own.name",
        "mail from:<me@own.example>",
    ]
    out = learn(tmp_path, "1", [])
    replay = out[out.index("Picking up where you left off") :]
    assert "replays your own lines from last time" in replay
    assert "↻ HELO my.own.name   (replayed: your line from last time)" in replay
    assert "250 2.1.0 <me@own.example>" in replay
    assert "Step 4/" in replay  # and the lesson goes on at RCPT


def test_a_resume_after_a_message_does_not_store_it_again(tmp_path: Path, tutor_home: Path) -> None:
    learn(tmp_path, "1", SEED)  # quits at the second message's steps
    assert progress_of(tutor_home, "conversation")["session"] == ["helo a.b.c"]
    out = learn(tmp_path, "1", [])
    assert "↻ helo a.b.c   (replayed" in out
    assert "data> " not in out[out.index("Picking up") :]
    assert len(list((tutor_home / "Maildir" / "you" / "new").iterdir())) == 1


def test_replaying_a_finished_lesson_keeps_it_done(tmp_path: Path, tutor_home: Path) -> None:
    learn(tmp_path, "1", [*SEED, "/skip", "quit"])
    assert progress_of(tutor_home, "conversation")["status"] == "done"
    learn(tmp_path, "1", ["helo a.b.c"])  # play it again, stop half way
    assert progress_of(tutor_home, "conversation")["status"] == "done"


def test_skip_inside_data_ends_the_message_and_says_so(tmp_path: Path, tutor_home: Path) -> None:
    lines = [
        *SEED,
        "mail from:<you@tutor.test>",
        "rcpt to:<alice@tutor.test>",
        "data",
        "Subject: half",
        "/skip",
        "quit",
    ]
    out = learn(tmp_path, "1", lines)
    said = out.index("only a line with a lone dot ends it")
    assert "data> .   (typed by the tutor)" in out[said:]
    assert "C: .␍␊" in out[said:]
    assert "Not there yet" not in out[said:]
    assert "S: 221" in out[said:]  # quit went out as a command, not as message text
    assert len(list((tutor_home / "Maildir" / "alice" / "new").iterdir())) == 1


def test_the_lone_dot_is_shown_as_bytes(tmp_path: Path) -> None:
    out = learn(tmp_path, "1", SEED)
    assert "data> .\n  C: .␍␊\n  S: 250 2.0.0 OK" in out


# --- a bare LF, sent on purpose -----------------------------------------------------------

BARE_LF_MESSAGE = [
    "mail from:<bugs@looney.example>",
    "rcpt to:<you@tutor.test>",
    "data",
    "Subject: lf",
    "/lf .",  # LF . LF: message text, not the end
    ".",  # LF . CRLF: still text
    ".",  # CRLF . CRLF: the end
]


def test_lf_in_a_lesson_shows_what_a_bare_lf_does(tmp_path: Path, tutor_home: Path) -> None:
    out = learn(tmp_path, "1", ["/lf helo a.b.c", *BARE_LF_MESSAGE])
    assert "C: helo a.b.c␊\n" in out and "S: 250 mx.tutor.test Hello a.b.c" in out
    assert "That line ended in LF alone." in out
    assert "C: .␊" in out and "a dot on a line ended by a bare LF is message text" in out
    assert "that dot did not end the message" in out
    assert out.count("S: 250 2.0.0 OK") == 1
    stored = next((tutor_home / "Maildir" / "you" / "new").iterdir()).read_bytes()
    # The server reads lines up to CRLF: ".<LF>.<CRLF>" is one line of text, whose first
    # dot goes as any leading dot does (RFC 5321 §4.5.2); the second dot stays.
    assert stored.endswith(b"Subject: lf\n\n.\n")


def test_lf_in_the_sandbox(tmp_path: Path) -> None:
    lines = ["/lf ehlo a.b.c", *BARE_LF_MESSAGE, "quit"]
    result = run_cli("sandbox", "--plain", stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "C: ehlo a.b.c␊" in out and "C: .␊" in out
    assert "that dot did not end the message" in out
    assert out.count("S: 250 2.0.0 OK") == 1


# --- the bounce lesson 5 talks about, on screen -------------------------------------------


def test_lesson_5_shows_the_bounce_it_talks_about() -> None:
    result = run_cli("demo", "5", "--delay", "0", "--plain")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    shown = out.index("The bounce, as stored in captured-relay/")
    bounce = " ".join(out[shown : shown + 2000].split())  # padded to the width: fold it
    assert "To: <victim@innocent.example>" in bounce  # MAIL FROM, not From:
    assert "failed: nobody@nowhere.invalid Status: 5.1.2" in bounce


def test_read_bounce_reads_what_build_dsn_writes() -> None:
    from tutor.server.dsn import Failure, build_dsn
    from tutor.server.persona import Persona
    from tutor.smtp.dsnread import read_bounce

    raw = build_dsn(
        Persona(),
        original_sender="bugs@looney.example",
        original_queue_id="ABC123",
        original_content=b"Subject: hi\r\n\r\nbody\r\n",
        arrival=0.0,
        failures=[
            Failure("a@x.invalid", "5.1.2", "550 5.1.2 no such domain"),
            Failure("b@y.invalid", "5.1.10", "556 5.1.10 null MX"),
        ],
    )
    summary = read_bounce(raw)
    assert summary.to == "<bugs@looney.example>"
    assert [(r.recipient, r.status) for r in summary.recipients] == [
        ("a@x.invalid", "5.1.2"),
        ("b@y.invalid", "5.1.10"),
    ]
    assert summary.recipients[1].diagnostic.endswith("556 5.1.10 null MX")


# --- small ones ---------------------------------------------------------------------------


def test_an_empty_line_gets_its_own_explanation() -> None:
    from tutor.explain.annotate import annotate
    from tutor.smtp.session_state import SessionState

    state = SessionState()
    note = annotate("", reply("500 5.5.2 Error: bad syntax"), state)
    assert note.headline == "An empty line: no command at all"
    assert "Inside DATA an empty line is message text" in note.detail
    assert annotate("FOO", reply("500 5.5.2 unknown"), state).headline.startswith(
        "Command not recognised"
    )


@pytest.mark.parametrize("typed", ["ABC123", "id=ABC123", "`id=ABC123`", " abc123 ", "<ABC123>"])
def test_a_quiz_answer_as_shown_on_screen(typed: str) -> None:
    from tutor.engine.questions import is_right

    assert is_right(typed, "ABC123")
    assert not is_right("id=ABC124", "ABC123")


def test_quit_at_a_question_ends_the_questions(tmp_path: Path, tutor_home: Path) -> None:
    from tutor.engine.answers import canonical
    from tutor.engine.loader import load_all

    lesson = load_all()[5]  # lesson 6 ends with questions
    lines: list[str] = []
    for step in lesson.steps:
        if step.predict:
            lines.append("")
        answer = canonical(step)
        if answer.action in ("advance", "library", "pipeline"):
            lines.append("")
        lines += list(answer.lines) if answer.action == "lines" else []
    out = learn(tmp_path, "6", [*lines, "/quit"])
    assert "Questions about your own session" in out
    assert "Questions left for another time." in out
    assert progress_of(tutor_home, lesson.id)["status"] == "done"


def test_the_sequence_diagram_shows_first_lines_reconnects_and_tls() -> None:
    from tutor.smtp.events import Exchange
    from tutor.ui.common.lesson_view import sequence_diagram

    ehlo_reply = ("250-mx.tutor.test Hello a", "250-PIPELINING", "250 STARTTLS")
    exchanges = [
        Exchange(1, "greeting", b"", ("220 mx.tutor.test ESMTP ready",)),
        Exchange(1, "command", b"ehlo a\r\n", ehlo_reply),
        Exchange(1, "command", b"starttls\r\n", ("220 2.0.0 Ready to start TLS",)),
        Exchange(1, "command", b"ehlo a\r\n", ehlo_reply, tls=True),
        Exchange(2, "greeting", b"", ("220 mx.tutor.test ESMTP ready",)),
        Exchange(2, "command", b"quit\r\n", ("221 2.0.0 bye",)),
    ]
    text = sequence_diagram(exchanges, plain=True).plain
    lines = text.splitlines()
    assert any("250-mx.tutor.test Hello a (+2 lines)" in line for line in lines)
    assert "250 STARTTLS" not in text  # the first line names the reply, not the last
    tls = next(i for i, line in enumerate(lines) if "TLS handshake" in line)
    assert "starttls" in lines[tls - 2] and "ehlo a" in lines[tls + 1]
    new = next(i for i, line in enumerate(lines) if "a new connection" in line)
    assert "220 mx.tutor.test" in lines[new + 1]
    assert all(len(line) == len(lines[1]) for line in lines[1:])  # one width at 76 columns


def test_checks_never_turn_an_unexpected_reply_into_done(tmp_path: Path) -> None:
    """expect = [250] with a check a 550 satisfies: the learner must not read "Done." on
    the refusal (validate reports such a lesson too)."""
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    (lessons / "01-mine.toml").write_text(
        """format_version = 1
id = "mine"
title = "Mine"

[[steps]]
id = "helo"
explain = "Greet."
command = "helo a.b.c"
accept = ['(?i)^helo']
expect = [250]

[[steps]]
id = "mail"
explain = "Sender."
command = "mail from:<you@tutor.test>"
accept = ['(?i)^mail']
expect = [250]

[[steps]]
id = "rcpt"
explain = "Someone who is here."
command = "rcpt to:<you@tutor.test>"
accept = ['(?i)^rcpt\\s+to:']
expect = [250]
[[steps.checks]]
recipients_refused = 1
""",
        encoding="utf-8",
    )
    script = tmp_path / "script.txt"
    lines = ["helo a.b.c", "mail from:<you@tutor.test>", "rcpt to:<nobody@tutor.test>", "/quit"]
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli(
        "--lessons-dir", str(lessons), "learn", "1", "--script", str(script), "--plain"
    )
    refused = result.stdout[result.stdout.index("S: 550 5.1.1") :]
    assert "Done." not in refused
    assert result.returncode == 1  # left unfinished


# --- text that follows the facts ----------------------------------------------------------


def test_no_claim_about_a_to_line_the_message_does_not_have(tmp_path: Path) -> None:
    without_to = [line for line in SEED if not line.startswith("To:")]
    out = learn(tmp_path, "1", without_to)
    after = out[out.index("S: 250 2.0.0 OK") :]
    assert "Daffy Duck" not in after
    assert "RCPT TO:<you@tutor.test> | (none) | only in the envelope" in after


def test_the_null_sender_is_never_said_to_get_a_bounce(tmp_path: Path) -> None:
    lines = ["helo a.b.c", "mail from:<>", "rcpt to:<you@tutor.test>", "data"]
    out = learn(tmp_path, "1", [*lines, "From: Bugs Bunny <bugs@looney.example>", "", "hi", "."])
    after = out[out.index("S: 250 2.0.0 OK") :]
    assert "no bounce is sent at all" in after
    assert "a bounce would go to MAIL FROM" not in after


# --- AUTH LOGIN, coached ------------------------------------------------------------------

AUTH_LOGIN = [
    "ehlo client.example",
    "",
    "auth plain x",
    "starttls",
    "ehlo client.example",
    "",
    "auth plain AHlvdQB3cm9uZw==",
    "auth login",
    "eW91",
    "dHV0b3ItcGFzc3dvcmQ=",
]


def test_auth_login_is_a_coached_path(tmp_path: Path) -> None:
    out = learn(tmp_path, "11", AUTH_LOGIN)
    login = out[out.index("C: [TLS] auth login") :]
    login = login[: login.index("Step 8/")]
    assert "refused" not in login and "not what this step asks for" not in login
    asked_user = login.index("the server asks for 'Username:'")
    asked_password = login.index("the server asks for 'Password:'")
    user_advice = login.index("printf '%s' 'you' | base64 gives eW91")
    password_advice = login.index(
        "printf '%s' 'tutor-password' | base64 gives dHV0b3ItcGFzc3dvcmQ="
    )
    assert asked_user < user_advice < asked_password < password_advice
    assert "Done." in login[login.index("S: [TLS] 235") :]


def test_a_goal_reached_in_several_commands_is_on_the_way_not_a_failure(tmp_path: Path) -> None:
    out = learn(tmp_path, "7", ["ehlo client.example", "mail from:<you@tutor.test>"])
    after_mail = out[out.index("S: 250 2.1.0") :]
    assert "On the way; the step still needs: no 354 reply yet." in after_mail
    assert "Not there yet" not in out
