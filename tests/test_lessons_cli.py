"""`lessons`, `lessons validate` and `progress reset` as a teacher or learner runs them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support import run_cli

LESSON_HEAD = 'format_version = 1\nid = "mine"\ntitle = "A teacher\'s lesson"\n'
CONNECT = '[[steps]]\nid = "connect"\nkind = "connect"\nexplain = "Connecting."\n'


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, stdin=stdin, columns=200)


def write_lesson(folder: Path, body: str, name: str = "01-mine.toml") -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(LESSON_HEAD + CONNECT + body)
    return path


def test_shipped_lessons_validate_and_replay() -> None:
    result = run("lessons", "validate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lessons checked and replayed: ok" in result.stdout


def test_a_counter_example_that_completes_its_step_is_caught(tmp_path: Path) -> None:
    path = write_lesson(
        tmp_path / "l",
        """
[[steps]]
id = "helo"
explain = "Say hello."
command = "helo a.b.c"
accept = ['(?i)^(helo|ehlo)\\s']
expect = [250]
counter_example = "ehlo x.y.z"
""",
    )
    result = run("lessons", "validate", str(path))
    assert result.returncode == 1
    assert (
        f"{path}:15: step 'helo': counter_example 'ehlo x.y.z' completed the step" in result.stdout
    )


def test_a_canonical_answer_the_server_refuses_is_caught(tmp_path: Path) -> None:
    path = write_lesson(
        tmp_path / "l",
        """
[[steps]]
id = "rcpt"
explain = "No MAIL first: the server will refuse this."
command = "rcpt to:<you@tutor.test>"
accept = ['(?i)^rcpt']
expect = [250]
""",
    )
    result = run("lessons", "validate", str(path))
    assert result.returncode == 1
    assert (
        "step 'rcpt': its canonical answer did not complete it (the server replied 503 5.5.1"
        in result.stdout
    )


def test_static_problems_are_listed_with_file_and_line(tmp_path: Path) -> None:
    path = write_lesson(
        tmp_path / "l",
        """
[[steps]]
id = "helo"
explain = "Say hello."
command = "quit"
accept = ['(?i)^helo', '([unclosed']
expect = [999]
""",
    )
    result = run("lessons", "validate", "--static", str(path))
    assert result.returncode == 1
    out = result.stdout
    assert f"{path}:13: accept pattern '([unclosed'" in out
    assert f"{path}:14: expect: 999 is not a reply code" in out
    assert f"{path}:12: step 'helo': its own command 'quit' does not match `accept`" in out


def test_toml_syntax_error_points_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "l" / "01-bad.toml"
    path.parent.mkdir()
    path.write_text('format_version = 1\nid = "bad"\ntitle = "x\n')
    result = run("lessons", "validate", str(path))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{path}:3: not valid TOML")


def test_a_teachers_lessons_dir_is_listed(tmp_path: Path) -> None:
    write_lesson(tmp_path / "l", "")
    result = run("--lessons-dir", str(tmp_path / "l"), "lessons", "--plain")
    assert result.returncode == 0
    assert "1. A teacher's lesson" in result.stdout
    assert "progress kept in: " in result.stdout


def test_progress_reset(tutor_home: Path) -> None:
    progress = tutor_home / "progress.json"
    progress.write_text(json.dumps({"lessons": {"conversation": {"status": "done"}}}))
    refused = run("progress", "reset")
    assert refused.returncode == 2  # a usage error, as for `mailbox clear` without --yes
    assert (
        refused.stderr.strip()
        == "smtp-tutor: not resetting all progress without confirmation: add --yes"
    )
    assert "conversation" in progress.read_text()
    done = run("progress", "reset", "1", "--yes")
    assert done.returncode == 0 and "Reset progress of lesson 1 (conversation)." in done.stdout
    assert json.loads(progress.read_text())["lessons"] == {}
    unknown = run("progress", "reset", "99", "--yes")
    assert unknown.returncode == 1 and unknown.stderr.startswith("smtp-tutor: no lesson '99'")
