"""What `learn N` does before its first prompt, and what it leaves for later.

docs/performance.md ("The first `learn` prompt") says why: the lesson named by its number
is the only file parsed, and what the first step does not show is imported when it is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from tutor.cli import app, app_for
from tutor.engine.loader import LessonError, find_by_ref, load_all, load_ref
from tutor.engine.progress import Progress, Status
from tutor.errors import UserError

LESSON = """\
format_version = 1
id = "{id}"
title = "Lesson {id}"

[[steps]]
id = "connect"
kind = "connect"
explain = "The tutor connects."
"""


def folder_of(tmp_path: Path, *texts: str) -> Path:
    folder = tmp_path / "lessons"
    folder.mkdir()
    for number, text in enumerate(texts, start=1):
        (folder / f"{number:02d}-lesson.toml").write_text(text, encoding="utf-8")
    return folder


def test_every_shipped_lesson_by_number_or_id_is_the_one_find_by_ref_gives() -> None:
    lessons = load_all()
    for lesson in lessons:
        for ref in (str(lesson.number), lesson.id):
            assert load_ref(None, ref) == (find_by_ref(lessons, ref), len(lessons))


def test_a_number_reads_its_own_file_only(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, LESSON.format(id="one"), "not = [valid TOML")
    lesson, total = load_ref(folder, "1")
    assert (lesson.id, lesson.number, total) == ("one", 1, 2)
    with pytest.raises(LessonError, match=r"02-lesson\.toml:1: not valid TOML"):
        load_ref(folder, "2")
    with pytest.raises(LessonError, match=r"02-lesson\.toml:1"):  # an id needs every file
        load_ref(folder, "one")


@pytest.mark.parametrize("ref", ["3", "01", "0", "three"])
def test_a_ref_that_is_no_position_reads_them_all_and_names_them(tmp_path: Path, ref: str) -> None:
    folder = folder_of(tmp_path, LESSON.format(id="one"), LESSON.format(id="two"))
    with pytest.raises(UserError) as raised:
        load_ref(folder, ref)
    assert str(raised.value) == f"no lesson {ref!r}; there are: 1 (one), 2 (two)"


# Imported only when a lesson stores a message, bounces one, uses a client library,
# authenticates or shows the simulated DNS.
NOT_BEFORE_NEEDED = (
    "mailbox",
    "smtplib",
    "email.policy",
    "tutor.maildir.store",
    "tutor.maildir.mailview",
    "tutor.maildir.session_store",
    "tutor.server.bounce",
    "tutor.smtp.authcodec",
    "tutor.smtp.dsnread",
    "tutor.smtp.envelope",
    "tutor.smtp.headers",
    "tutor.ui.common.message_view",
    "tutor.ui.lesson.bounce_view",
    "tutor.world.dnsdata",
)


def test_the_lesson_screens_leave_the_stored_mail_views_for_later() -> None:
    """A fresh interpreter: the tests' own imports would hide what the screens import."""
    imported = subprocess.run(
        [sys.executable, "-c", IMPORTED, "tutor.ui.lesson.learn_app"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "tutor.ui.lesson.lesson_app" in imported
    assert sorted(set(NOT_BEFORE_NEEDED) & set(imported)) == []


IMPORTED = "import importlib, sys; importlib.import_module(sys.argv[1]); print(*sys.modules)"


@pytest.mark.parametrize(
    ("words", "names"),
    [
        (["learn", "1"], ["learn"]),
        (["--plain", "learn", "1", "--theme", "light"], ["learn"]),
        (["--theme", "light", "demo", "2"], ["demo"]),
        (["--lessons-dir=mine", "lessons", "validate"], ["lessons"]),
        (["challenge", "3"], ["challenge"]),
    ],
)
def test_a_command_word_narrows_the_app_to_that_command(words: list[str], names: list[str]) -> None:
    narrowed = app_for(words)
    commands = [c.callback.__name__ for c in narrowed.registered_commands if c.callback]
    assert commands + [g.name for g in narrowed.registered_groups] == names
    assert narrowed.registered_callback is app.registered_callback


@pytest.mark.parametrize(
    "words", [[], ["lern", "1"], ["--version"], ["learn", "--help"], ["-h"], ["--lessons-dir"]]
)
def test_no_command_word_help_or_a_typo_keeps_the_whole_app(words: list[str]) -> None:
    assert app_for(words) is app


@pytest.mark.parametrize(
    "words",
    [
        ["learn", "1", "--bogus"],
        ["learn", "1", "2"],
        ["--theme", "sepia", "learn", "1"],
        ["learn", "--port", "seven"],
        ["mailbox", "show"],
        ["--plain", "codes", "250"],
    ],
)
def test_the_narrowed_app_answers_as_the_whole_one(words: list[str]) -> None:
    from typer.testing import CliRunner

    def run(chosen: typer.Typer) -> tuple[int, str]:
        result = CliRunner().invoke(chosen, words, prog_name="smtp-tutor")
        return result.exit_code, result.output

    assert app_for(words) is not app
    assert run(app_for(words)) == run(app)


def test_progress_already_on_disk_is_not_written_again(tmp_path: Path) -> None:
    """A resumed lesson first saves what the file says: no new file, no flush to disk."""
    path = tmp_path / "progress.json"
    progress = Progress(path)
    progress.update("conversation", status=Status.IN_PROGRESS, step="helo")
    first = path.stat()
    again = Progress.load(path)
    again.update("conversation", status=Status.IN_PROGRESS, step="helo")
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    again.update("conversation", step="mail")
    assert path.stat().st_ino != first.st_ino
    assert Progress.load(path).of("conversation").step == "mail"


# The entry point as the smtp-tutor script runs it; at exit, the collector's state.
ENTRY = """
import atexit, gc, sys
atexit.register(lambda: print("collector on:", gc.isenabled(), gc.get_freeze_count() > 10000))
sys.argv = ["smtp-tutor", *sys.argv[1:]]
from tutor.__main__ import run
run()
"""


@pytest.mark.parametrize(
    ("words", "frozen"),
    [(["learn", "1", "--plain", "--script", "-"], True), (["lessons", "--plain"], False)],
)
def test_a_lessons_start_up_is_frozen_and_the_collector_runs_again(
    words: list[str], frozen: bool
) -> None:
    """A lesson's start-up runs without the collector, which is back for the lesson itself
    with what start-up made frozen; other commands never pause it."""
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, *words],
        input="quit\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.rstrip().endswith(f"collector on: True {frozen}"), done.stderr
