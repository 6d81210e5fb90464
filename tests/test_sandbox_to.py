"""`smtp-tutor sandbox --to DOMAIN`: the world in the background, the route from its DNS
server, each host tried in order on screen, then the session with the one that says 220.

Every test runs the real world (a real DNS server and one real MTA process per host) on
loopback; the tutor connects only where `routing.reachable` allows.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.support import pipe_console, run_cli, server_processes
from tutor.server.world import RunningMta, WorldMap
from tutor.world.dnsdata import WORLD_HOSTS
from tutor.world.routing import Hop, Route, RouteKind

SESSION = [
    "EHLO client.example",
    "MAIL FROM:<you@tutor.test>",
    "RCPT TO:<bob@example.org>",
    "DATA",
    "From: You <you@tutor.test>",
    "To: Bob <bob@example.org>",
    "Subject: routed by MX",
    "",
    "Hello Bob, by way of mx2.",
    ".",
    "/mailbox",
    "QUIT",
]


def sandbox_to(domain: str, maildir: Path, *lines: str) -> subprocess.CompletedProcess[str]:
    stdin = "".join(line + "\n" for line in lines)
    return run_cli("sandbox", "--to", domain, "--maildir", str(maildir), "--plain", stdin=stdin)


def one_line(text: str) -> str:
    """The screen's text with its wrapping undone, to match a sentence as a whole."""
    return re.sub(r"\s+", " ", text)


def test_example_org_tries_the_busy_mx_first_then_mails_bob_through_mx2(
    tutor_home: Path, tmp_path: Path
) -> None:
    maildir = tmp_path / "world"
    before = len(server_processes(os.getpid()))
    result = sandbox_to("example.org", maildir, *SESSION)
    assert result.returncode == 0, result.stdout + result.stderr
    out = one_line(result.stdout)
    # the DNS answer, the route, each try in order, then the session
    assert "example.org MX 10 mx1.example.org, 20 mx2.example.org" in out
    assert "mx1.example.org A 127.0.0.11" in out and "mx2.example.org A 127.0.0.12" in out
    assert "the lowest preference is tried first" in out
    busy = re.search(
        r"mx1\.example\.org \[127\.0\.0\.11\]:(\d+) answered 421 4\.3\.2 .*?busy.*? — "
        r"a temporary failure, trying the next MX",
        out,
    )
    assert busy, out
    port = busy.group(1)
    session = f"mx2.example.org [127.0.0.12]:{port} answered 220: this is the session"
    assert session in out
    assert out.index(busy.group(0)) < out.index(session) < out.index("SMTP sandbox.")
    assert "Connected to mx2.example.org" in out
    assert "S: 220 mx2.example.org ESMTP" in out
    # the learner's session, explained as usual, and the message where the world keeps it
    assert "S: 250 2.1.5 <bob@example.org>" in out
    assert "The server stored message" in out and "bob (bob@example.org)" in out
    assert "bob's mailbox" in out and "Subject: routed by MX" in out
    stored = list((maildir / "example.org" / "bob" / "new").iterdir())
    assert len(stored) == 1
    assert b"Hello Bob, by way of mx2." in stored[0].read_bytes()
    assert len(server_processes(os.getpid())) == before, "every MTA of the world stopped"


def test_a_domain_without_mx_is_reached_at_its_a_record(tutor_home: Path, tmp_path: Path) -> None:
    result = sandbox_to("a-only.example", tmp_path / "world", "QUIT")
    assert result.returncode == 0, result.stdout + result.stderr
    out = one_line(result.stdout)
    assert "a-only.example MX none: no MX, so the A record is used" in out
    assert "a-only.example A 127.0.0.16" in out
    assert "(RFC 5321 §5.1, the implicit MX)" in out
    assert re.search(
        r"a-only\.example \[127\.0\.0\.16\]:\d+ answered 220: this is the session", out
    )
    assert "S: 220 a-only.example ESMTP" in out


def test_a_refused_connection_moves_on_to_the_next_mx(tutor_home: Path, tmp_path: Path) -> None:
    result = sandbox_to("down.example", tmp_path / "world", "QUIT")
    assert result.returncode == 0, result.stdout + result.stderr
    out = one_line(result.stdout)
    assert re.search(
        r"mx1\.down\.example \[127\.0\.0\.14\]:\d+: connection refused \(nothing listens "
        r"there\): trying the next MX",
        out,
    ), out
    assert re.search(r"mx2\.down\.example \[127\.0\.0\.15\]:\d+ answered 220", out)


def test_a_null_mx_gives_up_at_once_without_a_session(tutor_home: Path, tmp_path: Path) -> None:
    before = len(server_processes(os.getpid()))
    result = sandbox_to("nomail.example", tmp_path / "world", "EHLO never.sent")
    assert result.returncode == 1, result.stdout + result.stderr
    out = one_line(result.stdout)
    assert "nomail.example MX 0 . (a null MX: this domain takes no mail)" in out
    assert "No session: nomail.example publishes a null MX (MX 0 .)" in out
    assert "gives up at once, without connecting (RFC 7505)." in out
    assert "SMTP sandbox." not in out and "EHLO" not in out
    assert len(server_processes(os.getpid())) == before


def test_nxdomain_and_an_unreachable_only_mx_end_with_status_1(
    tutor_home: Path, tmp_path: Path
) -> None:
    missing = sandbox_to("nobody.invalid", tmp_path / "world")
    assert missing.returncode == 1
    assert "does not exist (NXDOMAIN): a permanent failure. No session." in one_line(missing.stdout)
    offline = sandbox_to("offline.example", tmp_path / "world")
    assert offline.returncode == 1
    out = one_line(offline.stdout)
    assert "connection refused (nothing listens there): no host is left to try" in out
    assert "keeps the message in its queue" in out and "No session." in out


def test_a_domain_outside_the_world_is_refused_by_its_dns_and_is_a_usage_error(
    tutor_home: Path, tmp_path: Path
) -> None:
    result = sandbox_to("gmail.com", tmp_path / "world")
    assert result.returncode == 2
    assert result.stdout == ""
    error = result.stderr.strip()
    assert "\n" not in error
    assert "REFUSED for gmail.com" in error and "never asks the real internet" in error
    for domain in ("example.org", "a-only.example", "nomail.example", "tutor.test"):
        assert domain in error


def test_to_and_connect_exclude_each_other(tutor_home: Path) -> None:
    result = run_cli("sandbox", "--to", "example.org", "--connect", "127.0.0.1:2525")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--to and --connect exclude each other" in result.stderr


def test_to_takes_a_domain_name_only(tutor_home: Path) -> None:
    for wrong in ("bob@example.org", "a..b", ""):
        result = run_cli("sandbox", "--to", wrong)
        assert result.returncode == 2, wrong
        assert "is not a domain name" in result.stderr and result.stdout == ""
    implicit = run_cli("sandbox", "--to", "example.org", "--implicit-tls")
    assert implicit.returncode == 2 and "no --implicit-tls" in implicit.stderr


def test_without_aliases_a_host_is_tried_at_its_own_127_0_0_1_port(tmp_path: Path) -> None:
    """A world on 127.0.0.1 only (ports of their own): the DNS address is shown, and where
    the connection really went."""
    from tutor.sandbox.routed import Outcome, tries
    from tutor.ui.common.sandbox_view import attempt_line
    from tutor.world.dnsdata import Role

    with socket.socket() as closed:  # a free port, closed again: nothing listens there
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    host = next(h for h in WORLD_HOSTS if h.role is Role.A_FALLBACK)
    world_map = WorldMap("127.0.0.1", 53, tmp_path, (RunningMta(host, "127.0.0.1", port),), False)
    route = Route(host.domain, RouteKind.A_FALLBACK, (Hop(None, host.host, (host.address,)),))
    [attempt] = list(tries(route, world_map, timeout=2.0))
    assert attempt.outcome is Outcome.NO_CONNECTION
    assert (attempt.connect_to, attempt.port) == ("127.0.0.1", port)
    console, out = pipe_console()
    console.print(attempt_line(attempt, more=False))
    assert f"(listening on 127.0.0.1:{port} on this system)" in one_line(out.getvalue())


def test_an_address_outside_the_zone_is_refused_before_any_connection(
    tutor_home: Path, tmp_path: Path
) -> None:
    """Public addresses and loopback addresses the zone does not name are never dialled:
    a listener on such an address, at the port the world uses, is never connected to."""
    from tutor.sandbox.routed import Outcome, tries

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.99", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    world_map = WorldMap(
        "127.0.0.1", 53, tmp_path, (RunningMta(WORLD_HOSTS[0], "127.0.0.1", port),), True
    )
    route = Route(
        "evil.example",
        RouteKind.MX,
        (Hop(10, "mx.evil.example", ("127.0.0.99",)), Hop(20, "far.example", ("203.0.113.7",))),
    )
    with listener:
        attempts = list(tries(route, world_map, timeout=2.0))
        assert [a.outcome for a in attempts] == [Outcome.NOT_REACHABLE] * 2
        assert all(a.port == 0 and a.client is None for a in attempts)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody knocked
        with socket.create_connection(("127.0.0.99", port), timeout=2.0):
            listener.setblocking(True)
            listener.settimeout(2.0)
            listener.accept()[0].close()  # the check above would have seen a connection


def test_no_mx_example_whose_a_record_is_public_gets_no_connection(
    tutor_home: Path, tmp_path: Path
) -> None:
    result = sandbox_to("no-mx.example", tmp_path / "world")
    assert result.returncode == 1
    out = one_line(result.stdout)
    assert (
        "no-mx.example [203.0.113.7]: not connected: the tutor connects only to the loopback "
        "addresses the world's zone names" in out
    )


# --- a real terminal, and the world's processes on the way out ---------------------------------


@pytest.mark.posix
@pytest.mark.slow
def test_a_learner_mails_bob_at_example_org_in_a_terminal(tutor_home: Path, tmp_path: Path) -> None:
    from tests.pty_session import PtySession

    maildir = tmp_path / "world"
    tutor = PtySession("sandbox", "--to", "example.org", "--maildir", str(maildir))
    tutor.expect(r"mx1\.example\.org \[127\.0\.0\.11\]:\d+ answered 421 4\.3\.2")
    tutor.expect(r"trying the next MX")
    tutor.expect(r"mx2\.example\.org \[127\.0\.0\.12\]:\d+ answered 220: this is the session")
    tutor.expect(r"220 mx2\.example\.org ESMTP")
    for line in SESSION[:-2]:
        tutor.type(line)
    tutor.expect(r"250 2\.0\.0 OK")
    tutor.type("/mailbox", prompt=r"smtp>")
    tutor.expect(r"bob's mailbox")
    tutor.type("/quit", prompt=r"smtp>")
    assert tutor.finish() == 0
    assert len(list((maildir / "example.org" / "bob" / "new").iterdir())) == 1


@pytest.mark.posix
@pytest.mark.slow
def test_a_fallback_and_null_mx_in_a_terminal(tutor_home: Path, tmp_path: Path) -> None:
    from tests.pty_session import PtySession

    maildir = str(tmp_path / "world")
    fallback = PtySession("sandbox", "--to", "a-only.example", "--maildir", maildir)
    fallback.expect(r"none: no MX, so the A record is used")
    fallback.expect(r"a-only\.example \[127\.0\.0\.16\]:\d+ answered 220: this is the session")
    fallback.type("QUIT", prompt=r"smtp>")
    fallback.expect(r"221 ")
    fallback.type("/quit", prompt=r"smtp>")
    assert fallback.finish() == 0
    null_mx = PtySession("sandbox", "--to", "nomail.example", "--maildir", maildir)
    null_mx.expect(r"0 \. \(a null MX")
    null_mx.expect(r"No session: nomail\.example publishes a null MX")
    assert null_mx.finish() == 1
    assert "smtp>" not in null_mx.screen()


@pytest.mark.posix
@pytest.mark.slow
def test_sigterm_and_ctrl_c_leave_no_process_of_the_world(tutor_home: Path, tmp_path: Path) -> None:
    for stop in (signal.SIGTERM, signal.SIGINT):
        process = subprocess.Popen(
            [sys.executable, "-m", "tutor", "sandbox", "--to", "example.org", "--plain"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            if "S: 220 mx2.example.org" in line:
                break
        family = psutil.Process(process.pid).children(recursive=True)
        assert len(family) >= 7, "a forkserver and the MTAs"
        process.send_signal(stop)
        _, errors = process.communicate(timeout=60)
        # At the prompt both end the session as Ctrl-C always did (the input is over).
        assert "Traceback" not in errors and "internal error" not in errors
        _gone, alive = psutil.wait_procs(family, timeout=30)
        assert alive == [], f"left running after {stop.name}: {alive}"
