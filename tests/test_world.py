"""`smtp-tutor world`: the world's zone and map (in-process), and the whole world as a
real process, asked by the real dig, written to by smtplib, stopped by SIGTERM."""

from __future__ import annotations

import contextlib
import io
import json
import mailbox
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support import require_tool, run_cli
from tutor.server import world as server_world
from tutor.server.world import World
from tutor.ui.common.terminal import Terminal, build_console
from tutor.ui.reference import world_view
from tutor.world.dnsdata import WORLD_HOSTS, Role, lookup
from tutor.world.zone import listing, simulated_zone

TIMEOUT = 60.0
DOCS = Path(__file__).parent.parent / "docs"
WORLD_COMMAND = (sys.executable, "-m", "tutor", "world", "--json")


# --- the zone and the map, in-process ---------------------------------------------------------


def test_example_org_has_two_mx_of_different_preference_with_their_addresses() -> None:
    record = lookup("example.org")
    assert record is not None
    assert record.mx == ((10, "mx1.example.org"), (20, "mx2.example.org"))
    assert [lookup(host).a for _, host in record.mx] == [("127.0.0.11",), ("127.0.0.12",)]  # type: ignore[union-attr]
    assert record.dmarc and record.spf


def test_every_world_host_is_an_mx_or_the_a_fallback_of_its_domain() -> None:
    for host in WORLD_HOSTS:
        domain = lookup(host.domain)
        assert domain is not None, host
        mx_hosts = [name for _, name in domain.mx]
        if host.role is Role.A_FALLBACK:
            assert not domain.mx and host.host == host.domain, host
        elif host.role is Role.SUBMISSION:  # it sends for its domain; it receives no mail
            assert host.host not in mx_hosts, host
        else:
            assert host.host in mx_hosts, host
        assert host.address.startswith("127.0.0."), host
    addresses = [host.address for host in WORLD_HOSTS]
    assert len(set(addresses)) == len(addresses), "one address per host"


def test_the_world_has_every_kind_of_domain_the_lessons_need() -> None:
    roles = {host.role for host in WORLD_HOSTS}
    assert roles == set(Role)
    primary = [host for host in WORLD_HOSTS if host.role is Role.DOWN]
    assert all(lookup(host.domain).mx[0][1] == host.host for host in primary)  # type: ignore[union-attr]
    assert lookup("nomail.example").null_mx  # type: ignore[union-attr]


def test_docs_world_md_lists_the_worlds_hosts_and_its_zone() -> None:
    doc = (DOCS / "world.md").read_text(encoding="utf-8")
    for host in WORLD_HOSTS:
        row = f"| {host.domain} | {host.host} | {host.address} | {host.role.value} |"
        assert row in doc, f"docs/world.md lacks {row}"
    assert listing(simulated_zone()) in (DOCS / "dns.md").read_text(encoding="utf-8")


def test_dns_command_gives_example_orgs_mx_hosts() -> None:
    result = run_cli("dns", "example.org", "MX")
    assert result.returncode == 0
    assert "10 mx1.example.org." in result.stdout
    assert "20 mx2.example.org." in result.stdout


# --- the whole world as a process (slow: starting it takes one to three seconds) ------------


@dataclass
class RunningWorld:
    process: subprocess.Popen[str]
    map: dict[str, Any]
    maildir: Path

    def mta(self, host: str) -> dict[str, Any]:
        return next(mta for mta in self.map["mtas"] if mta["host"] == host)

    @property
    def dns_port(self) -> str:
        return str(self.map["dns"].rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorld]:
    maildir = tmp_path_factory.mktemp("world") / "mail"
    process = subprocess.Popen(
        [*WORLD_COMMAND, "--dns-port", "0", "--maildir", str(maildir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first, process.stderr.read() if process.stderr else ""
        yield RunningWorld(process, json.loads(first), maildir)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=TIMEOUT)


def dig(world: RunningWorld, *args: str) -> list[str]:
    tool = require_tool("dig")
    result = subprocess.run(
        [tool, "@127.0.0.1", "-p", world.dns_port, *args, "+short", "+time=5", "+tries=2"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    return sorted(result.stdout.splitlines())


@pytest.mark.slow
def test_world_json_maps_every_host(world: RunningWorld) -> None:
    assert world.map["maildir"] == str(world.maildir)
    assert [mta["host"] for mta in world.map["mtas"]] == [host.host for host in WORLD_HOSTS]
    ports = {mta["port"] for mta in world.map["mtas"]}
    assert len(ports) == 1 and world.map["shared_port"], "one SMTP port for every MTA"
    for mta, host in zip(world.map["mtas"], WORLD_HOSTS, strict=True):
        assert (mta["domain"], mta["address"], mta["role"]) == (
            host.domain,
            host.address,
            host.role.value,
        )


@pytest.mark.slow
def test_real_dig_gets_mx_and_dmarc_over_udp_and_tcp(world: RunningWorld) -> None:
    assert dig(world, "MX", "example.org") == ["10 mx1.example.org.", "20 mx2.example.org."]
    assert dig(world, "+tcp", "TXT", "_dmarc.tutor.test") == ['"v=DMARC1; p=reject"']
    assert dig(world, "A", "mx1.example.org") == ["127.0.0.11"]
    dns_mx = run_cli("dns", "example.org", "MX").stdout
    assert all(line.split()[1] in dns_mx for line in dig(world, "MX", "example.org"))


@pytest.mark.slow
def test_mx1_is_busy_and_mail_to_mx2_is_stored_under_its_domain(world: RunningWorld) -> None:
    busy = world.mta("mx1.example.org")
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP(busy["address"], busy["port"], timeout=TIMEOUT)
    assert refused.value.smtp_code == 421
    assert b"4.3.2 mx1.example.org" in refused.value.smtp_error
    mta = world.mta("mx2.example.org")
    with smtplib.SMTP(mta["address"], mta["port"], timeout=TIMEOUT) as client:
        code, banner = client.ehlo("client.example")
        assert code == 250 and banner.startswith(b"mx2.example.org")
        client.sendmail("alice@tutor.test", ["bob@example.org"], b"Subject: hi\r\n\r\nhello\r\n")
    stored = list((world.maildir / "example.org" / "bob" / "new").iterdir())
    assert len(stored) == 1
    assert b"hello" in stored[0].read_bytes()


@pytest.mark.slow
def test_greylisting_mta_refuses_the_first_rcpt_with_451(world: RunningWorld) -> None:
    mta = world.mta("mx.greylist.example")
    with smtplib.SMTP(mta["address"], mta["port"], timeout=TIMEOUT) as client:
        client.ehlo("client.example")
        client.mail("alice@tutor.test")
        code, _ = client.rcpt("bob@greylist.example")
    assert code == 451


@pytest.mark.slow
def test_nothing_listens_at_the_down_primary(world: RunningWorld) -> None:
    mta = world.mta("mx1.down.example")
    assert mta["role"] == "down"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((mta["address"], mta["port"]), timeout=TIMEOUT)
    backup = world.mta("mx2.down.example")
    with smtplib.SMTP(backup["address"], backup["port"], timeout=TIMEOUT) as client:
        assert client.noop()[0] == 250


@pytest.mark.slow
def test_sigterm_stops_the_world_with_status_0_and_no_process_left(
    tmp_path: Path,
) -> None:
    process = subprocess.Popen(
        [*WORLD_COMMAND, "--maildir", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert json.loads(first)["mtas"]
    children = psutil.Process(process.pid).children(recursive=True)
    assert len(children) >= 6  # the forkserver and an MTA per listening host
    os.kill(process.pid, signal.SIGTERM)
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, err
    assert out == "" and "Traceback" not in err
    _, alive = psutil.wait_procs(children, timeout=TIMEOUT)
    assert alive == []


def free_port_range(count: int) -> int:
    """A first port of `count` consecutive ports free on 127.0.0.1 just now."""
    for base in range(40000 + os.getpid() % 1000 * 20, 60000, 20):
        with contextlib.ExitStack() as sockets:
            try:
                for port in range(base, base + count):
                    sockets.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
            return base
    raise AssertionError("no free port range")


def test_base_port_puts_every_mta_on_127_0_0_1_at_its_own_port(tmp_path: Path) -> None:
    base = free_port_range(len(WORLD_HOSTS))
    world = World(tmp_path, base_port=base)
    world_map = world.start()
    try:
        assert not world_map.shared_port
        for index, mta in enumerate(world_map.mtas):
            assert (mta.address, mta.port) == ("127.0.0.1", base + index)
            if mta.host.listens:
                with socket.create_connection((mta.address, mta.port), TIMEOUT) as client:
                    greeting = client.recv(200).decode()
                busy = mta.host.role is Role.BUSY
                assert greeting.startswith("421 4.3.2 " if busy else "220 ")
                assert mta.host.host in greeting
        assert world_map.as_json()["shared_port"] is False
    finally:
        world.stop()
    down = world_map.mta("mx1.down.example")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((down.address, down.port), timeout=TIMEOUT)


def test_a_taken_port_is_one_clear_line_and_status_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("world", "--port", str(port), "--maildir", str(tmp_path))
    assert result.returncode == 1
    assert f"port {port} is already in use on 127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_world_domains_mailbox_is_named_with_its_own_domain(tmp_path: Path) -> None:
    """`mailbox --maildir <world>/example.org` is example.org's mail, not tutor.test's."""
    for root, domain in ((tmp_path / "example.org", "example.org"), (tmp_path / "M", "tutor.test")):
        root.mkdir()
        mailbox.Maildir(root / "you", create=True)
        result = run_cli("mailbox", "--maildir", str(root))
        assert result.returncode == 0, result.stderr
        assert f"your mailbox (you@{domain}): empty" in result.stdout


# --- a system with only 127.0.0.1 (macOS without aliases), forced ----------------------------


def test_without_loopback_aliases_every_mta_gets_a_port_of_its_own_on_127_0_0_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The automatic fallback: no --base-port, and binding 127.0.0.x fails."""
    monkeypatch.setattr(server_world, "loopback_aliases_work", lambda: False)
    world = World(tmp_path)
    world_map = world.start()
    try:
        assert not world_map.shared_port
        assert world_map.as_json()["shared_port"] is False
        listening = [mta for mta in world_map.mtas if mta.host.listens]
        assert {mta.address for mta in listening} == {"127.0.0.1"}
        assert len({mta.port for mta in listening}) == len(listening), "a port each"
        for mta in listening:
            greeting = greeting_at(mta.address, mta.port)
            busy = mta.host.role is Role.BUSY
            assert greeting.startswith("421 4.3.2 " if busy else "220 "), greeting
            assert mta.host.host in greeting
        tutor = world_map.mta("mx.tutor.test")
        if world.ipv6:  # its AAAA ::1 is true here too, at the same port
            assert "mx.tutor.test" in greeting_at("::1", tutor.port)
    finally:
        world.stop()


def greeting_at(address: str, port: int) -> str:
    with socket.create_connection((address, port), TIMEOUT) as client:
        return client.recv(200).decode()


class _StopWhenShown(io.StringIO):
    """The map's stream: once the map's last line is written, SIGTERM to this process,
    which `world` (then waiting, its handler installed) takes as its signal to stop."""

    def write(self, text: str) -> int:
        written = super().write(text)
        if "Ctrl-C stops the world." in text:
            os.kill(os.getpid(), signal.SIGTERM)
        return written


@pytest.mark.posix
def test_the_map_without_aliases_says_to_give_127_0_0_1_and_the_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_world, "loopback_aliases_work", lambda: False)
    stream = _StopWhenShown()
    console = build_console(stream, colour=False, force_terminal=False)
    terminal = Terminal(console, console, io.StringIO(), True, False, False, False)
    status = world_view.run(terminal, tmp_path, dns_port=0, port=0, base_port=None, as_json=False)
    assert status == 0
    shown = " ".join(stream.getvalue().split())  # the words, however they wrapped
    assert "Each MTA listens on 127.0.0.1 at a port of its own, because this system" in shown
    assert "cannot listen on 127.0.0.x beyond 127.0.0.1 (no loopback aliases)" in shown
    assert "DNS still names the 127.0.0.x addresses, which do not reach these MTAs" in shown
    assert "give your client 127.0.0.1 and the MTA's port from the table" in shown
    rows = [line.split() for line in stream.getvalue().splitlines()]
    mx2 = next(row for row in rows if row[:2] == ["example.org", "mx2.example.org"])
    address, port = mx2[2].split(":")
    assert address == "127.0.0.1" and int(port) > 0
    telnet = next(row for row in rows if row[:1] == ["telnet"])
    assert telnet[1] == "127.0.0.1" and telnet[2] != port  # mx1's own port, not mx2's


def test_with_base_port_the_map_says_the_user_asked_for_the_ports() -> None:
    line = world_view.own_ports_line(chosen=True)
    assert "because --base-port asked for it" in line and "aliases" not in line
    assert "give your client 127.0.0.1 and the MTA's port" in line


# --- AAAA: the zone and the world agree -------------------------------------------------------


def test_mx_tutor_test_has_the_aaaa_1_and_no_other_world_host_has_one() -> None:
    assert lookup("mx.tutor.test").aaaa == ("::1",)  # type: ignore[union-attr]
    others = [host for host in WORLD_HOSTS if host.host != "mx.tutor.test"]
    assert all(not lookup(host.host).aaaa for host in others)  # type: ignore[union-attr]


def test_dns_command_gives_mx_tutor_tests_aaaa() -> None:
    result = run_cli("dns", "mx.tutor.test", "AAAA", "--plain")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^mx\.tutor\.test\.\s+3600\s+IN\s+AAAA\s+::1$", result.stdout, re.M)


@pytest.mark.slow
def test_real_dig_gets_the_aaaa_the_dns_command_shows(world: RunningWorld) -> None:
    shown = run_cli("dns", "mx.tutor.test", "AAAA", "--plain").stdout
    expected = ["::1"] if socket.has_ipv6 else []
    assert dig(world, "AAAA", "mx.tutor.test") == expected
    assert all(re.search(rf"\sAAAA\s+{re.escape(a)}$", shown, re.M) for a in expected)
    assert dig(world, "-x", "::1") == ["mx.tutor.test."]
    assert dig(world, "AAAA", "mx2.example.org") == []  # NODATA: no IPv6 of its own


@pytest.mark.slow
def test_the_tutor_test_mta_answers_on_1_at_the_shared_port(world: RunningWorld) -> None:
    if not dig(world, "AAAA", "mx.tutor.test"):
        pytest.skip("no IPv6 loopback here: the zone leaves the AAAA out")
    port = world.mta("mx.tutor.test")["port"]
    with smtplib.SMTP("::1", port, timeout=TIMEOUT) as client:
        code, banner = client.ehlo("client.example")
    assert code == 250 and banner.startswith(b"mx.tutor.test")
