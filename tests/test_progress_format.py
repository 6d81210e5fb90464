"""Progress and lesson files from older versions: they load, or say what to change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import run_cli
from tutor.engine import loader
from tutor.engine.progress import Progress, Status

TINY = """\
format_version = 1
id = "tiny"
title = "A tiny lesson"

[[steps]]
id = "connect"
kind = "connect"
explain = "The tutor connects."

[[steps]]
id = "helo"
explain = "Say hello."
command = "helo a.b.c"
accept = ['(?i)^helo\\s']
expect = [250]
"""


def write(folder: Path, text: str, name: str = "01-tiny.toml") -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    found: list[loader.Problem] = []
    loader.parse(path, 1, found)
    return [str(problem) for problem in found]


# --- progress -------------------------------------------------------------------------------


def test_a_saved_step_that_no_longer_exists_resumes_at_the_start_with_a_note(
    tmp_path: Path, tutor_home: Path
) -> None:
    lessons = tmp_path / "lessons"
    write(lessons, TINY)
    (tutor_home / "progress.json").write_text(
        json.dumps(
            {
                "last_lesson": "tiny",
                "lessons": {"tiny": {"step": "greet-old", "status": "in progress"}},
            }
        )
    )
    result = run_cli("--lessons-dir", str(lessons), "learn", stdin="/quit\n")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    note = "Your saved step 'greet-old' is not in this version of the lesson: starting from"
    assert note in " ".join(out.split())
    assert "Step 2/2" in out and "Picking up where you left off" not in out
    saved = json.loads((tutor_home / "progress.json").read_text())
    assert saved["lessons"]["tiny"]["step"] == "helo"  # the old id is gone for good


def test_an_older_progress_file_loads_and_one_odd_entry_costs_only_its_lesson(
    tutor_home: Path,
) -> None:
    path = tutor_home / "progress.json"
    path.write_text(
        json.dumps(
            {
                "lessons": {
                    "conversation": {"status": "done", "assisted": ["helo"]},  # no session, no time
                    "envelope": "done",  # not an object at all
                    "recipients": {"status": "in progress", "step": "rcpt", "assisted": "helo"},
                    "headers": {"status": "mastered", "step": "from"},  # a status we don't know
                }
            }
        )
    )
    progress = Progress.load(path)
    assert progress.of("conversation").status is Status.DONE
    assert progress.of("recipients").status is Status.IN_PROGRESS
    assert progress.of("headers").status is Status.NOT_STARTED  # the rest of it is kept
    assert progress.of("headers").step == "from"
    assert progress.of("conversation").assisted == ["helo"]
    assert progress.of("conversation").session == []
    assert progress.of("recipients").step == "rcpt"
    assert progress.of("recipients").assisted == []  # a field of the wrong type is dropped
    assert "envelope" not in progress.lessons
    assert progress.warning == (
        "could not read the progress of envelope in progress.json; it starts fresh"
    )
    assert path.exists()  # not moved aside: the rest of it is good


# --- lesson files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "format_version = 0",
            "format_version 0 is older than this tutor's 1: set format_version = 1",
        ),
        (
            "format_version = 2",
            "format_version 2 is newer than this tutor's 1: this file needs a newer smtp-tutor",
        ),
        ('format_version = "1"', "format_version must be the number 1, not '1'"),
        ("", 'format_version is missing: add "format_version = 1" at the top'),
    ],
)
def test_another_format_version_says_what_to_change(
    tmp_path: Path, line: str, message: str
) -> None:
    path = write(tmp_path, TINY.replace("format_version = 1", line))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:1: {message}")


def test_unknown_and_missing_keys_say_what_to_change(tmp_path: Path) -> None:
    text = (
        TINY.replace('title = "A tiny lesson"', 'titel = "A tiny lesson"\nlevel = 2')
        .replace('explain = "Say hello."', 'hint = ["helo a.b.c"]')
        .replace('id = "connect"\n', "")
    )
    path = write(tmp_path, text)
    problems = problems_of(path)
    assert f"{path}:3: unknown lesson key 'titel': rename it to 'title'" in problems
    assert f"{path}:4: unknown lesson key 'level': remove it (known: format_version, id, " in (
        "\n".join(problems)
    )
    assert f'{path}:1: missing title: add title = "…"' in problems
    assert f"{path}:6: missing id: add id = \"a-name\" (lowercase letters, digits, '-')" in problems
    assert f"{path}:12: unknown step key 'hint': rename it to 'hints'" in problems
    assert (
        f'{path}:10: missing explain: add explain = """…""" '
        "(what the learner reads before acting)" in problems
    )


def test_a_renamed_key_is_named_with_its_new_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a format version renames a key, RENAMED says so, and a file for the older
    format is told exactly what to rename (here a pretend format 1 renamed `tips`)."""
    monkeypatch.setitem(loader.RENAMED, 1, {"tips": "hints"})
    text = TINY.replace("format_version = 1", "format_version = 0").replace(
        "expect = [250]", 'expect = [250]\ntips = ["helo a.b.c"]'
    )
    path = write(tmp_path, text)
    problems = problems_of(path)
    assert problems[0] == (
        f"{path}:1: format_version 0 is older than this tutor's 1: "
        "rename tips to hints (line 16), then set format_version = 1"
    )
    renamed = f"{path}:16: unknown step key 'tips': rename it to 'hints' (renamed in format 1)"
    assert renamed in problems


def test_a_broken_lesson_folder_says_what_to_change_before_anything_runs(
    tmp_path: Path,
) -> None:
    lessons = tmp_path / "lessons"
    path = write(lessons, TINY.replace("format_version = 1", "format_version = 0"))
    result = run_cli("--lessons-dir", str(lessons), "learn", "1")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (
        f"smtp-tutor: {path}:1: format_version 0 is older than this tutor's 1: set "
        "format_version = 1 (`smtp-tutor lessons validate --static FILE` names every other "
        "change)"
    )
