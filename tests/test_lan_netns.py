"""`serve --lan` on a real network, built for the test in Linux network namespaces.

Two namespaces joined by a veth pair: the teacher's machine, and the class's network
beyond it. The teacher has 10.20.0.1 on that link, with the default route through it, and
192.168.77.1 on a second link (a lab network); the class's side has a student at the
private 10.20.0.2 and an outsider at 203.0.113.7 (a documentation address: RFC 5737)
behind the same router. Nothing is added to the host's own interfaces, and the namespaces
are deleted afterwards. IPv6 is switched off in both, so that nothing the kernel sends by
itself moves the transmit counters this test reads.

Needs Linux, root and iproute2 (`ip netns`): .ci/run installs iproute2 and CI runs as root,
so there a missing piece fails the test; on a developer's machine it is skipped.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.serve_process import ServeProcess
from tests.support import require_tool

pytestmark = [pytest.mark.slow, pytest.mark.posix]

TEACHER = "10.20.0.1"
STUDENT = "10.20.0.2"
OUTSIDER = "203.0.113.7"
LAB = "192.168.77.1"
_numbers = itertools.count()


def _unavailable(why: str) -> None:
    """As tests.support.require_tool: fail in CI (which has all it needs), skip elsewhere."""
    if os.environ.get("CI") and not os.environ.get("SMTP_TUTOR_OPTIONAL_TOOLS"):
        pytest.fail(why + "; CI runs as root with iproute2 (.ci/run installs it)")
    pytest.skip(why)


@dataclass
class Classroom:
    ip: str
    teacher: str  # the namespaces' names
    students: str

    def run(self, *words: str) -> str:
        result = subprocess.run([self.ip, *words], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise AssertionError(f"ip {' '.join(words)}: {result.stderr.strip()}")
        return result.stdout

    def prefix(self, namespace: str) -> list[str]:
        return [self.ip, "netns", "exec", namespace]

    def serve(self, maildir: Path, *args: str) -> ServeProcess:
        """`smtp-tutor serve` on the teacher's machine, its line log read as it comes."""
        python = [*self.prefix(self.teacher), sys.executable, "-m", "tutor"]
        return ServeProcess(maildir, "--plain", *args, python_prefix=python)

    def sent_packets(self) -> dict[str, int]:
        """How many packets each of the teacher's interfaces has sent."""
        links = json.loads(self.run("-n", self.teacher, "-j", "-s", "link", "show"))
        return {link["ifname"]: link["stats64"]["tx"]["packets"] for link in links}

    def from_student(self, words: list[str], typed: str, source: str = "") -> str:
        """A command run on the class's side (nc, as a student types it), given `typed`
        on its standard input; its output."""
        result = subprocess.run(
            [*self.prefix(self.students), *words],
            input=typed,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout


def _build(ip: str) -> Classroom:
    tag = f"{os.getpid()}-{next(_numbers)}"
    room = Classroom(ip, f"tutor-teacher-{tag}", f"tutor-class-{tag}")
    for namespace in (room.teacher, room.students):
        room.run("netns", "add", namespace)
        no_ipv6 = "; ".join(
            f"echo 1 > /proc/sys/net/ipv6/conf/{which}/disable_ipv6" for which in ("all", "default")
        )
        subprocess.run([*room.prefix(namespace), "sh", "-c", no_ipv6], check=True, timeout=30)
        room.run("-n", namespace, "link", "set", "lo", "up")
    t, s = room.teacher, room.students
    for link in ("lan0", "lab0"):  # both ends keep the name, each in its own namespace
        room.run("-n", t, "link", "add", link, "type", "veth", "peer", "name", link, "netns", s)
    room.run("-n", t, "addr", "add", f"{TEACHER}/24", "dev", "lan0")
    room.run("-n", t, "addr", "add", f"{LAB}/24", "dev", "lab0")
    room.run("-n", s, "addr", "add", f"{STUDENT}/24", "dev", "lan0")
    room.run("-n", s, "addr", "add", f"{OUTSIDER}/24", "dev", "lan0")
    for namespace in (t, s):
        for link in ("lan0", "lab0"):
            room.run("-n", namespace, "link", "set", link, "up")
    room.run("-n", t, "route", "add", "default", "via", STUDENT)  # the class's router
    return room


@pytest.fixture(scope="module")
def classroom() -> Iterator[Classroom]:
    if not sys.platform.startswith("linux"):
        pytest.skip("network namespaces are Linux's")
    ip = require_tool("ip", "/usr/sbin/ip", "/sbin/ip", linux_only=True)
    if os.geteuid() != 0:
        _unavailable("creating network namespaces needs root")
    try:
        room = _build(ip)
    except AssertionError as error:
        _unavailable(f"cannot build the test's network namespaces: {error}")
    try:
        yield room
    finally:
        for namespace in (room.teacher, room.students):
            subprocess.run([ip, "netns", "delete", namespace], capture_output=True, timeout=30)


def _typed_line(process: ServeProcess, command: str) -> list[str]:
    """The words of the line the banner tells students to type (`telnet ADDR PORT`)."""
    match = re.search(rf"^ +({command} \S+ \d+)$", process.text, re.MULTILINE)
    assert match, process.text
    return match.group(1).split()


def test_lan_serves_the_class_refuses_an_outsider_and_sends_nothing_at_start(
    classroom: Classroom, tmp_path: Path
) -> None:
    nc = require_tool("nc", linux_only=True)
    before = classroom.sent_packets()
    process = classroom.serve(tmp_path / "Maildir", "--lan")
    try:
        # Finding the address and starting to listen sent no packet on any interface.
        assert classroom.sent_packets() == before
        port = process.port
        assert f"listening on {TEACHER}:{port}, 127.0.0.1:{port}" in process.text
        assert _typed_line(process, "telnet") == ["telnet", TEACHER, str(port)]
        nc_words = _typed_line(process, "nc -C")
        assert nc_words == ["nc", "-C", TEACHER, str(port)]

        # The student types exactly what the banner says.
        said = classroom.from_student(
            [nc, *nc_words[1:]], "EHLO student.example\nNOOP student=Ada\nQUIT\n"
        )
        assert said.startswith("220 mx.tutor.test ESMTP"), said
        assert "250 2.0.0 OK, you are Ada in this class" in said
        assert said.rstrip().endswith("221 2.0.0 mx.tutor.test closing connection")
        process.wait_for(rf"connected from {re.escape(STUDENT)} port \d+".encode())

        # The outsider, from beyond the router, gets 554, then 503 until QUIT.
        refused = classroom.from_student(
            [nc, "-C", "-s", OUTSIDER, TEACHER, str(port)], "EHLO outsider.example\nQUIT\n"
        )
        assert refused.split("\n") == [  # text mode reads each CRLF as a line feed
            f"554 5.7.1 mx.tutor.test [{OUTSIDER}] is not on this class's network "
            "(smtp-tutor serve --lan accepts private addresses only)",
            f"503 5.5.1 Bad sequence of commands: [{OUTSIDER}] is not on this class's "
            "network; only QUIT",
            "221 2.0.0 mx.tutor.test closing connection",
            "",
        ]
        number = process.session_where(rf"connected from {re.escape(OUTSIDER)} port".encode())
        process.wait_in_session(number, rb"refused: not on this class's network \(554 5\.7\.1")
        assert classroom.sent_packets()["lan0"] > before["lan0"]  # the counters do count
        assert process.interrupt() == 0
    finally:
        process.kill()
    stderr = process.stderr.decode()
    assert f"LAN address: {TEACHER} (lan0, on the default route)" in stderr
    assert f"this machine's other addresses: {LAB} (lab0)" in stderr
    assert f"warning: listening on {TEACHER}, not loopback" in stderr
    assert "stopped: 2 sessions, 0 messages stored" in process.text


def test_allow_serves_another_network(classroom: Classroom, tmp_path: Path) -> None:
    nc = require_tool("nc", linux_only=True)
    process = classroom.serve(tmp_path / "Maildir", "--lan", "--allow", "203.0.113.0/24")
    try:
        said = classroom.from_student(
            [nc, "-C", "-s", OUTSIDER, TEACHER, str(process.port)], "QUIT\n"
        )
        assert said.startswith("220 mx.tutor.test ESMTP"), said
        assert process.interrupt() == 0
    finally:
        process.kill()
    assert "serving private, link-local and loopback clients, 203.0.113.0/24;" in (
        process.stderr.decode()
    )


def test_a_wildcard_host_tells_students_a_real_address(
    classroom: Classroom, tmp_path: Path
) -> None:
    process = classroom.serve(tmp_path / "Maildir", "--host", "0.0.0.0")
    try:
        assert _typed_line(process, "telnet") == ["telnet", TEACHER, str(process.port)]
        assert f"telnet 127.0.0.1 {process.port}" not in process.text
        assert process.interrupt() == 0
    finally:
        process.kill()
    assert "warning: listening on 0.0.0.0, not loopback" in process.stderr.decode()


def test_no_lan_address_is_one_line_and_exit_1(classroom: Classroom, tmp_path: Path) -> None:
    """A namespace with loopback alone: nothing a student could reach."""
    alone = f"tutor-alone-{os.getpid()}-{next(_numbers)}"
    classroom.run("netns", "add", alone)
    try:
        classroom.run("-n", alone, "link", "set", "lo", "up")
        serve = ["serve", "--lan", "--maildir", str(tmp_path / "Maildir")]
        result = subprocess.run(
            [*classroom.prefix(alone), sys.executable, "-m", "tutor", *serve],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        classroom.run("netns", "delete", alone)
    assert result.returncode == 1
    assert result.stderr == (
        "smtp-tutor: no LAN address found: this machine has no network address but loopback "
        "(connect it to the class's network, or name an address with --host)\n"
    )
