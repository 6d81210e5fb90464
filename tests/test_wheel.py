"""The built wheel, installed outside the repository, carries its lessons and runs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds and installs a wheel in a fresh venv

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


class Installed:
    """The wheel installed into its own folder, run from a folder far from the sources."""

    def __init__(self, wheel: Path, tmp_path: Path) -> None:
        self.target = tmp_path / "site"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-deps",
                "-q",
                "--target",
                str(self.target),
                str(wheel),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        self.cwd = tmp_path / "elsewhere"
        self.cwd.mkdir()
        self.env = dict(
            os.environ,
            PYTHONPATH=str(self.target),
            SMTP_TUTOR_HOME=str(tmp_path / "home"),
            COLUMNS="400",
        )

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            cwd=self.cwd,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def installed(wheel: Path, tmp_path: Path) -> Installed:
    return Installed(wheel, tmp_path)


def test_installed_wheel_runs_a_lesson_outside_the_repo(installed: Installed) -> None:
    where = installed.run("-c", "import tutor; print(tutor.__file__)")
    assert where.stdout.startswith(str(installed.target)), "the test must use the installed wheel"
    listed = installed.run("-m", "tutor", "lessons", "--plain")
    assert "1. The SMTP conversation" in listed.stdout, listed.stdout + listed.stderr
    assert f"lessons from: {installed.target}" in listed.stdout
    session = (
        "helo a.b.c\nmail from:<a@example.test>\nrcpt to:<you@tutor.test>\n"
        "data\nSubject: x\n\nhi\n.\nquit\n"
    )
    learned = installed.run("-m", "tutor", "learn", "1", "--plain", stdin=session)
    assert learned.returncode == 0, learned.stdout + learned.stderr
    assert "Lesson 1 done." in learned.stdout


def test_installed_wheel_lists_and_plays_a_challenge(installed: Installed) -> None:
    listed = installed.run("-m", "tutor", "challenge", "--plain")
    assert f"challenges from: {installed.target}" in listed.stdout, listed.stdout + listed.stderr
    attempt = (
        "helo a.b.c\nmail from:<you@tutor.test>\nrcpt to:<alice@tutor.test>\n"
        "data\nTo: bob@tutor.test\n\nhi\n.\n"
    )
    played = installed.run("-m", "tutor", "challenge", "1", "--plain", stdin=attempt)
    assert played.returncode == 0, played.stdout + played.stderr
    assert "Challenge 1 solved." in played.stdout
