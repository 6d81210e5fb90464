"""Every file the tutor reads can be broken without an internal error.

progress.json (any bytes, any depth, any types), a data home or Maildir that cannot be
written (a path below a regular file; a read-only folder, checked by a user the file
permissions apply to), lesson and challenge files (any TOML value of any type, persona
values out of range), a lesson server that never greets, and Maildir oddities. Each case
goes through the real CLI and ends in one clear line, a warning or a marked entry, with
a non-zero status where something could not be done: never `internal error`, never a
traceback, never a hang.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import run_cli
from tutor.engine import loader
from tutor.engine.checks import evaluate
from tutor.engine.driver import CONNECT_TRIES, ConnectFailed, LessonDriver, persona_for
from tutor.engine.model import CHECK_NAMES, CHECK_VALUES
from tutor.engine.progress import Progress, Status
from tutor.engine.runner import LessonRun
from tutor.server.persona import LESSON_SETTINGS, Persona
from tutor.server.runner import TeachingServer

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
SETTINGS = settings(
    max_examples=int(os.environ.get("SMTP_TUTOR_PROPERTY_EXAMPLES", "30")),
    deadline=None,
    database=None,
    derandomize=True,  # the same examples on every run: CI stays reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CLI_SETTINGS = settings(SETTINGS, max_examples=20)  # each example runs the whole CLI

TINY = """\
format_version = 1
id = "tiny"
title = "A tiny lesson"

[persona]
open_relay = false

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
SEED_SCRIPT = (
    "helo a.b.c\nmail from:<bugs@looney.example>\nrcpt to:<you@tutor.test>\ndata\n"
    "Subject: hi\n\nHi there!\n.\nquit\n"
)


def no_internal_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 70, result.stderr
    assert "internal error" not in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line an error ends with (the run may have printed its screen first)."""
    no_internal_error(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("smtp-tutor: "), lines
    return lines[0]


# --- progress.json ------------------------------------------------------------------------


def check_loaded(progress: Progress) -> None:
    """Whatever the file held, the progress has the types the rest of the tutor relies on."""
    assert isinstance(progress.last_lesson, str)
    assert isinstance(progress.seen_welcome, bool)
    for key, entry in progress.lessons.items():
        assert isinstance(key, str)
        assert isinstance(entry.status, Status)
        assert isinstance(entry.step, str)
        assert entry.completed_at is None or math.isfinite(entry.completed_at)
        assert all(isinstance(item, str) for item in entry.assisted + entry.session)
        for line in entry.session:
            line.encode("utf-8", "surrogateescape")  # can be sent again on resume


def check_kept_aside(folder: Path, original: bytes, progress: Progress) -> None:
    """A file that could not be used is kept aside, byte for byte, and said once."""
    path = folder / "progress.json"
    if progress.warning.startswith("progress file was damaged"):
        assert not path.exists()
        backups = list(folder.glob("progress.corrupt-*.json"))
        assert [backup.read_bytes() for backup in backups] == [original]
        assert not progress.lessons
    else:
        assert path.read_bytes() == original


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder emptied for each hypothesis example (function fixtures are not)."""
    folder = Path(tempfile.mkdtemp(prefix="progress-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_progress_of_any_bytes_loads_or_is_moved_aside(scratch: Path, raw: bytes) -> None:
    for old in scratch.iterdir():
        old.unlink()
    path = scratch / "progress.json"
    path.write_bytes(raw)
    progress = Progress.load(path)
    check_loaded(progress)
    check_kept_aside(scratch, raw, progress)
    progress.update("tiny", step="helo", status=Status.IN_PROGRESS)  # and it saves again
    again = Progress.load(path)
    assert not again.warning and again.of("tiny").step == "helo"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["done", "in progress", "helo", "\x1b[31mred", "\ud800", "\udc80"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
entries = st.fixed_dictionaries(
    {},
    optional={
        key: json_values for key in ("step", "status", "assisted", "completed_at", "session")
    },
)
progress_documents = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "format": json_values,
            "last_lesson": json_values,
            "seen_welcome": json_values,
            "lessons": st.one_of(json_values, st.dictionaries(st.text(max_size=8), entries)),
        },
    ),
)


@SETTINGS
@given(document=progress_documents, depth=st.sampled_from([0, 0, 0, 50, 100_000]))
def test_progress_of_any_structure_and_depth_loads_or_is_moved_aside(
    scratch: Path, document: Any, depth: int
) -> None:
    for old in scratch.iterdir():
        old.unlink()
    path = scratch / "progress.json"
    text = json.dumps(document)  # NaN and Infinity too, as Python writes them
    if depth:  # nested deeper than json can follow once depth is 100 000
        text = '{"lessons": {"tiny": {"session": ' + "[" * depth + "]" * depth + "}}}"
    raw = text.encode("utf-8", "surrogatepass")  # a lone surrogate is not UTF-8
    path.write_bytes(raw)
    progress = Progress.load(path)
    check_loaded(progress)
    check_kept_aside(scratch, raw, progress)


DAMAGED = {
    "not UTF-8": b'{"last_lesson": "caf\xe9"}',
    "binary": bytes(range(256)),
    "nested too deeply": b"[" * 100_000 + b"]" * 100_000,
    "nested lessons": b'{"lessons": ' + b"{" * 5000 + b"}" * 5000 + b"}",
    "not an object": b"[1, 2, 3]",
    "lessons not an object": b'{"lessons": [1, 2]}',
    "a huge number": b'{"lessons": {}, "last_lesson": ' + b"9" * 5000 + b"}",
}


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_a_damaged_progress_file_is_moved_aside_with_one_warning(
    tutor_home: Path, name: str
) -> None:
    (tutor_home / "progress.json").write_bytes(DAMAGED[name])
    result = run_cli("lessons")
    no_internal_error(result)
    assert result.returncode == 0
    [warning] = result.stderr.strip().splitlines()
    assert re.match(
        r"warning: progress file was damaged; kept it as progress\.corrupt-\d+\.json "
        r"and started fresh \(its? .+\)$",
        warning,
    ), warning
    [backup] = tutor_home.glob("progress.corrupt-*.json")
    assert backup.read_bytes() == DAMAGED[name]
    again = run_cli("lessons")  # said once: the next run finds no damaged file
    assert again.returncode == 0 and not again.stderr


def test_wrong_types_inside_a_lesson_entry_cost_only_those_fields(tutor_home: Path) -> None:
    (tutor_home / "progress.json").write_text(
        json.dumps(
            {
                "last_lesson": ["conversation"],
                "seen_welcome": "yes",
                "lessons": {
                    "conversation": {
                        "step": "\x1b]0;pwned\x07",
                        "status": {"done": True},
                        "assisted": "helo",
                        "completed_at": 1e308 * 10,
                        "session": ["helo a.b.c", 5, None, "\ud800"],
                    },
                    "envelope": {"status": "done", "step": "quit"},
                    "recipients": "not an entry",
                },
            }
        )
    )
    result = run_cli("lessons")
    assert result.returncode == 0
    assert "could not read the progress of recipients in progress.json" in result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    progress = Progress.load(tutor_home / "progress.json")
    check_loaded(progress)
    assert progress.of("conversation").session == ["helo a.b.c"]
    assert progress.of("envelope").status == Status.DONE


@pytest.mark.posix
def test_a_fifo_or_a_folder_in_place_of_progress_does_not_hang(tutor_home: Path) -> None:
    os.mkfifo(tutor_home / "progress.json")
    result = run_cli("lessons")
    assert result.returncode == 0
    assert "it is not a regular file but a FIFO" in result.stderr
    (tutor_home / "progress.json").mkdir()
    result = run_cli("learn", "1", "--script", "-", "--plain", stdin="/quit\n")
    no_internal_error(result)
    assert "it is not a regular file but a folder" in result.stderr
    assert result.returncode == 1  # the lesson was left unfinished: the progress was saved
    assert json.loads((tutor_home / "progress.json").read_text())["last_lesson"] == "conversation"


def test_a_progress_file_far_too_large_is_moved_aside(tutor_home: Path) -> None:
    with (tutor_home / "progress.json").open("wb") as handle:
        handle.truncate(17 * 1024 * 1024)  # sparse: no 17 MB written
    result = run_cli("lessons")
    assert result.returncode == 0
    assert "(it is larger than 16 MiB)" in result.stderr


# --- a data home, a Maildir that cannot be written ----------------------------------------

# Each command that writes into the data home, with what it needs to run unattended.
WRITERS = {
    "learn": ("learn", "1", "--plain", "--script", "-"),
    "demo": ("demo", "1", "--delay", "0", "--plain"),
    "sandbox": ("sandbox", "--plain", "--script", "-"),
    "challenge play": ("challenge", "play", "1", "--plain", "--script", "-"),
    "progress reset": ("progress", "reset", "--yes"),
    "serve": ("serve", "--log", "--port", "0"),
}


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_a_home_below_a_regular_file_is_one_line_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """ENOTDIR: the real error of a real mkdir, whoever runs the test (root too)."""
    (tmp_path / "a-file").write_text("not a folder")
    home = tmp_path / "a-file" / "home"
    monkeypatch.setenv("SMTP_TUTOR_HOME", str(home))
    result = run_cli(*WRITERS[command], stdin="quit\n")
    line = one_line(result)
    assert result.returncode == 1
    assert line.startswith(f"smtp-tutor: {home}")
    assert ": a part of this path is a file, not a folder" in line
    assert "set SMTP_TUTOR_HOME to a folder you can write" in line
    assert "port" not in line  # serve used to blame the port


@pytest.mark.parametrize("command", ["mailbox", "mailbox clear --all --yes", "mailbox show you/1"])
def test_a_maildir_root_that_is_a_file_is_one_line(tmp_path: Path, command: str) -> None:
    root = tmp_path / "Maildir"
    root.write_text("a file where the Maildir should be")
    result = run_cli(*command.split(), "--maildir", str(root))
    line = one_line(result)
    assert result.returncode == 1
    assert line == (
        f"smtp-tutor: {root}: a part of this path is a file, not a folder "
        "(give another Maildir root with --maildir)"
    )


def world_readable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o555)


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder every user can reach (pytest's tmp_path is private to its owner)."""
    folder = Path(tempfile.mkdtemp(prefix="smtp-tutor-perm-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)


def run_as_a_user(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The CLI run in this process by a user the file permissions apply to: this one when
    it is not root; as root (whom they do not stop), the user nobody for the length of
    the run (seteuid: the saved user id stays root, so it is undone after)."""
    if os.geteuid() != 0:
        return run_cli(*args, stdin=stdin)
    import_every_module()  # nobody may not read the interpreter's own folder
    with _reachable_by_everyone(Path(__file__).resolve().parent.parent, Path(sys.prefix)):
        return _run_as_nobody(*args, stdin=stdin)


@contextlib.contextmanager
def _reachable_by_everyone(*paths: Path) -> Iterator[None]:
    """A checkout or venv inside a private folder (mktemp -d is 0700) is out of nobody's
    reach; open the folders above it to everyone for the run, then close them again."""
    changed: list[tuple[Path, int]] = []
    for folder in {p for start in paths for p in (start, *start.parents)}:
        mode = folder.stat().st_mode & 0o7777
        if mode & 0o005 != 0o005:
            folder.chmod(mode | 0o005)
            changed.append((folder, mode))
    try:
        yield
    finally:
        for path, mode in changed:
            path.chmod(mode)


def _run_as_nobody(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    groups = os.getgroups()
    os.setgroups([])
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        return run_cli(*args, stdin=stdin)
    finally:
        os.seteuid(0)
        os.setegid(0)
        os.setgroups(groups)


NOBODY = 65534


def import_every_module() -> None:
    """Every module a run may import late, imported now (as root)."""
    import importlib
    import pkgutil

    import tutor

    for module in pkgutil.walk_packages(tutor.__path__, "tutor."):
        importlib.import_module(module.name)
    "localhost".encode("idna")  # the codec socket functions load on first use


@pytest.mark.posix
@pytest.mark.parametrize("command", sorted(WRITERS))
def test_a_read_only_home_is_one_line_naming_the_path(
    open_folder: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """EACCES: a home the user may read but not write."""
    home = open_folder / "home"
    home.mkdir()
    home.chmod(0o555)
    monkeypatch.setenv("SMTP_TUTOR_HOME", str(home))
    result = run_as_a_user(*WRITERS[command], stdin="quit\n")
    line = one_line(result)
    assert result.returncode == 1
    assert re.match(rf"smtp-tutor: {re.escape(str(home))}/\S+: permission denied \(", line), line
    assert "set SMTP_TUTOR_HOME to a folder you can write" in line
    assert "port" not in line


@pytest.mark.posix
def test_a_read_only_maildir_is_one_line_and_keeps_its_messages(
    open_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = open_folder / "home"
    monkeypatch.setenv("SMTP_TUTOR_HOME", str(home))
    stored = run_cli("sandbox", "--plain", "--script", "-", stdin=SEED_SCRIPT)
    assert stored.returncode == 0, stored.stderr
    world_readable(home)
    new = home / "Maildir" / "you" / "new"
    new.chmod(0o555)
    listed = run_as_a_user("mailbox", "you")
    assert listed.returncode == 0 and "you/1" in listed.stdout
    cleared = run_as_a_user("mailbox", "clear", "--all", "--yes")
    line = one_line(cleared)
    assert cleared.returncode == 1
    assert re.match(
        rf"smtp-tutor: {re.escape(str(new))}/\S+: permission denied "
        r"\(0 deleted before this; the rest kept\)$",
        line,
    ), line
    assert len(list(new.iterdir())) == 1


@pytest.mark.posix
def test_an_unreadable_message_is_a_marked_entry(
    open_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = open_folder / "home"
    monkeypatch.setenv("SMTP_TUTOR_HOME", str(home))
    assert run_cli("sandbox", "--plain", "--script", "-", stdin=SEED_SCRIPT).returncode == 0
    assert run_cli("sandbox", "--plain", "--script", "-", stdin=SEED_SCRIPT).returncode == 0
    world_readable(home)
    [first, _] = sorted((home / "Maildir" / "you" / "new").iterdir(), key=os.path.getmtime)
    first.chmod(0o000)
    listed = run_as_a_user("mailbox", "you")
    no_internal_error(listed)
    assert listed.returncode == 0
    assert f"you/1  (cannot be read: permission denied: {first.name})" in listed.stdout
    assert "you/2  id " in listed.stdout
    shown = run_as_a_user("mailbox", "show", "you/1")
    assert one_line(shown) == (
        f"smtp-tutor: you/1 is no message: {first}: cannot be read: permission denied"
    )


# --- lesson and challenge files -------------------------------------------------------------


def lesson_with(tmp_path: Path, text: str, name: str = "01-broken.toml") -> Path:
    folder = tmp_path / "lessons"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


# (what replaces what in TINY, the line, what the problem says)
BROKEN = {
    "expect is a number": (
        ("expect = [250]", "expect = 250"),
        18,
        "expect must be a list of reply codes, like [250], not 250",
    ),
    "expect holds an array": (
        ("expect = [250]", "expect = [[250]]"),
        18,
        "expect: [250] is not a reply code (200-599)",
    ),
    "idle_timeout is text": (
        ("open_relay = false", 'idle_timeout = "abc"'),
        6,
        "[persona] idle_timeout must be a number of seconds from 1 to 3600, not 'abc'",
    ),
    "max_message_size is 1e300": (
        ("open_relay = false", "max_message_size = 1e300"),
        6,
        "[persona] max_message_size must be a whole number of octets from 1 to 1073741824, "
        "not 1e+300",
    ),
    "idle_timeout is nan": (
        ("open_relay = false", "idle_timeout = nan"),
        6,
        "[persona] idle_timeout must be a number of seconds from 1 to 3600, not nan",
    ),
    "idle_timeout is 0": (
        ("open_relay = false", "idle_timeout = 0"),
        6,
        "[persona] idle_timeout must be a number of seconds from 1 to 3600, not 0",
    ),
    "greylist is a number": (
        ("open_relay = false", "greylist = 1"),
        6,
        "[persona] greylist must be true or false, not 1",
    ),
    "a boolean for a size": (
        ("open_relay = false", "max_message_size = true"),
        6,
        "[persona] max_message_size must be a whole number of octets from 1 to 1073741824, "
        "not True",
    ),
    "nested arrays": (
        ("open_relay = false", "tls = " + "[" * 3000 + "]" * 3000),
        6,
        "values nested too deeply: a lesson needs a few",
    ),
    "nested tables": (
        ("open_relay = false", "tls = " + "{a = " * 3000 + "1" + "}" * 3000),
        6,
        "values nested too deeply: a lesson needs a few",
    ),
    "a number of 5000 digits": (
        ("expect = [250]", "expect = [" + "9" * 5000 + "]"),
        18,
        "not valid TOML: a number with thousands of digits",
    ),
    "predict is text": (
        ("expect = [250]", 'expect = [250]\npredict = "yes"'),
        19,
        "predict must be true or false, not 'yes'",
    ),
    "a check value of the wrong type": (
        ("expect = [250]", "expect = [250]\n[[steps.checks]]\nreply = [250]"),
        20,
        "check reply: the value must be a reply code (200-599), not [250]",
    ),
    "a question's fact is an array": (
        ("expect = [250]", 'expect = [250]\n\n[[questions]]\nask = "What?"\nfact = ["x"]'),
        22,
        "unknown fact ['x']",
    ),
    "a source that is no address": (
        ('kind = "connect"', 'kind = "connect"\nsource = "elsewhere"'),
        11,
        "source must be an IP address such as 127.0.0.2, not 'elsewhere'",
    ),
    "an accept pattern nested too deeply": (
        ("accept = ['(?i)^helo\\s']", "accept = ['" + "(" * 1000 + ")" * 1000 + "']"),
        17,
        "accept pattern '((((((((((",  # the pattern, cut short, then why
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_lesson_value_is_file_line_what(tmp_path: Path, name: str) -> None:
    (old, new), line, message = BROKEN[name]
    assert old in TINY
    folder = lesson_with(tmp_path, TINY.replace(old, new))
    path = folder / "01-broken.toml"
    result = run_cli("--lessons-dir", str(folder), "learn", "1", "--plain", "--script", "-")
    assert one_line(result).startswith(f"smtp-tutor: {path}:{line}: {message}")
    assert result.returncode == 1
    checked = run_cli("lessons", "validate", "--static", str(folder))
    no_internal_error(checked)
    assert checked.returncode == 1
    assert f"{path}:{line}: {message}"[:60] in checked.stdout.replace("\n", " ")


def test_a_lesson_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "01-latin1.toml").write_bytes(TINY.encode() + b"# caf\xe9\n")
    result = run_cli("--lessons-dir", str(folder), "lessons")
    byte = len(TINY.encode()) + len("# caf")
    assert one_line(result) == (
        f"smtp-tutor: {folder / '01-latin1.toml'}:19: cannot read: not UTF-8 text (byte {byte})"
    )


@pytest.mark.posix
def test_a_fifo_named_as_a_lesson_does_not_hang(tmp_path: Path) -> None:
    folder = lesson_with(tmp_path, TINY, "01-tiny.toml")
    os.mkfifo(folder / "02-fifo.toml")
    result = run_cli("lessons", "validate", "--static", str(folder / "02-fifo.toml"))
    no_internal_error(result)
    assert f"{folder / '02-fifo.toml'}:1: cannot read: not a regular file but a FIFO" in (
        result.stdout.replace("\n", " ")
    )


def test_the_busy_loop_and_the_hang_of_bad_persona_values_end_in_one_line(
    tmp_path: Path,
) -> None:
    """The repro: `max_message_size = 1e300` dropped every connection and `learn` printed
    thousands of lines a second; `idle_timeout = "abc"` gave asyncio tracebacks and a
    hang. The process exit is the point, so a real process."""
    settings = 'max_message_size = 1e300\nidle_timeout = "abc"'
    folder = lesson_with(tmp_path, TINY.replace("open_relay = false", settings))
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "tutor", "--lessons-dir", str(folder), "learn", "1"],
        input="helo a.b.c\nquit\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert not result.stdout
    path = folder / "01-broken.toml"
    assert one_line(result).startswith(f"smtp-tutor: {path}:6: [persona] max_message_size")
    checked = run_cli("lessons", "validate", "--static", str(folder))
    assert f"{path}:7: [persona] idle_timeout" in checked.stdout


CHALLENGE = """\
format_version = 1
id = "broken"
title = "A broken challenge"

[persona]
greylist = "sometimes"

[[steps]]
id = "connect"
kind = "connect"
explain = "Connect."

[[steps]]
id = "goal"
kind = "goal"
goal = "Store a message."
explain = "Store one."
command = "helo a\\nmail from:<a@b.c>\\nrcpt to:<you@tutor.test>\\ndata\\nhi\\n."
counter_example = "helo a"
[[steps.checks]]
copies = -1
"""


def test_a_broken_challenge_is_file_line_what(tmp_path: Path) -> None:
    folder = tmp_path / "challenges"
    folder.mkdir()
    path = folder / "01-broken.toml"
    path.write_text(CHALLENGE, encoding="utf-8")
    played = run_cli("challenge", "play", "1", "--challenges-dir", str(folder), "--plain")
    assert played.returncode == 1
    assert one_line(played) == (
        f"smtp-tutor: {path}:6: [persona] greylist must be true or false, not 'sometimes'"
    )
    checked = run_cli("challenge", "validate", "--static", "--challenges-dir", str(folder))
    no_internal_error(checked)
    assert checked.returncode == 1
    text = checked.stdout.replace("\n", " ")
    assert f"{path}:6: [persona] greylist" in text
    assert "the value must be a whole number, 0 or more, not -1" in text


# Arbitrary TOML documents in the lesson shape: a lesson every part of which is there, with
# a few of its values (or keys it may not have) replaced by values of any TOML type; and
# documents made of a few such keys alone. A document is (lesson keys, persona or None,
# steps as (step keys, checks), questions, the depth of one more value nested at the end).

toml_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),  # nan and inf are TOML too
    st.text(max_size=16),
    st.sampled_from(["250", "helo a.b.c", "(?i)^helo\\s", "(", "you", "5.1.1", "127.0.0.2"]),
    st.just("1979-05-27T07:32:00Z"),  # a datetime, written bare
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
WELL_TYPED = {
    "id": st.sampled_from(["a", "helo", "quit", "Bad Id"]),
    "kind": st.sampled_from(["connect", "command", "data", "goal", "read", "nope"]),
    "expect": st.lists(st.integers(100, 700), max_size=2),
    "idle_timeout": st.floats(0, 5000) | st.integers(0, 5000),
    "max_message_size": st.integers(-1, 2**31),
    "copies": st.integers(-2, 5),
    "reply": st.integers(100, 700),
    "fact": st.sampled_from(["queue_id", "nope"]),
}
KEYS = sorted(
    {*loader._LESSON_KEYS, *LESSON_SETTINGS, "max_connections", "x-unknown"}
    | {"kind", "explain", "after", "command", "lines", "accept", "expect", "hints"}
    | {"on_reply", "goal", "predict", "optional", "counter_example", "source", "dns"}
    | {"ask", "fact", *CHECK_NAMES}
)
BASE: tuple[Any, ...] = (
    {"format_version": 1, "id": "tiny", "title": "A tiny lesson", "learned": ["x"]},
    {"open_relay": False, "idle_timeout": 300, "max_message_size": 1000},
    [
        ({"id": "connect", "kind": "connect", "explain": "Connect.", "source": "127.0.0.1"}, []),
        (
            {
                "id": "helo",
                "explain": "Say hello.",
                "command": "helo a.b.c",
                "accept": ["(?i)^helo\\s"],
                "expect": [250],
                "predict": True,
                "on_reply": {"5xx": "No."},
            },
            [],
        ),
        (
            {
                "id": "goal",
                "kind": "goal",
                "goal": "Store one.",
                "explain": "Store.",
                "command": "helo a\nmail from:<a@b.c>\nrcpt to:<you@tutor.test>\ndata\nhi\n.",
                "counter_example": "helo a",
            },
            [{"copies": 1}, {"stored_in": "you"}, {"helo_claims": True}, {"reply": 250}],
        ),
    ],
    [{"ask": "Which queue id?", "fact": "queue_id"}],
    0,
)


def value_for(key: str) -> st.SearchStrategy[Any]:
    """Any TOML value, or one of the key's own type that may still be out of range."""
    return st.one_of(toml_values, WELL_TYPED[key]) if key in WELL_TYPED else toml_values


replacements = st.lists(
    st.tuples(
        st.integers(0, 1000),
        st.sampled_from(KEYS).flatmap(lambda key: st.tuples(st.just(key), value_for(key))),
    ),
    min_size=1,
    max_size=3,
)


def mutated(changes: list[tuple[int, tuple[str, Any]]], depth: int) -> tuple[Any, ...]:
    """BASE with each change made in one of its tables (the table picked by number)."""
    top, persona, steps, questions, _ = json.loads(json.dumps(BASE))  # a deep copy
    steps = [(step, checks) for step, checks in steps]
    tables = [top, persona, *(step for step, _ in steps), *questions]
    tables += [check for _, checks in steps for check in checks]
    for which, (key, value) in changes:
        tables[which % len(tables)][key] = value
    return top, persona, steps, questions, depth


def few_keys(count: int) -> st.SearchStrategy[dict[str, Any]]:
    pair = st.sampled_from(KEYS).flatmap(lambda key: st.tuples(st.just(key), toml_values))
    return st.lists(pair, max_size=count).map(dict)


depths = st.sampled_from([0, 0, 0, 0, 5, 3000])  # one more value nested this deep
lesson_documents = st.one_of(
    st.builds(mutated, replacements, depths),
    st.tuples(
        few_keys(4),
        st.none() | few_keys(3),
        st.lists(st.tuples(few_keys(4), st.lists(few_keys(1), max_size=2)), max_size=2),
        st.lists(few_keys(2), max_size=1),
        depths,
    ),
)


def toml_string(text: str) -> str:
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("-inf" if value < 0 else "inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return value if value == "1979-05-27T07:32:00Z" else toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    pairs = (f"{toml_key(key)} = {toml_value(item)}" for key, item in value.items())
    return "{" + ", ".join(pairs) + "}"


def toml_document(drawn: tuple[Any, ...]) -> str:
    top, persona, step_tables, questions, depth = drawn
    lines = pairs(top)
    if depth:
        lines.append("deep = " + "[" * depth + "]" * depth)
    if persona is not None:
        lines += ["[persona]", *pairs(persona)]
    for step, step_checks in step_tables:
        lines += ["[[steps]]", *pairs(step)]
        for check in step_checks:
            lines += ["[[steps.checks]]", *pairs(check)]
    for question in questions:
        lines += ["[[questions]]", *pairs(question)]
    return "\n".join(lines) + "\n"


def pairs(table: dict[str, Any]) -> list[str]:
    return [f"{toml_key(key)} = {toml_value(value)}" for key, value in table.items()]


def check_lesson_file(path: Path) -> None:
    """The loader loads the file or reports problems; a lesson it loads can be played."""
    problems: list[loader.Problem] = []
    lesson = loader.parse(path, 1, problems)
    count = len(path.read_text(encoding="utf-8").splitlines())
    for problem in problems:
        assert 1 <= problem.line <= max(count, 1), problem
        assert str(problem).startswith(f"{path}:{problem.line}: ")
    if lesson is None or problems:
        assert problems
        return
    persona = persona_for(lesson)  # every setting within what the server can honour
    for key in lesson.persona:
        assert not LESSON_SETTINGS[key].problem(key, getattr(persona, key))
    for step in lesson.steps:
        assert all(isinstance(code, int) and 200 <= code <= 599 for code in step.expect)
        for check in step.checks:
            assert CHECK_VALUES[check.kind]
            evaluate(check.kind, check.value, [])  # judged without a TypeError


@SETTINGS
@given(drawn=lesson_documents)
def test_any_toml_document_in_the_lesson_shape_loads_or_is_problems(
    scratch: Path, drawn: tuple[Any, ...]
) -> None:
    path = scratch / "01-random.toml"
    path.write_text(toml_document(drawn), encoding="utf-8")
    check_lesson_file(path)


@CLI_SETTINGS
@pytest.mark.slow  # each example runs the whole CLI twice; the loader's own test is fast
@given(drawn=lesson_documents)
def test_any_toml_document_through_validate_and_learn_is_problems_or_a_lesson(
    scratch: Path, drawn: tuple[Any, ...]
) -> None:
    for old in scratch.iterdir():
        old.unlink()
    path = scratch / "01-random.toml"
    path.write_text(toml_document(drawn), encoding="utf-8")
    checked = run_cli("lessons", "validate", "--static", str(path))
    no_internal_error(checked)
    assert checked.returncode in (0, 1)
    if checked.returncode == 1:  # learn refuses the same file with its first problem
        learned = run_cli("--lessons-dir", str(scratch), "learn", "1", "--script", "-")
        assert one_line(learned).startswith(f"smtp-tutor: {path}:")


def test_the_shipped_lessons_and_challenges_pass_the_value_checks() -> None:
    for folder in (LESSONS, LESSONS.parent / "challenges"):
        for path in sorted(folder.glob("*.toml")):
            check_lesson_file(path)


def test_every_check_kind_has_its_value_type() -> None:
    assert set(CHECK_VALUES) == set(CHECK_NAMES)


# --- a lesson server that never greets ------------------------------------------------------


def test_a_connect_that_keeps_failing_stops_the_lesson_with_one_error(tmp_path: Path) -> None:
    """A real server that refuses every session (421 at once, as when it is full): the
    driver gives up after CONNECT_TRIES in a row instead of reconnecting for ever."""
    lesson = loader.load(LESSONS / "01-conversation.toml", 1)
    server = TeachingServer(tmp_path / "Maildir", Persona(max_connections=0))
    driver = LessonDriver(lesson, LessonRun(lesson), tmp_path / "Maildir", server=server)
    server.start()
    try:
        for _ in range(CONNECT_TRIES - 1):
            turn = driver.connect()
            assert [e.code for e in turn.exchanges] == [421]
        with pytest.raises(ConnectFailed) as failed:
            driver.connect()
        host, port = server.address
        assert str(failed.value) == (
            f"could not open a session with the lesson's server at {host}:{port}, "
            f"{CONNECT_TRIES} tries in a row (it greeted with 421); the lesson stops here"
        )
    finally:
        driver.close()
        server.stop()


# --- Maildir oddities ----------------------------------------------------------------------


@pytest.fixture
def odd_maildir(tutor_home: Path) -> Path:
    """A Maildir with one real message (stored by the real server through the sandbox)
    and, beside it in new/, a symlink loop, a FIFO, a link to a device, a link to
    nothing, a folder, and a file of random bytes; bob's cur/ is gone, alice is a file."""
    stored = run_cli("sandbox", "--plain", "--script", "-", stdin=SEED_SCRIPT)
    assert stored.returncode == 0, stored.stderr
    root = tutor_home / "Maildir"
    new = root / "you" / "new"
    later = time.time() + 10
    odd = {
        "loop": lambda path: path.symlink_to(path.name),
        "nothing": lambda path: path.symlink_to("missing"),
        "random": lambda path: path.write_bytes(os.urandom(3000)),
        "folder": lambda path: path.mkdir(),
    }
    if hasattr(os, "mkfifo"):
        odd["fifo"] = os.mkfifo
        odd["zero"] = lambda path: path.symlink_to("/dev/zero")
    for index, (name, make) in enumerate(odd.items()):
        make(new / name)
        os.utime(new / name, (later + index, later + index), follow_symlinks=False)
    shutil.rmtree(root / "bob" / "cur")
    shutil.rmtree(root / "alice")
    (root / "alice").write_text("a file, not a mailbox")
    return root


@pytest.mark.posix
def test_mailbox_list_marks_every_odd_entry(odd_maildir: Path) -> None:
    result = run_cli("mailbox", "you")
    no_internal_error(result)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[1].startswith("  you/1  id ")  # the real message
    marked = [line for line in lines if re.match(r"  you/\d  \(", line)]
    assert marked == [
        "  you/2  (cannot be read: a loop of symbolic links: loop)",
        "  you/3  (a symbolic link to a missing file: nothing)",
        "  you/5  (not a regular file but a FIFO: fifo)",
        "  you/6  (not a regular file but a device: zero)",
    ]
    at = lines.index("  you/4  id   received ")  # random bytes: no trace headers
    assert lines[at + 1] == ("    envelope: (unknown: no trace headers, not stored by this server)")
    assert run_cli("mailbox", "bob").stdout.strip() == "bob's mailbox: empty"  # no cur/
    missing = run_cli("mailbox", "alice")
    assert one_line(missing).startswith("smtp-tutor: no mailbox 'alice' under ")
    wide = run_cli("mailbox")
    assert wide.returncode == 0 and "alice" not in wide.stdout


@pytest.mark.posix
def test_mailbox_show_and_clear_with_odd_entries(odd_maildir: Path) -> None:
    assert run_cli("mailbox", "show", "you/1").returncode == 0
    random = run_cli("mailbox", "show", "you/4")  # random bytes, shown escaped
    no_internal_error(random)
    assert random.returncode == 0 and "\x1b" not in random.stdout
    fifo = run_cli("mailbox", "show", "you/5")
    assert one_line(fifo) == (
        f"smtp-tutor: you/5 is no message: {odd_maildir / 'you' / 'new' / 'fifo'}: "
        "not a regular file but a FIFO"
    )
    cleared = run_cli("mailbox", "clear", "--all", "--yes")
    no_internal_error(cleared)
    assert cleared.returncode == 0
    assert cleared.stdout.startswith("Deleted 6 messages from every mailbox")
    assert [p.name for p in (odd_maildir / "you" / "new").iterdir()] == ["folder"]
    assert "empty" in run_cli("mailbox", "you").stdout


def test_a_maildir_root_in_a_symlink_loop_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "loop"
    root.symlink_to(root.name)
    result = run_cli("mailbox", "--maildir", str(root))
    assert one_line(result) == (
        f"smtp-tutor: {root}: a loop of symbolic links (give another Maildir root with --maildir)"
    )
    assert result.returncode == 1
