"""A class, end to end, as a teacher runs one (docs/teaching.md): `serve` with its
dashboard in a terminal and `--transcripts`; five students at their own machine
(`learn 1 --class … --name …`, scripted) and five at telnet who name themselves with
NOOP; the roster and one student's history on the dashboard; after `serve` stops, the
roster from disk in another process; the handouts filed by student; then a second
period that overwrites nothing of the first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.serve_process import ServeProcess
from tests.support import run_cli_process
from tests.test_class_reports import AT_TELNET, LEARNERS, SEED, report_lines, script, telnet_student
from tutor.smtp.student import file_safe

pytestmark = [pytest.mark.slow, pytest.mark.posix]


def start_learners(tmp_path: Path, port: int) -> list[subprocess.Popen[str]]:
    """Five students' machines, each with its own data home, taking lesson 1 at once."""
    lines = script(tmp_path, SEED)
    learners = []
    for name in LEARNERS:
        home = tmp_path / f"home-{name.split()[0]}"
        environment = dict(os.environ, SMTP_TUTOR_HOME=str(home), NO_COLOR="1")
        learn = ["learn", "1", "--plain", "--name", name, "--class", f"127.0.0.1:{port}"]
        learners.append(
            subprocess.Popen(
                [sys.executable, "-m", "tutor", *learn, "--script", str(lines)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=environment,
            )
        )
    return learners


def roster(maildir: Path, *options: str) -> dict[str, Any]:
    result = run_cli_process("class", "--maildir", str(maildir), "--json", *options)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def handouts(folder: Path) -> dict[Path, bytes]:
    return {path.relative_to(folder): path.read_bytes() for path in folder.rglob("*.md")}


def test_a_class_of_ten_seen_live_kept_on_disk_and_handed_out_by_student(tmp_path: Path) -> None:
    from tests.pty_session import PtySession

    maildir, folder = tmp_path / "Maildir", tmp_path / "handouts"
    environment = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40")
    serve = PtySession(
        "serve",
        "--port",
        "0",
        "--maildir",
        str(maildir),
        "--transcripts",
        str(folder),
        rows=40,
        columns=120,
        environment=environment,
    )
    port = int(serve.expect(r"on 127\.0\.0\.1:(\d+)").group(1))
    serve.expect(r"KEYS")
    learners = start_learners(tmp_path, port)
    for name, mistakes in AT_TELNET.items():  # while the lessons run
        telnet_student(("127.0.0.1", port), name, mistakes)
    for learner in learners:
        out, err = learner.communicate(timeout=180)
        assert learner.returncode == 0, out + err
        assert report_lines(out) and "warning" not in out

    # The teacher's dashboard: the whole class on the roster, then one student's history.
    serve.press("r")
    serve.expect(r"ROSTER +10 students")
    serve.expect(r"Barbara Liskov +— +✓1")  # lesson 1 done, reported from her machine
    serve.expect(r"Hedy +— +— +2 +1 ")  # at telnet: no lesson, 2 errors, 1 message
    for _ in range(5):  # Ada, Barbara Liskov, Claude, Dennis, Edsger, then Frances
        serve.press("j")
    serve.press("\r")
    serve.expect(r"HISTORY Frances +1 session")
    serve.expect(r"C: NOOP student=Frances")
    serve.expect(r"C\| Subject: from Frances")
    serve.press("q")
    assert serve.finish() == 0
    assert "Traceback" not in serve.screen()

    # After serve has stopped: the roster from disk alone, in a process of its own.
    first = roster(maildir)
    students = {student["name"]: student for student in first["students"]}
    assert set(students) == {*LEARNERS, *AT_TELNET}
    for name in LEARNERS:
        assert students[name]["lessons"] == {"1": "done"}, students[name]
        assert students[name]["current_step"] == ""
        assert (students[name]["messages"], students[name]["errors"]) == (1, 0)
    for name, mistakes in AT_TELNET.items():
        assert students[name]["lessons"] == {}
        assert (students[name]["messages"], students[name]["errors"]) == (1, mistakes)

    # Handouts: one folder per student under this run's folder, nothing elsewhere.
    kept = handouts(folder)
    [run] = {path.parts[0] for path in kept}
    by_student = {path.parts[1] for path in kept}
    assert by_student == {file_safe(name) for name in [*LEARNERS, *AT_TELNET]}
    for name in AT_TELNET:  # one session each; a learner has one per report
        [only] = [path for path in kept if path.parts[1] == name]
        assert f"NOOP student={name}" in (folder / only).read_text("utf-8")

    # A second period, then a serve into the same handouts folder: nothing overwritten.
    reset = run_cli_process("class", "reset", "--yes", "--maildir", str(maildir))
    assert reset.returncode == 0, reset.stderr
    again = ServeProcess(maildir, "--log", "--plain", "--transcripts", str(folder))
    try:
        telnet_student(again.address, "Ada", 0)
        again.wait_for(rb"#1 +closed after QUIT", timeout=20)
        assert again.interrupt() == 0
    finally:
        again.kill()
    now = handouts(folder)
    assert {path: now[path] for path in kept} == kept
    [(second_run, student)] = {path.parts[:2] for path in now if path not in kept}
    assert second_run != run and student == "Ada"
    assert [student["name"] for student in roster(maildir)["students"]] == ["Ada"]
    earlier = roster(maildir, "--period", first["period"])
    assert {student["name"] for student in earlier["students"]} == set(students)
