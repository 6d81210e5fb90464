"""Handouts filed by period and student, and `smtp-tutor class export` (docs/teaching.md,
"Collecting handouts"; tutor/classroom/handouts.py).

Fast: a real TeachingServer in this process, its events fed to serve's transcript writer,
and the real CLI in-process for `class export`. Slow: a real `serve --transcripts`
started three times into one folder, over two periods, then exported."""

from __future__ import annotations

import json
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve_process import ServeProcess
from tests.support import RawClient, run_cli
from tests.test_classroom import wait_for_sessions
from tutor.classroom import handouts, periods
from tutor.server.runner import TeachingServer
from tutor.smtp.events import Event, Exchange, SessionClosed, SessionOpened, StudentNamed
from tutor.smtp.student import file_safe
from tutor.ui.serve.serve_transcripts import LIVE_MOVES, SessionTranscripts

WAIT = 20.0
SESSION_FILE = r"session-\d{4}\.(md|html|svg|txt)"


def feed_until_closed(server: TeachingServer, writer: SessionTranscripts, sessions: int) -> None:
    """Give the writer the server's events until `sessions` sessions have closed."""
    closed = 0
    deadline = time.monotonic() + WAIT
    while closed < sessions:
        event = server.capture.events.get(timeout=max(deadline - time.monotonic(), 0.01))
        writer.feed(event)
        closed += isinstance(event, SessionClosed)


def every_file(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def class_root(tmp_path: Path) -> Iterator[tuple[Path, TeachingServer]]:
    root = tmp_path / "Maildir"
    periods.begin(root)
    server = TeachingServer(root, save_every_session=True).start()
    yield root, server
    server.stop()


# --- serve's writer: where each session's handout goes ------------------------------------------


def test_a_handout_follows_its_student_and_hostile_names_stay_inside(
    class_root: tuple[Path, TeachingServer], tmp_path: Path
) -> None:
    root, server = class_root
    folder = tmp_path / "class" / "handouts"
    writer = SessionTranscripts(folder, "html", root=root)
    with RawClient(server.address) as client:  # named by HELO, then by NOOP
        client.cmd("HELO ../../x")
        client.cmd("NOOP student=Ada Lovelace")
        client.cmd("QUIT")
    with RawClient(server.address) as client:  # a hostile HELO, and a NOOP name refused
        client.cmd("EHLO ../../../../etc/cron.d/x")
        client.cmd("NOOP student=../../x")
        client.cmd("QUIT")
    with RawClient(server.address) as client:
        client.cmd("HELO ..")
        client.cmd("QUIT")
    feed_until_closed(server, writer, 3)
    writer.close()

    assert writer.failures == type(writer.failures)()
    [run] = writer.folders
    assert run.parent == folder and handouts.RUN_NAME.match(run.name)
    assert every_file(tmp_path / "class") == [
        f"handouts/{run.name}/{file_safe('Ada Lovelace')}/session-0001.html",
        f"handouts/{run.name}/{file_safe('../../../../etc/cron.d/x')}/session-0002.html",
        f"handouts/{run.name}/{file_safe('..')}/session-0003.html",
    ]
    assert not (tmp_path / "x").exists() and not (tmp_path / "class" / "x").exists()
    assert [p.name for p in run.iterdir()] == [p.parent.name for p in run.glob("*/*")]  # no
    # folder is left behind by a name the session stopped using ("127.0.0.1", "../../x")
    ada = (run / file_safe("Ada Lovelace") / "session-0001.html").read_text()
    today = time.strftime("%Y-%m-%d")
    assert f"<title>Ada Lovelace: session 1, {today} " in ada
    assert "NOOP student=Ada Lovelace" in ada
    hostile = (run / file_safe("../../../../etc/cron.d/x") / "session-0002.html").read_text()
    assert "<title>../../../../etc/cron.d/x: session 2" in hostile


def test_a_session_that_renames_itself_in_a_loop_moves_a_few_times_then_at_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moves: list[tuple[Path, Path]] = []
    move = handouts.move_without_replacing

    def counted(source: Path, target: Path) -> bool:
        moves.append((source, target))
        return move(source, target)

    monkeypatch.setattr(handouts, "move_without_replacing", counted)
    events: list[Event] = [SessionOpened(1, "192.0.2.7", 40000, 25)]
    for number in range(50):
        events.append(Exchange(1, "command", f"EHLO pc{number}\r\n".encode(), ("250 ok",)))
    events += [StudentNamed(1, "Grace"), SessionClosed(1, "quit")]
    writer = SessionTranscripts(tmp_path, "md")
    for event in events:
        writer.feed(event)
    writer.close()
    assert len(moves) == LIVE_MOVES + 1
    [run] = writer.folders
    assert every_file(run) == ["Grace/session-0001.md"]
    heading = (run / "Grace" / "session-0001.md").read_text().splitlines()[0]
    assert heading.startswith("# Grace: session 1, ") and "pc" not in heading


def test_a_move_never_replaces_a_file_that_is_there(tmp_path: Path) -> None:
    writer = SessionTranscripts(tmp_path, "txt")
    writer.feed(SessionOpened(1, "192.0.2.7", 40000, 25))
    [run] = writer.folders
    planted = run / "Ada" / "session-0001.txt"
    planted.parent.mkdir()
    planted.write_text("not a transcript")
    writer.feed(StudentNamed(1, "Ada"))
    writer.feed(SessionClosed(1, "quit"))
    writer.close()
    assert planted.read_text() == "not a transcript"
    assert "connected from 192.0.2.7" in (run / "192.0.2.7" / "session-0001.txt").read_text()


def test_two_runs_into_one_folder_keep_every_file(tmp_path: Path) -> None:
    """serve started twice in the same second: two RUN folders, nothing overwritten."""
    written = []
    for _ in range(2):
        writer = SessionTranscripts(tmp_path, "md")
        writer.started = 1_790_000_000.0  # both in the same second
        for event in (SessionOpened(1, "192.0.2.7", 40000, 25), SessionClosed(1, "quit")):
            writer.feed(event)
        writer.close()
        written += writer.folders
    first, second = written
    assert second.name == first.name + "-2"
    assert set(every_file(tmp_path)) == {
        f"{first.name}/192.0.2.7/session-0001.md",
        f"{second.name}/192.0.2.7/session-0001.md",
    }


def test_a_file_in_the_way_is_not_overwritten_and_the_transcript_says_so(tmp_path: Path) -> None:
    writer = SessionTranscripts(tmp_path, "md")
    writer.feed(SessionOpened(1, "192.0.2.7", 40000, 25))
    [run] = writer.folders
    planted = run / "192.0.2.7" / "session-0002.md"
    planted.write_text("mine")
    writer.feed(SessionOpened(2, "192.0.2.7", 40001, 25))
    writer.close()
    assert planted.read_text() == "mine"
    assert list(writer.failures) == ["transcript of session 2 not written: File exists"]


def test_a_new_period_begun_while_serving_gets_a_new_folder(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    first = periods.begin(root, now=time.time() - 60)
    writer = SessionTranscripts(tmp_path / "handouts", "md", root=root)
    writer.feed(SessionOpened(1, "192.0.2.7", 40000, 25))
    writer.feed(SessionOpened(2, "192.0.2.8", 40000, 25))
    second = periods.begin(root)  # `class reset` while serve runs
    writer.feed(SessionOpened(3, "192.0.2.9", 40000, 25))
    writer.close()
    old, new = writer.folders
    assert every_file(old) == ["192.0.2.7/session-0001.md", "192.0.2.8/session-0002.md"]
    assert every_file(new) == ["192.0.2.9/session-0003.md"]
    runs = handouts.recorded_runs(root)
    assert [(run.folder, run.period) for run in runs] == [
        (old.absolute(), first.name),
        (new.absolute(), second.name),
    ]


# --- class export ----------------------------------------------------------------------------


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        return archive.namelist()


def assert_inside_one_period(names: list[str], period: str) -> None:
    for name in names:
        parts = name.split("/")
        assert not name.startswith("/") and "\\" not in name and ":" not in name, name
        assert ".." not in parts and "" not in parts and "." not in parts, name
        assert parts[0] == period, name
        assert len(parts) == 2 if parts[1].startswith("roster.") else len(parts) == 3, name


def test_class_export_bundles_handouts_and_roster_and_never_overwrites(
    class_root: tuple[Path, TeachingServer], tmp_path: Path
) -> None:
    root, server = class_root
    folder = tmp_path / "handouts"
    writer = SessionTranscripts(folder, "md", root=root)
    for name in ("Ada", "Grace Hopper", "Ada"):
        with RawClient(server.address) as client:
            client.cmd("HELO ../../x")
            client.cmd(f"NOOP student={name}")
            client.cmd("QUIT")
    feed_until_closed(server, writer, 3)
    writer.close()
    wait_for_sessions(root, 3)  # the roster reads the sessions the server saved
    [run] = writer.folders
    period = periods.current(root)
    assert period is not None

    target = tmp_path / "out" / "class.zip"
    target.parent.mkdir()
    done = run_cli("class", "export", str(target), "--maildir", str(root))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"Period {period.name}: 3 handouts of 2 students and the roster, in {target}."
    )
    names = zip_names(target)
    assert_inside_one_period(names, period.name)
    grace = file_safe("Grace Hopper")
    assert names == [
        f"{period.name}/roster.json",
        f"{period.name}/roster.csv",
        f"{period.name}/Ada/{run.name}-session-0001.md",
        f"{period.name}/Ada/{run.name}-session-0003.md",
        f"{period.name}/{grace}/{run.name}-session-0002.md",
    ]
    with zipfile.ZipFile(target) as archive:
        roster = json.loads(archive.read(f"{period.name}/roster.json"))
        assert [s["name"] for s in roster["students"]] == ["Ada", "Grace Hopper"]
        csv_text = archive.read(f"{period.name}/roster.csv").decode()
        assert csv_text.splitlines()[0].startswith("name,lessons,challenges")
        handout = archive.read(f"{period.name}/Ada/{run.name}-session-0003.md").decode()
        assert handout == (run / "Ada" / "session-0003.md").read_text()

    before = target.read_bytes()
    refused = run_cli("class", "export", str(target), "--maildir", str(root))
    assert refused.returncode == 1
    assert refused.stderr == f"smtp-tutor: {target} exists: add --force to replace it\n"
    assert target.read_bytes() == before
    assert os.listdir(target.parent) == ["class.zip"]  # no temporary file left either

    moved = tmp_path / "usb" / "handouts"
    moved.parent.mkdir()
    folder.rename(moved)
    gone = run_cli("class", "export", str(target), "--force", "--maildir", str(root))
    assert gone.returncode == 0 and "0 handouts of 0 students" in gone.stdout
    assert "is gone; if it moved, add --transcripts DIR" in gone.stderr
    found = run_cli(
        "class",
        "export",
        str(target),
        "--force",
        "--transcripts",
        str(moved),
        "--maildir",
        str(root),
    )
    assert found.returncode == 0 and "3 handouts of 2 students" in found.stdout
    assert len(zip_names(target)) == 5


def test_class_export_of_a_period_without_handouts_still_holds_the_roster(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    period = periods.begin(root)
    target = tmp_path / "empty.zip"
    result = run_cli("class", "export", str(target), "--maildir", str(root))
    assert result.returncode == 0, result.stderr
    assert "No handouts in this period" in result.stderr
    assert zip_names(target) == [f"{period.name}/roster.json", f"{period.name}/roster.csv"]
    missing = run_cli("class", "export", str(target), "--period", "20000101-000000")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1


def test_only_what_serve_writes_goes_into_the_zip(tmp_path: Path) -> None:
    """A link or a stray file in the handouts folder is left out; names stay checked."""
    root = tmp_path / "Maildir"
    period = periods.begin(root)
    writer = SessionTranscripts(tmp_path / "handouts", "txt", root=root)
    writer.feed(SessionOpened(1, "192.0.2.7", 40000, 25))
    writer.close()
    [run] = writer.folders
    secret = tmp_path / "secret.txt"
    secret.write_text("not for students")
    (run / "192.0.2.7" / "session-0009.txt").symlink_to(secret)
    (run / "192.0.2.7" / "notes.txt").write_text("x")
    (run / ".hidden").mkdir()
    (run / ".hidden" / "session-0001.txt").write_text("x")
    (run / "linked").symlink_to(tmp_path)
    target = tmp_path / "class.zip"
    assert run_cli("class", "export", str(target), "--maildir", str(root)).returncode == 0
    names = zip_names(target)
    assert_inside_one_period(names, period.name)
    assert names[2:] == [f"{period.name}/192.0.2.7/{run.name}-session-0001.txt"]


# --- a real serve, started three times into one folder, over two periods --------------------------


def serve_class(maildir: Path, handouts_dir: Path, students: list[str]) -> str:
    """One serve run: each student at a raw client, named by NOOP after a hostile HELO;
    returns the RUN folder's name, from the handouts it wrote."""
    before = set(os.listdir(handouts_dir)) if handouts_dir.exists() else set()
    process = ServeProcess(maildir, "--log", "--plain", "--transcripts", str(handouts_dir))
    try:
        for number, student in enumerate(students, start=1):
            with RawClient(process.address) as client:
                client.cmd("HELO ../../x")
                client.cmd(f"NOOP student={student}")
                client.cmd("QUIT")
            process.wait_for(rb"#%d +closed after QUIT" % number, timeout=WAIT)
        assert process.interrupt() == 0
    finally:
        process.kill()
    [run] = set(os.listdir(handouts_dir)) - before
    return run


@pytest.mark.slow
@pytest.mark.posix
def test_serve_runs_into_one_folder_keep_every_file_and_export_by_period(
    tmp_path: Path,
) -> None:
    maildir, folder = tmp_path / "Maildir", tmp_path / "handouts"
    first_run = serve_class(maildir, folder, ["Ada", "Grace"])
    kept = {path: path.read_bytes() for path in folder.rglob("*.md")}
    second_run = serve_class(maildir, folder, ["Ada"])  # the same period: serve went on
    assert run_cli("class", "reset", "--yes", "--maildir", str(maildir)).returncode == 0
    third_run = serve_class(maildir, folder, ["Ada", "Linus"])  # a new period
    assert {path: path.read_bytes() for path in kept} == kept  # nothing overwritten
    # sorted: two runs in one second are RUN and RUN-2, and "-" sorts before "/"
    assert every_file(folder) == sorted(
        [
            f"{first_run}/Ada/session-0001.md",
            f"{first_run}/Grace/session-0002.md",
            f"{second_run}/Ada/session-0001.md",
            f"{third_run}/Ada/session-0001.md",
            f"{third_run}/Linus/session-0002.md",
        ]
    )
    assert not (tmp_path / "x").exists()
    first, second = (period.name for period in periods.periods(maildir))

    exported = {}
    for period in (first, second):
        target = tmp_path / f"{period}.zip"
        result = run_cli(
            "class", "export", str(target), "--period", period, "--maildir", str(maildir)
        )
        assert result.returncode == 0, result.stderr
        names = zip_names(target)
        assert_inside_one_period(names, period)
        exported[period] = sorted(names[2:])  # the order of runs started in one second
    assert exported == {
        first: sorted(
            [
                f"{first}/Ada/{first_run}-session-0001.md",
                f"{first}/Ada/{second_run}-session-0001.md",
                f"{first}/Grace/{first_run}-session-0002.md",
            ]
        ),
        second: [
            f"{second}/Ada/{third_run}-session-0001.md",
            f"{second}/Linus/{third_run}-session-0002.md",
        ],
    }
