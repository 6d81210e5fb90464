"""`smtp-tutor challenge`: each challenge solved once and failed once, as a learner runs it.

The solving script is the challenge's canonical answer; the failing one is its
counter-example, a plausible attempt that misses the goal. Both go through the real CLI
(`challenge N --script FILE --plain`) in a subprocess, against the real server.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve_process import LiveProcess
from tests.support import run_cli
from tutor.engine import challenges
from tutor.engine.answers import canonical
from tutor.engine.loader import default_challenges_dir
from tutor.engine.model import Lesson, Step
from tutor.engine.progress import Progress, Status

# challenge id -> what the output must say is missing after its counter-example
MISSING = {
    "addressed-to-bob": "the last message should reach alice's mailbox (it went to bob)",
    "two-of-three": "at least 1 recipient(s) of the delivered message should be refused",
    "greylisted": "no message has reached alice's mailbox yet",
    "not-my-name": "localhost is this machine's own name",
    "dmarc-fail": "the last message's DMARC verdict should be fail (it is none)",
    "someone-else-passes": "the last message's DMARC verdict should be pass (it is fail)",
    "backscatter": "a bounce should go to someone other than you@tutor.test "
    "(it went to you@tutor.test)",
    "no-mx": "ask DNS for the MX records of a-only.example",
    "null-mx": "the envelope sender should be <>",
    "mime-attachment": "a base64 or quoted-printable part should decode to text with "
    "'Hello, world'",
    "mime-quoted-printable": "a base64 or quoted-printable part should decode to text with 'café'",
    "headers-blind-copy": "the stored message's header should have no Bcc",
    "dkim-forwarded": "not authenticated yet",
    "headers-fixups": "the stored message's header should have Date",
}
SHIPPED = challenges.load_challenges()
BACKSCATTER = next(c for c in SHIPPED if c.id == "backscatter")


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, stdin=stdin, columns=400)


def goal_of(challenge: Lesson) -> Step:
    [goal] = [step for step in challenge.steps if step.kind == "goal"]
    return goal


def script(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "attempt.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def progress_of(home: Path, challenge_id: str) -> dict[str, object]:
    data = json.loads((home / "progress.json").read_text())
    entry: dict[str, object] = data["lessons"][f"challenge:{challenge_id}"]
    return entry


def test_at_least_five_challenges_each_with_a_test() -> None:
    assert len(SHIPPED) >= 5
    assert {c.id for c in SHIPPED} == set(MISSING)
    assert [c.number for c in SHIPPED] == list(range(1, len(SHIPPED) + 1))


@pytest.mark.parametrize("challenge", SHIPPED, ids=[c.id for c in SHIPPED])
def test_the_canonical_answer_solves_it(
    challenge: Lesson, tmp_path: Path, tutor_home: Path
) -> None:
    lines = list(canonical(goal_of(challenge)).lines)
    lines += ["" for step in challenge.steps if step.kind == "inbox"]  # Enter: read the copy
    result = run("challenge", str(challenge.number), "--script", script(tmp_path, lines), "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Challenge {challenge.number} solved." in result.stdout
    assert "Not solved" not in result.stdout
    assert progress_of(tutor_home, challenge.id)["status"] == "done"


@pytest.mark.parametrize("challenge", SHIPPED, ids=[c.id for c in SHIPPED])
def test_a_plausible_miss_stays_unsolved_and_says_what_is_missing(
    challenge: Lesson, tmp_path: Path, tutor_home: Path
) -> None:
    lines = goal_of(challenge).counter_example.splitlines()
    result = run("challenge", challenge.id, "--script", script(tmp_path, lines), "--plain")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"Challenge {challenge.number} solved" not in result.stdout
    final = [line for line in result.stdout.splitlines() if line.startswith("Not solved: ")]
    assert final and MISSING[challenge.id] in final[-1], result.stdout
    assert f"Challenge {challenge.number} is not solved yet" in result.stdout
    assert progress_of(tutor_home, challenge.id)["status"] == "in progress"


def test_the_list_shows_progress_and_a_later_miss_keeps_the_solve(
    tmp_path: Path, tutor_home: Path
) -> None:
    first = SHIPPED[0]
    solve = script(tmp_path, list(canonical(goal_of(first)).lines))
    assert run("challenge", "1", "--script", solve, "--plain").returncode == 0
    missed = run("challenge", "1", "--plain", stdin="helo a.b.c\n/quit\n")
    assert missed.returncode == 1
    assert "your earlier solve of challenge 1 is kept" in missed.stdout
    listed = run("challenge", "--plain")
    assert listed.returncode == 0
    assert f" 1. {first.title}  [solved]" in listed.stdout
    assert f" 2. {SHIPPED[1].title}  [not tried]" in listed.stdout
    assert f"1 of {len(SHIPPED)} solved." in listed.stdout
    assert f"challenges from: {default_challenges_dir()}" in listed.stdout
    # lessons and challenges share the progress file, but not their keys or "continue"
    data = json.loads((tutor_home / "progress.json").read_text())
    assert data["last_lesson"] == ""
    assert set(data["lessons"]) == {f"challenge:{first.id}"}


def test_show_solves_it_with_help(tutor_home: Path) -> None:
    result = run("challenge", "backscatter", "--plain", stdin="/show\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(typed by the tutor)" in result.stdout
    assert "Challenge 7 solved with help." in result.stdout
    assert progress_of(tutor_home, "backscatter")["status"] == "done with help"


def test_unknown_challenge_and_bad_arguments_are_one_line() -> None:
    unknown = run("challenge", "99")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("smtp-tutor: no challenge '99'; there are: 1 (")
    assert len(unknown.stderr.strip().splitlines()) == 1
    usage = run("challenge", "1", "2")
    assert usage.returncode == 2
    assert "unexpected extra argument" in usage.stderr


def test_shipped_challenges_validate_and_replay() -> None:
    result = run("challenge", "validate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(SHIPPED)} challenges checked and replayed: ok" in result.stdout


def test_validate_wants_a_goal_and_a_way_to_miss_it(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "01-easy.toml").write_text(
        'format_version = 1\nid = "easy"\ntitle = "Too easy"\n'
        '[[steps]]\nid = "connect"\nkind = "connect"\nexplain = "Hello."\n'
        '[[steps]]\nid = "goal"\nkind = "goal"\ngoal = "Greet."\nexplain = "Greet."\n'
        'command = "helo a.b.c"\n[[steps.checks]]\nreply = 250\n'
    )
    (folder / "02-wrong.toml").write_text(
        'format_version = 1\nid = "wrong"\ntitle = "Miss proves nothing"\n'
        '[[steps]]\nid = "connect"\nkind = "connect"\nexplain = "Hello."\n'
        '[[steps]]\nid = "goal"\nkind = "goal"\ngoal = "Store one."\nexplain = "Store."\n'
        'command = "helo a.b.c"\ncounter_example = "ehlo x.y.z"\n'
        "[[steps.checks]]\nreply = 250\n"
    )
    result = run("challenge", "validate", str(folder))
    assert result.returncode == 1
    out = result.stdout
    assert f"{folder / '01-easy.toml'}:8: step 'goal': a challenge's goal needs a" in out
    assert f"{folder / '02-wrong.toml'}:14: step 'goal': counter_example 'ehlo x.y.z'" in out
    assert "2 challenges checked and replayed: 2 problems" in out


def test_a_teachers_challenges_dir(tmp_path: Path) -> None:
    missing = run("challenge", "--challenges-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert missing.stderr.strip().endswith("nowhere: no such challenges folder")


def test_progress_keeps_the_best_result(tmp_path: Path) -> None:
    progress = Progress(tmp_path / "progress.json")
    first = SHIPPED[0]
    challenges.record(progress, first, Status.DONE_WITH_HELP, ["goal"])
    challenges.record(progress, first, Status.IN_PROGRESS, [])
    assert challenges.status(Progress.load(progress.path), first) is Status.DONE_WITH_HELP
    challenges.record(progress, first, Status.DONE, [])
    assert challenges.status(Progress.load(progress.path), first) is Status.DONE
    assert Progress.load(progress.path).last_lesson == ""


# --- a real client in another process (coach mode) -------------------------------------------

CLIENT = """
import socket, sys
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
reader = sock.makefile("rb")
def reply():
    while True:
        line = reader.readline()
        if not line or line[3:4] != b"-":
            return line
reply()
lines = sys.stdin.read().split("\\n")
message = False
for line in lines:
    sock.sendall(line.encode() + b"\\r\\n")
    if message and line != ".":
        continue
    message = line.lower() == "data"
    reply()
sock.sendall(b"quit\\r\\n")
reply()
sock.close()
"""


@pytest.fixture
def coached() -> Iterator[LiveProcess]:
    process = LiveProcess(
        ["challenge", "backscatter", "--telnet", "--port", "0", "--plain"],
        rb"listens on 127\.0\.0\.1 port (\d+)",
    )
    yield process
    process.kill()


def test_a_real_client_in_another_process_solves_a_challenge(coached: LiveProcess) -> None:
    lines = list(canonical(goal_of(BACKSCATTER)).lines)
    subprocess.run(
        [sys.executable, "-c", CLIENT, str(coached.port)],
        input="\n".join(lines),
        text=True,
        check=True,
        timeout=60,
    )
    coached.wait_for(rb"Challenge 7 solved\.")
    assert coached.proc.wait(timeout=30) == 0
    text = coached.text
    assert f"Challenge 7 of {len(SHIPPED)}: A bounce for someone else" in text
    assert "sent a bounce" in text and "<victim@innocent.example>" in text
    # the stored message alone is not yet an attempt to judge: its bounce was still coming
    assert "Not solved" not in text


def test_a_busy_port_is_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("challenge", "1", "--telnet", "--port", str(port))
    assert result.returncode != 0
    assert result.stderr.startswith("smtp-tutor: ") and "Traceback" not in result.stderr
