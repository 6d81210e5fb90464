"""The built wheel, installed outside the repository, carries its lessons and runs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [built] = out.glob("smtp_tutor-*.whl")
    return built


def test_wheel_contains_the_lessons(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    lessons = [n for n in names if n.startswith("tutor/lessons/") and n.endswith(".toml")]
    assert len(lessons) >= 3
    assert "tutor/cli.py" in names


def test_wheel_contains_the_challenges(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith("tutor/challenges/")}
    assert {p.name for p in (ROOT / "challenges").glob("*.toml")} <= shipped
    assert len([n for n in shipped if n.endswith(".toml")]) >= 5


def test_installed_wheel_runs_a_lesson_outside_the_repo(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(
        os.environ, PYTHONPATH=str(target), SMTP_TUTOR_HOME=str(tmp_path / "home"), COLUMNS="400"
    )
    where = subprocess.run(
        [sys.executable, "-c", "import tutor; print(tutor.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.stdout.startswith(str(target)), "the test must exercise the installed wheel"
    listed = subprocess.run(
        [sys.executable, "-m", "tutor", "lessons", "--plain"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "1. The SMTP conversation" in listed.stdout, listed.stdout + listed.stderr
    assert f"lessons from: {target}" in listed.stdout
    session = (
        "helo a.b.c\nmail from:<a@example.test>\nrcpt to:<you@tutor.test>\n"
        "data\nSubject: x\n\nhi\n.\nquit\n"
    )
    learned = subprocess.run(
        [sys.executable, "-m", "tutor", "learn", "1", "--plain"],
        cwd=elsewhere,
        env=env,
        input=session,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert learned.returncode == 0, learned.stdout + learned.stderr
    assert "Lesson 1 done." in learned.stdout


def test_installed_wheel_lists_and_plays_a_challenge(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    install = ["install", "--no-deps", "-q", "--target", str(target), str(wheel)]
    subprocess.run(
        [sys.executable, "-m", "pip", *install],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(
        os.environ, PYTHONPATH=str(target), SMTP_TUTOR_HOME=str(tmp_path / "home"), COLUMNS="400"
    )
    listed = subprocess.run(
        [sys.executable, "-m", "tutor", "challenge", "--plain"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"challenges from: {target}" in listed.stdout, listed.stdout + listed.stderr
    attempt = (
        "helo a.b.c\nmail from:<you@tutor.test>\nrcpt to:<alice@tutor.test>\n"
        "data\nTo: bob@tutor.test\n\nhi\n.\n"
    )
    played = subprocess.run(
        [sys.executable, "-m", "tutor", "challenge", "1", "--plain"],
        cwd=elsewhere,
        env=env,
        input=attempt,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert played.returncode == 0, played.stdout + played.stderr
    assert "Challenge 1 solved." in played.stdout
