"""The command line's grammar and Environment: shared options anywhere, one colour rule,
real subcommands for mailbox and challenge, exit statuses decided in one place."""

from __future__ import annotations

import io
import smtplib
from pathlib import Path

import pytest

from tests.pty_session import PtySession
from tests.support import run_cli
from tutor.cli import hoist_global_options
from tutor.env import Environment, ExitStatus, wants_colour
from tutor.server.runner import TeachingServer

ESC = "\x1b["


# --- shared options before or after the command ------------------------------------------


@pytest.mark.parametrize(
    ("typed", "parsed"),
    [
        (["lessons", "--plain"], ["--plain", "lessons"]),
        (["--plain", "lessons"], ["--plain", "lessons"]),
        (
            ["lessons", "validate", "--lessons-dir", "mine", "--debug"],
            ["--lessons-dir", "mine", "--debug", "lessons", "validate"],
        ),
        (["learn", "1", "--lessons-dir=mine"], ["--lessons-dir=mine", "learn", "1"]),
        (["explain", "--", "--plain"], ["explain", "--", "--plain"]),  # after --: an argument
        (["learn", "--lessons-dir"], ["learn", "--lessons-dir"]),  # no value: left to the parser
    ],
)
def test_shared_options_move_to_the_front(typed: list[str], parsed: list[str]) -> None:
    assert hoist_global_options(typed) == parsed


def test_lessons_dir_after_the_subcommand_is_used(tmp_path: Path) -> None:
    lesson = (Path(__file__).parent.parent / "lessons").glob("01-*.toml")
    (tmp_path / "01-mine.toml").write_bytes(next(lesson).read_bytes())
    result = run_cli("lessons", "--lessons-dir", str(tmp_path), "--plain")
    assert result.returncode == 0, result.stderr
    assert f"lessons from: {tmp_path}" in result.stdout
    assert "2." not in result.stdout  # only the one lesson of that folder


# --- one colour rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plain", "environ", "isatty", "colour"),
    [
        (False, {}, True, True),
        (False, {}, False, False),
        (True, {}, True, False),
        (False, {"NO_COLOR": "1"}, True, False),
        (False, {"NO_COLOR": ""}, True, True),  # no-color.org: set *and not empty*
        (False, {"FORCE_COLOR": "1"}, False, True),
        (False, {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False, False),
        (True, {"FORCE_COLOR": "1"}, False, False),
        (False, {"TERM": "dumb"}, True, False),
    ],
)
def test_the_colour_rule(plain: bool, environ: dict[str, str], isatty: bool, colour: bool) -> None:
    assert wants_colour(plain=plain, environ=environ, isatty=isatty) is colour


def test_force_color_colours_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")
    coloured = run_cli("lessons")
    assert coloured.returncode == 0 and ESC in coloured.stdout
    monkeypatch.delenv("FORCE_COLOR")
    assert ESC not in run_cli("lessons").stdout  # a pipe without FORCE_COLOR: plain text


def test_an_environment_builds_its_terminal_from_its_own_streams() -> None:
    out, err = io.StringIO(), io.StringIO()
    env = Environment(plain=True, stdout=out, stderr=err, environ={"FORCE_COLOR": "1"})
    env.terminal.out.print("hello")
    assert out.getvalue() == "hello\n" and ESC not in out.getvalue()
    assert not env.terminal.interactive


@pytest.mark.posix
@pytest.mark.parametrize("order", [["--plain", "lessons"], ["lessons", "--plain"]])
def test_plain_on_a_terminal_writes_no_escape_codes(order: list[str]) -> None:
    import os

    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    environment["TERM"] = "xterm-256color"
    terminal = PtySession(*order, environment=environment)
    assert terminal.finish() == 0
    assert "The SMTP conversation" in terminal.screen()
    assert ESC not in terminal.raw


# --- mailbox: list, show, clear -----------------------------------------------------------


def deliver(server: TeachingServer, *recipients: str) -> None:
    host, port = server.address
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.sendmail(
            "bugs@looney.example",
            list(recipients),
            b"From: Bugs Bunny <bugs@looney.example>\r\nSubject: carrots\r\n\r\nHi!\r\n",
        )


def test_mailbox_show_and_clear_with_maildir(server: TeachingServer) -> None:
    deliver(server, "you@tutor.test", "alice@tutor.test")
    root = str(server.maildir)

    listed = run_cli("mailbox", "--maildir", root)
    assert listed.returncode == 0 and "you" in listed.stdout and "alice" in listed.stdout
    one = run_cli("mailbox", "you", "--maildir", root)
    assert one.returncode == 0 and "alice" not in one.stdout

    shown = run_cli("mailbox", "show", "you/1", "--maildir", root, "--plain")
    assert shown.returncode == 0, shown.stderr
    assert "bugs@looney.example" in shown.stdout and "carrots" in shown.stdout
    raw = run_cli("mailbox", "show", "you/1", "--raw", "--maildir", root)
    assert raw.stdout.startswith("Return-Path: <bugs@looney.example>")

    cleared = run_cli("mailbox", "clear", "you", "--yes", "--maildir", root)
    assert cleared.returncode == 0
    assert "Deleted 1 message from mailbox you" in cleared.stdout
    assert not list((server.maildir / "you" / "new").iterdir())
    assert list((server.maildir / "alice" / "new").iterdir())  # the others stay

    everything = run_cli("mailbox", "clear", "--all", "--yes", "--maildir", root)
    assert everything.returncode == 0
    assert "Deleted 1 message from every mailbox" in everything.stdout
    assert not list((server.maildir / "alice" / "new").iterdir())
    assert (server.maildir / "alice" / "new").is_dir()  # the folders stay for the server


def test_mailbox_clear_refuses_without_yes_and_without_a_terminal(
    server: TeachingServer,
) -> None:
    deliver(server, "you@tutor.test")
    root = str(server.maildir)
    refused = run_cli("mailbox", "clear", "--all", "--maildir", root)
    assert refused.returncode == ExitStatus.USAGE
    assert refused.stderr.strip() == (
        "smtp-tutor: not deleting 1 message without confirmation: add --yes"
    )
    assert list((server.maildir / "you" / "new").iterdir())

    both = run_cli("mailbox", "clear", "you", "--all", "--yes", "--maildir", root)
    assert both.returncode == ExitStatus.USAGE and "not both" in both.stderr
    neither = run_cli("mailbox", "clear", "--yes", "--maildir", root)
    assert neither.returncode == ExitStatus.USAGE
    unknown = run_cli("mailbox", "clear", "carol", "--yes", "--maildir", root)
    assert unknown.returncode == ExitStatus.USER_ERROR
    assert unknown.stderr.startswith("smtp-tutor: no mailbox 'carol'")


@pytest.mark.parametrize(
    "command",
    [
        "mailbox show",
        "mailbox clear",
        "mailbox list",
        "challenge play",
        "challenge validate",
        "challenge list",
    ],
)
def test_every_subcommand_has_its_own_help(command: str) -> None:
    result = run_cli(*command.split(), "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"Usage: smtp-tutor {command} ")
    assert "--plain" in result.stdout  # the shared options are named in every help


def test_challenge_shortcut_and_subcommand_agree() -> None:
    listed = run_cli("challenge")
    assert listed.returncode == 0 and "solved." in listed.stdout
    assert run_cli("challenge", "list").stdout == listed.stdout
    unknown = run_cli("challenge", "play", "99")
    assert unknown.returncode == 1 and "no challenge '99'" in unknown.stderr
    assert run_cli("challenge", "99").stderr == unknown.stderr


# --- exit statuses ------------------------------------------------------------------------


def test_a_bug_is_one_line_and_exit_70(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("tutor.ui.reference.codes_view.codes_table", broken)
    result = run_cli("codes")
    assert result.returncode == ExitStatus.BUG == 70
    assert result.stderr == (
        "smtp-tutor: internal error: RuntimeError: boom "
        "(run again with --debug for the traceback)\n"
    )
    with pytest.raises(RuntimeError, match="boom"):
        run_cli("codes", "--debug")


def test_ctrl_c_is_exit_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("tutor.ui.reference.codes_view.codes_table", interrupted)
    result = run_cli("codes")
    assert result.returncode == ExitStatus.INTERRUPTED == 130
    assert result.stderr == "smtp-tutor: interrupted\n"


def test_usage_errors_exit_2() -> None:
    assert run_cli("no-such-command").returncode == ExitStatus.USAGE
    assert run_cli("mailbox", "show").returncode == ExitStatus.USAGE


# --- completion ---------------------------------------------------------------------------


def complete(words: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("_SMTP_TUTOR_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", str(len(words.split(" ")) - 1))
    return run_cli().stdout.split()


def test_completion_offers_subcommands_challenges_and_mailboxes(
    server: TeachingServer, monkeypatch: pytest.MonkeyPatch, tutor_home: Path
) -> None:
    assert complete("smtp-tutor mailbox s", monkeypatch) == ["show"]
    assert complete("smtp-tutor challenge p", monkeypatch) == ["play"]
    assert "backscatter" in complete("smtp-tutor challenge play ", monkeypatch)
    deliver(server, "you@tutor.test")
    (tutor_home / "Maildir").symlink_to(server.maildir)
    assert complete("smtp-tutor mailbox clear y", monkeypatch) == ["you"]


def test_progress_alone_shows_progress() -> None:
    result = run_cli("progress", "--plain")
    assert result.returncode == 0
    assert "The SMTP conversation" in result.stdout and "progress kept in:" in result.stdout
