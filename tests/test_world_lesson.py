"""Lesson 12 and the world's challenges: the learner as the sending server.

The pty test takes lesson 12 the way a learner with a second terminal would: the MX
hosts come from a real `dig` against the DNS port the lesson's screen shows, and are
typed in the order of their preferences. The rest checks the pieces: reading a dig
line, Postfix's retry schedule, the DSNs, and the gate that keeps every connection
inside the world.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.pty_session import tutor_in_pty
from tests.support import run_cli
from tutor.engine.drivers import driver_for
from tutor.engine.loader import load
from tutor.engine.runner import LessonRun
from tutor.engine.sending import DELAY_WARNING, clock, retry_times
from tutor.engine.world_link import WorldLessonServer, dig_question
from tutor.smtp.events import DsnDelivered, HostReached

REPO = Path(__file__).resolve().parent.parent
LESSON = REPO / "lessons" / "12-sending-server.toml"


def dig(port: int, *question: str) -> list[str]:
    """A real dig, +short, against the world's DNS server."""
    dig_path = shutil.which("dig")
    assert dig_path, "dig is needed (Debian: bind9-dnsutils; .ci/run installs it)"
    result = subprocess.run(
        [dig_path, "@127.0.0.1", "-p", str(port), "+short", "+norecurse", *question],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.split("\n")[:-1]


def by_preference(records: list[str]) -> list[str]:
    """`20 mx2.example.org.` lines to host names, lowest preference first."""
    pairs = sorted((int(p), host.rstrip(".")) for p, host in (r.split() for r in records))
    return [host for _, host in pairs]


@pytest.mark.posix
@pytest.mark.slow
def test_lesson_12_typing_what_dig_printed(tutor_home: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("pseudo-terminals are POSIX")
    tutor = tutor_in_pty("learn", "12", columns=160)
    port = int(tutor.expect(r"its DNS server is 127\.0\.0\.1 port (\d+)").group(1))
    tutor.expect(r"Press Enter to continue")
    tutor.child.sendline("")
    # Step 2, asked in "another terminal": the lesson sees the question the server got.
    hosts = by_preference(dig(port, "MX", "example.org"))
    assert hosts == ["mx1.example.org", "mx2.example.org"]
    tutor.type("")
    tutor.expect(r"was asked MX example\.org")
    tutor.type(f"connect {hosts[0]}")
    tutor.expect(r"421 4\.3\.2 mx1\.example\.org")
    tutor.type(f"connect {hosts[1]}")
    tutor.expect(r"220 mx2\.example\.org")
    for line in ("ehlo mta.tutor.test", "mail from:<you@tutor.test>", "rcpt to:<bob@example.org>"):
        tutor.type(line)
    tutor.expect(r"Predict first")
    tutor.child.sendline("5")
    tutor.type("rcpt to:<nobody@example.org>")
    tutor.expect(r"550 5\.1\.1")
    for line in ("data", "Subject: by DNS", "", "Found through MX 20.", ".", "quit"):
        tutor.type(line)
    tutor.expect(r"Press Enter to continue")
    tutor.child.sendline("")  # the bounce for nobody@example.org
    tutor.expect(r"Action: failed, Status: 5\.1\.1")
    offline = by_preference(dig(port, "MX", "offline.example"))
    tutor.type("")
    tutor.expect(r"was asked MX offline\.example")
    tutor.type(f"connect {offline[0]}")
    tutor.expect(r"Connection refused")
    tutor.expect(r"Press Enter to continue")
    tutor.child.sendline("")  # the queue on its simulated clock
    tutor.expect(r"\+4h 35m")
    tutor.expect(r"Action: delayed, Status: 4\.4\.1")
    tutor.expect(r"Press Enter to continue")
    tutor.child.sendline("")
    for answer in ("mx2.example.org", "delayed", "4.4.1"):
        tutor.type(answer, prompt=r"answer>")
    tutor.expect(r"3 of 3 right")
    tutor.expect(r"Lesson 12 done")
    assert tutor.finish() == 0
    progress = json.loads((tutor_home / "progress.json").read_text())
    assert progress["lessons"]["sending-server"]["status"] == "done"
    world = tutor_home / "world"
    bob = list((world / "example.org" / "bob" / "new").iterdir())
    assert len(bob) == 1 and b"Found through MX 20." in bob[0].read_bytes()
    reports = sorted((world / "tutor.test" / "you" / "new").iterdir())
    texts = [r.read_bytes() for r in reports]
    assert any(b"Action: failed" in t and b"Status: 5.1.1" in t for t in texts)
    assert any(b"Action: delayed" in t and b"Will-Retry-Until:" in t for t in texts)


@pytest.mark.slow
def test_connections_go_only_to_the_world(tmp_path: Path) -> None:
    lesson = load(LESSON, 12)
    with WorldLessonServer(tmp_path / "world") as world:
        driver = driver_for(lesson, LessonRun(lesson), tmp_path / "Maildir", server=world)
        driver.start()
        for where in ("8.8.8.8", "127.0.0.99", "203.0.113.7", "no-mx.example"):
            turn = driver.send(f"connect {where}")
            assert "not a host of the simulated world" in turn.error, where
            assert not any(isinstance(e, HostReached) for e in turn.events)
        turn = driver.send("connect mx.offline.example")
        reached = [e for e in turn.events if isinstance(e, HostReached)]
        assert reached and reached[0].code == 0 and "refused" in reached[0].error.lower()
        assert "not connected" in driver.send("ehlo me.example").error
        driver.close()


@pytest.mark.slow
def test_validate_replays_lesson_12_and_the_world_challenges() -> None:
    assert run_cli("lessons", "validate", str(LESSON)).returncode == 0
    for name in ("08-no-mx.toml", "09-null-mx.toml"):
        result = run_cli("challenge", "validate", str(REPO / "challenges" / name))
        assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("line", "name", "rdtype"),
    [
        ("dig MX example.org", "example.org", "MX"),
        ("dig example.org mx", "example.org", "MX"),
        ("dig @127.0.0.1 -p 1053 MX Example.ORG. +short", "example.org", "MX"),
        ("dig -t txt _dmarc.tutor.test", "_dmarc.tutor.test", "TXT"),
        ("dig a-only.example", "a-only.example", "A"),
    ],
)
def test_a_dig_line_is_read_as_dig_reads_it(line: str, name: str, rdtype: str) -> None:
    question = dig_question(line)
    assert (question.name, question.rdtype) == (name, rdtype)


def test_a_dig_line_without_a_name_says_what_to_type() -> None:
    with pytest.raises(ValueError, match=r"dig MX example\.org"):
        dig_question("dig MX +short")


def test_the_queue_waits_as_postfix_does() -> None:
    times = retry_times(DELAY_WARNING + 4000)
    # 300 s, doubling, capped at 4000 s (minimal_backoff_time, maximal_backoff_time)
    waits = [b - a for a, b in zip([0, *times], times, strict=False)]
    assert waits[:5] == [300, 600, 1200, 2400, 4000]
    assert set(waits[4:]) == {4000}
    assert times[-1] >= DELAY_WARNING and times[-2] < DELAY_WARNING
    assert [clock(t) for t in (0, 300, 4500, 5 * 86400)] == ["+0m", "+5m", "+1h 15m", "+5d"]


def test_a_world_step_outside_a_world_lesson_is_a_file_problem(tmp_path: Path) -> None:
    text = LESSON.read_text().replace("world = true\n", "")
    path = tmp_path / "12-no-world.toml"
    path.write_text(text)
    result = run_cli("lessons", "validate", "--static", str(path))
    assert result.returncode == 1
    assert re.search(r"lookup step runs in the simulated internet: add world = true", result.stdout)


def test_a_dsn_event_is_what_the_questions_read() -> None:
    from tutor.engine.questions import fact

    events = [
        HostReached(1, "mx2.example.org", "127.0.0.12", 25, 220),
        DsnDelivered(
            1, "delayed", "4.4.1", "a@offline.example", "x; y", "you@tutor.test", "you", "Q1"
        ),
    ]
    assert fact("dsn_action", events) == "delayed"
    assert fact("dsn_status", events) == "4.4.1"
    assert fact("dsn_recipient", events) == "a@offline.example"


@pytest.mark.slow
def test_lesson_12_where_only_127_0_0_1_can_be_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """macOS without aliases: every host on 127.0.0.1 at a port of its own. The lesson
    still replays whole, and connect says where it really went."""
    from tutor.engine import validate
    from tutor.server import world as world_module

    monkeypatch.setattr(world_module, "loopback_aliases_work", lambda: False)
    lesson = load(LESSON, 12)
    assert validate.replay_lesson(lesson) == []
    with WorldLessonServer(tmp_path / "world") as world:
        assert not world.shared_port
        driver = driver_for(lesson, LessonRun(lesson), tmp_path / "Maildir", server=world)
        driver.start()
        turn = driver.send("connect mx2.example.org")
        assert "can use 127.0.0.1 only" in turn.note and "instead of 127.0.0.12" in turn.note
        [reached] = [e for e in turn.events if isinstance(e, HostReached)]
        assert (reached.host, reached.address, reached.code) == (
            "mx2.example.org",
            "127.0.0.1",
            220,
        )
        driver.close()


def catch_up(driver: Any, until: Callable[[], bool] | None = None) -> list[Any]:
    """Empty lines until the other client's session has come through the server's
    mirror (it arrives from the server's process a moment later), for 10 s at most."""
    deadline = time.monotonic() + 10
    events: list[Any] = []
    while time.monotonic() < deadline:
        events += driver.send("").events
        if until() if until is not None else events:
            return events
        time.sleep(0.05)
    return events


@pytest.mark.slow
def test_a_telnet_in_another_terminal_is_judged_too(tmp_path: Path) -> None:
    """The lesson follows sessions it did not open (here smtplib, standing in for a
    telnet in a second window): an empty line catches up with what the hosts saw."""
    import smtplib

    lesson = load(LESSON, 12)
    run = LessonRun(lesson)
    with WorldLessonServer(tmp_path / "world") as world:
        driver = driver_for(lesson, run, tmp_path / "Maildir", server=world)
        driver.start()
        run.go_to(lesson.step_index("primary"))
        mx1, port = world.where("127.0.0.11")
        with pytest.raises(smtplib.SMTPConnectError):
            smtplib.SMTP(mx1, port, timeout=10)
        [reached] = [e for e in catch_up(driver) if isinstance(e, HostReached)]
        assert reached.outside and (reached.host, reached.code) == ("mx1.example.org", 421)
        assert run.step.id == "backup"
        mx2, port = world.where("127.0.0.12")
        with smtplib.SMTP(mx2, port, local_hostname="mta.tutor.test", timeout=10) as client:
            client.ehlo("mta.tutor.test")
            client.mail("you@tutor.test")
            client.rcpt("bob@example.org")
        catch_up(driver, until=lambda: run.step.id == "rcpt-unknown")
        assert run.step.id == "rcpt-unknown", run.step.id
        # the tutor's own sessions are never counted twice
        assert driver.send("").note.startswith("nothing new")
        driver.close()


INBOX_LESSON = """
format_version = 1
id = "inbox-probe"
title = "Inbox probe"
world = true

[[steps]]
id = "send"
kind = "goal"
goal = "Deliver to bob at example.org."
explain = "Deliver."
command = '''
connect mx2.example.org
ehlo mta.tutor.test
mail from:<you@tutor.test>
rcpt to:<bob@example.org>
data'''
lines = ["Subject: probe", "", "hello"]
[[steps.checks]]
delivered_to = "bob@example.org"

[[steps]]
id = "read"
kind = "inbox"
mailbox = "bob@example.org"
explain = "Read bob's copy."
[[steps.checks]]
auth_result = "spf=pass"
"""


@pytest.mark.slow
def test_an_inbox_step_reads_the_stored_copy_and_its_verdicts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tutor.engine import world_driver
    from tutor.engine.answers import canonical
    from tutor.engine.questions import fact
    from tutor.smtp.events import MailboxRead

    path = tmp_path / "01-inbox.toml"
    path.write_text(INBOX_LESSON)
    lesson = load(path, 1)
    run = LessonRun(lesson)
    with WorldLessonServer(tmp_path / "world") as world:
        driver = driver_for(lesson, run, tmp_path / "Maildir", server=world)
        driver.start()
        for line in canonical(run.step).lines:
            driver.send(line)
        assert run.step.id == "read"
        turn = driver.run_queue(run.step)  # type: ignore[attr-defined]
        [read] = [e for e in turn.events if isinstance(e, MailboxRead)]
        assert read.ref == "bob/1" and read.subject == "probe"
        assert "spf=pass" in read.results and run.finished
        assert fact("spf_result", driver.history) == "pass"
        # nothing new since: the next read says so instead of showing the same copy
        monkeypatch.setattr(world_driver, "INBOX_WAIT", 0.3)
        assert "nothing new" in driver.run_queue(lesson.steps[1]).error  # type: ignore[attr-defined]
        driver.close()


@pytest.mark.posix
@pytest.mark.slow
def test_lesson_13_signed_forwarded_and_broken(tutor_home: Path) -> None:
    """Lesson 13 in a real terminal, the key asked for with a real dig: the verdicts on
    screen are those bob's server stored for each of the three copies."""
    tutor = tutor_in_pty("learn", "13", columns=160)
    port = int(tutor.expect(r"its DNS server is 127\.0\.0\.1 port (\d+)").group(1))
    tutor.expect(r"Press Enter to continue")
    tutor.child.sendline("")
    key = "".join(dig(port, "TXT", "lesson._domainkey.tutor.test")).replace('" "', "")
    assert key.startswith('"v=DKIM1; k=rsa; p=')
    tutor.type("")
    tutor.expect(r"was asked TXT lesson\._domainkey\.tutor\.test")
    for line in (
        "connect smtp.tutor.test",
        "ehlo client.example",
        "starttls",
        "ehlo client.example",
        "auth plain AHlvdQB0dXRvci1wYXNzd29yZA==",
        "mail from:<you@tutor.test>",
        "rcpt to:<bob@example.org>",
        "data",
        "From: you@tutor.test",
        "Subject: Signed",
        "",
        "Signed in a test.",
        ".",
    ):
        tutor.type(line)
    tutor.expect(r"Press Enter to continue")
    tutor.child.sendline("")
    tutor.expect(r"verdicts \(Authentication-Results\): dkim=pass, spf=pass, dmarc=pass")
    for via, subject in (("carol", "Forwarded"), ("list", "To the list")):
        for line in (
            "mail from:<you@tutor.test>",
            f"rcpt to:<{via}@forward.example>",
            "data",
            "From: you@tutor.test",
            f"Subject: {subject}",
            "",
            "Hello.",
            ".",
        ):
            tutor.type(line)
        tutor.expect(r"Press Enter to continue")
        tutor.child.sendline("")
        if via == "carol":
            tutor.expect(r"verdicts \(Authentication-Results\): dkim=pass, spf=fail, dmarc=pass")
        else:
            tutor.expect(r"Subject: \[list\] To the list")
            tutor.expect(r"verdicts \(Authentication-Results\): dkim=fail, spf=fail, dmarc=fail")
    tutor.type("quit")
    for answer in ("fail", "fail"):
        tutor.type(answer, prompt=r"answer>")
    tutor.expect(r"2 of 2 right")
    tutor.expect(r"Lesson 13 done")
    assert tutor.finish() == 0
