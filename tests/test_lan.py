"""serve --lan, without a network namespace: whom it serves, the address it picks, what it
prints, and how the server treats a client from outside the class's network.

The whole of `serve --lan` on a real (namespaced) network is tests/test_lan_netns.py.
"""

from __future__ import annotations

import io
import json
import queue
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address, ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.support import RawClient, require_tool, run_cli
from tutor.errors import UsageError, UserError
from tutor.sandbox import lan
from tutor.sandbox.dashboard_model import DashboardModel
from tutor.sandbox.serve import ServeOptions, client_hints, reachable_address, served_networks
from tutor.server.access import CLASS_NETWORKS, admitted, client_address, parse_network
from tutor.server.persona import Persona
from tutor.server.runner import TeachingServer
from tutor.smtp.events import Event, Exchange, SessionClosed, SessionOpened
from tutor.ui.serve.dashboard_view import DashboardView, Header, Transcripts
from tutor.ui.serve.serve_log import ServeLog
from tutor.ui.serve.students import students_banner

# --- whom --lan serves: every range, at both edges --------------------------------------------

SERVED = (
    "10.0.0.0",  # RFC 1918
    "10.255.255.255",
    "172.16.0.0",
    "172.31.255.255",
    "192.168.0.0",
    "192.168.255.255",
    "169.254.0.0",  # RFC 3927 link-local
    "169.254.255.255",
    "127.0.0.1",  # loopback
    "127.255.255.255",
    "fc00::",  # RFC 4193 unique local (fc00::/7)
    "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::",  # link-local (fe80::/10)
    "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "::1",
    "::ffff:10.1.2.3",  # IPv4-mapped, as a dual-stack socket names an IPv4 peer
    "::ffff:192.168.1.9",
    "::ffff:127.0.0.1",
    "fe80::1%eth0",  # a scoped link-local peer, as getpeername() gives it
    "fe80::1%3",
)
REFUSED = (
    "9.255.255.255",
    "11.0.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.167.255.255",
    "192.169.0.0",
    "169.253.255.255",
    "169.255.0.0",
    "126.255.255.255",
    "128.0.0.0",
    "100.64.0.1",  # shared address space (RFC 6598): a carrier's NAT, not a LAN
    "8.8.8.8",
    "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",  # just below fc00::/7
    "fe00::",  # between fc00::/7 and fe80::/10
    "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fec0::",  # just above fe80::/10 (the old site-local)
    "::",
    "::2",
    "2a00:1450::1",
    "::ffff:203.0.113.7",  # mapped, but a documentation address
    "::ffff:8.8.8.8",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1: the client is really elsewhere
    "",
    "localhost",
    "not an address",
)
# Python's is_private counts these as private; a class's network they are not.
DOCUMENTATION = ("192.0.2.7", "198.51.100.7", "203.0.113.7", "2001:db8::7")


@pytest.mark.parametrize("host", SERVED)
def test_the_class_network_is_served(host: str) -> None:
    assert admitted(host, CLASS_NETWORKS)


@pytest.mark.parametrize("host", REFUSED + DOCUMENTATION)
def test_anything_else_is_refused(host: str) -> None:
    assert not admitted(host, CLASS_NETWORKS)


@pytest.mark.parametrize("host", DOCUMENTATION)
def test_documentation_addresses_are_not_private_here_though_python_says_so(host: str) -> None:
    assert ip_address(host).is_private  # why server/access.py lists its ranges itself
    assert not admitted(host, CLASS_NETWORKS)


def test_a_mapped_address_is_the_ipv4_address_it_carries() -> None:
    assert client_address("::ffff:10.1.2.3") == IPv4Address("10.1.2.3")
    assert admitted("::ffff:203.0.113.7", (ip_network("203.0.113.0/24"),))
    assert client_address("fe80::1%eth0") is not None
    assert client_address("10.0.0.1%eth0") is None  # a scope is IPv6's alone


def test_allow_adds_networks_and_keeps_the_class_network() -> None:
    options = ServeOptions(
        None, 0, Path("m"), False, 300.0, 1000, None, lan=True, allow=("203.0.113.5/24",)
    )
    networks = served_networks(options)
    assert networks is not None and networks[: len(CLASS_NETWORKS)] == CLASS_NETWORKS
    assert admitted("203.0.113.200", networks) and admitted("10.0.0.1", networks)
    assert not admitted("198.51.100.1", networks)
    assert served_networks(ServeOptions(None, 0, Path("m"), False, 300.0, 1000, None)) is None


@pytest.mark.parametrize(
    ("text", "network"),
    [
        ("203.0.113.0/24", "203.0.113.0/24"),
        ("203.0.113.5/24", "203.0.113.0/24"),  # host bits dropped
        ("198.51.100.7", "198.51.100.7/32"),  # one address
        ("2001:db8::/32", "2001:db8::/32"),
        (" 0.0.0.0/0 ", "0.0.0.0/0"),  # everyone, if a teacher means it
    ],
)
def test_allow_values(text: str, network: str) -> None:
    assert parse_network(text) == ip_network(network)


@pytest.mark.parametrize("text", ["203.0.113.0/33", "example.com", "", "10.0.0.0/8/8"])
def test_a_bad_allow_value_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match=r"^--allow .*: not a network; write it as"):
        parse_network(text)


# --- the LAN address: which one is chosen --------------------------------------------------


def addresses(*pairs: str) -> list[lan.Address]:
    return [lan.Address(*pair.split("@")) for pair in pairs]


def test_the_default_routes_address_is_chosen_and_the_others_listed() -> None:
    interfaces = addresses(
        "127.0.0.1@lo", "172.17.0.1@docker0", "192.168.1.20@wlan0", "::1@lo", "fe80::1@wlan0"
    )
    choice = lan.choose(["192.168.1.20", "2a00:1450::5"], interfaces)
    assert (choice.address, choice.interface, choice.on_default_route) == (
        "192.168.1.20",
        "wlan0",
        True,
    )
    # loopback and IPv6 link-local (which needs the student's interface name) are not offered
    assert choice.others == (lan.Address("172.17.0.1", "docker0"),)


def test_an_address_on_the_default_route_is_chosen_even_if_not_listed() -> None:
    """Off Linux the machine's addresses are not listed: the route's is enough."""
    choice = lan.choose(["10.1.2.3"], [])
    assert (choice.address, choice.interface, choice.others) == ("10.1.2.3", "", ())


def test_ipv6_on_the_default_route_when_there_is_no_ipv4_route() -> None:
    choice = lan.choose(["2a00:1450::5"], addresses("2a00:1450::5@eth0"))
    assert (choice.address, choice.on_default_route) == ("2a00:1450::5", True)


def test_without_a_default_route_a_private_address_comes_first() -> None:
    """A classroom switch with no router: no default route, but a LAN all the same."""
    interfaces = addresses("127.0.0.1@lo", "198.51.100.4@eth1", "fd00::4@eth0", "10.0.0.4@eth0")
    choice = lan.choose([], interfaces)
    assert (choice.address, choice.interface, choice.on_default_route) == (
        "10.0.0.4",
        "eth0",
        False,
    )
    assert [item.address for item in choice.others] == ["198.51.100.4", "fd00::4"]


def test_link_local_ipv4_is_a_lan_too() -> None:
    choice = lan.choose([], addresses("127.0.0.1@lo", "169.254.10.20@eth0"))
    assert choice.address == "169.254.10.20"


def test_only_loopback_is_one_clear_error() -> None:
    with pytest.raises(UserError) as raised:
        lan.choose([], addresses("127.0.0.1@lo", "::1@lo", "fe80::1@eth0"))
    assert type(raised.value) is UserError  # exit 1, not a usage error
    assert "\n" not in str(raised.value)
    assert str(raised.value).startswith("no LAN address found: ")


@pytest.mark.parametrize(
    ("address", "reachable"),
    [
        ("192.168.1.2", True),
        ("203.0.113.9", True),
        ("fd00::2", True),
        ("2a00:1450::5", True),
        ("169.254.1.1", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("224.0.0.1", False),
        ("fe80::1", False),
        ("eth0", False),
    ],
)
def test_what_a_student_can_be_told_to_type(address: str, reachable: bool) -> None:
    assert lan.reachable(address) is reachable


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIOCGIFCONF is Linux's")
def test_this_machines_addresses_are_those_ip_lists() -> None:
    """The ioctl and /proc reading, checked against iproute2 on the machine the test runs."""
    ip = require_tool("ip", "/usr/sbin/ip", "/sbin/ip", linux_only=True)
    listing = json.loads(
        subprocess.run([ip, "-j", "addr"], capture_output=True, text=True, check=True).stdout
    )
    expected = {
        (info["local"], info.get("label") or item["ifname"])
        for item in listing
        for info in item.get("addr_info", [])
    }
    found = {(item.address, item.interface) for item in lan.interface_addresses()}
    assert {(str(ip_address(a)), name) for a, name in expected} == found


def test_the_default_routes_address_is_one_of_this_machines() -> None:
    """No packet is sent to find it (tests/test_lan_netns.py counts them)."""
    mine = {item.address for item in lan.interface_addresses()}
    for address in lan.default_route_addresses():
        assert lan.reachable(address)
        if sys.platform.startswith("linux"):
            assert address in mine


def test_a_wildcard_host_is_told_as_a_real_address() -> None:
    """--host 0.0.0.0: students are told the default route's address, not 127.0.0.1."""
    expected = lan.default_route_address(socket.AF_INET) or "127.0.0.1"
    assert reachable_address("0.0.0.0") == expected
    assert client_hints("0.0.0.0", 2525)[:2] == [
        f"telnet {expected} 2525",
        f"nc -C {expected} 2525",
    ]
    assert reachable_address("::") == (lan.default_route_address(socket.AF_INET6) or "::1")
    assert reachable_address("192.168.1.20") == "192.168.1.20"


# --- the command line ----------------------------------------------------------------------------


def test_lan_with_a_host_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("serve", "--lan", "--host", "10.0.0.1", "--maildir", str(tmp_path / "m"))
    assert result.returncode == 2
    assert result.stderr == (
        "smtp-tutor: --lan finds this machine's address itself: give --lan or --host\n"
    )


def test_allow_without_lan_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("serve", "--allow", "10.0.0.0/8", "--maildir", str(tmp_path / "m"))
    assert result.returncode == 2
    assert result.stderr == (
        "smtp-tutor: --allow widens --lan's check of client addresses: add --lan\n"
    )


def test_a_bad_allow_is_a_usage_error_before_anything_listens(tmp_path: Path) -> None:
    result = run_cli("serve", "--lan", "--allow", "class", "--maildir", str(tmp_path / "m"))
    assert result.returncode == 2
    assert result.stderr == (
        "smtp-tutor: --allow 'class': not a network; write it as ADDRESS/PREFIX, "
        "e.g. 203.0.113.0/24\n"
    )
    assert not (tmp_path / "m").exists()


def test_serve_help_names_lan_and_allow() -> None:
    result = run_cli("serve", "--help")
    assert "--lan" in result.stdout and "--allow" in result.stdout


# --- the server: a client from outside the class's network ------------------------------------

OUTSIDE = (ip_network("10.0.0.0/8"),)  # loopback clients are outsiders to this server


def events_of(server: TeachingServer, until: type[Event] | Callable[[Event], bool]) -> list[Event]:
    """The server's events up to the first of this type (or that this test accepts)."""
    last = until if not isinstance(until, type) else lambda event: isinstance(event, until)
    found: list[Event] = []
    deadline = time.monotonic() + 10
    while not found or not last(found[-1]):
        assert time.monotonic() < deadline, found
        try:
            found.append(server.capture.events.get(timeout=0.5))
        except queue.Empty:
            continue
    return found


def test_an_outsider_gets_554_then_503_to_everything_until_quit(start_server: Any) -> None:
    server: TeachingServer = start_server(Persona(clients=OUTSIDE))
    with RawClient(server.address) as client:
        address = client.sock.getsockname()[0]
        assert client.greeting == [
            f"554 5.7.1 mx.tutor.test [{address}] is not on this class's network "
            "(smtp-tutor serve --lan accepts private addresses only)"
        ]
        refusal = (
            f"503 5.5.1 Bad sequence of commands: [{address}] is not on this class's "
            "network; only QUIT"
        )
        for command in (
            "EHLO student.example",
            "STARTTLS",
            "AUTH PLAIN AHlvdQB0dXRvci1wYXNzd29yZA==",
            "MAIL FROM:<a@example.test>",
            "DATA",
            "NOOP student=Ada",
            "FROB",
        ):
            assert client.cmd(command) == [refusal], command
        assert client.cmd("quit") == ["221 2.0.0 mx.tutor.test closing connection"]
        assert client.at_eof()
    events = events_of(server, SessionClosed)
    opened = next(event for event in events if isinstance(event, SessionOpened))
    closed = next(event for event in events if isinstance(event, SessionClosed))
    assert opened.refused and closed.reason == "network"
    assert not list(server.maildir.glob("*/new/*"))


def test_an_outsider_who_keeps_on_is_closed_as_for_unknown_commands(start_server: Any) -> None:
    server: TeachingServer = start_server(Persona(clients=OUTSIDE))
    with RawClient(server.address) as client:
        limit = Persona().max_unknown_commands
        client.sock.sendall(b"HELO x\r\n" * limit)  # pipelined: every one is answered
        lines = [client.reply()[0] for _ in range(limit)]
        assert all(line.startswith("503 5.5.1 ") for line in lines[:-1])
        assert lines[-1] == (
            "421 4.7.0 mx.tutor.test Too many unrecognized commands, closing connection"
        )
        assert client.at_eof()
    assert events_of(server, SessionClosed)[-1] == SessionClosed(1, "network")


def test_the_class_network_is_greeted_as_usual(start_server: Any) -> None:
    server: TeachingServer = start_server(Persona(clients=CLASS_NETWORKS))
    with RawClient(server.address) as client:
        assert client.greeting[0].startswith("220 mx.tutor.test ESMTP")
        assert client.code("EHLO student.example").startswith("250")
    opened = events_of(server, SessionOpened)[0]
    assert isinstance(opened, SessionOpened) and not opened.refused


def test_the_log_and_the_dashboard_show_a_refused_session(start_server: Any) -> None:
    server: TeachingServer = start_server(Persona(clients=OUTSIDE))
    model = DashboardModel()
    with RawClient(server.address) as client:
        client.cmd("EHLO student.example")  # in the capture before its reply was sent
        events = events_of(
            server, lambda event: isinstance(event, Exchange) and event.verb == "EHLO"
        )
        for event in events:
            model.feed(event)
        assert model.rows()[0].stage == "refused"
        client.cmd("QUIT")
    more = events_of(server, SessionClosed)
    for event in more:
        model.feed(event)
    events += more
    assert model.rows()[0].stage == "refused: not on LAN"
    console = Console(file=io.StringIO(), width=200, no_color=True)
    log = ServeLog(console)
    text = "\n".join(line.plain for event in events for line in log.render(event))
    assert "The server refuses to serve you: your machine is not on the class's network" in text
    assert "Bad sequence: the server refused you when you connected" in text
    assert text.endswith("refused: not on this class's network (554 5.7.1, serve --lan)")


# --- what students are told ------------------------------------------------------------------

COMMANDS = ("telnet 10.20.0.1 2525", "nc -C 10.20.0.1 2525")


def rendered(renderable: Any, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, no_color=True, record=True)
    console.print(renderable)
    return console.export_text()


def test_the_banner_is_big_and_boxed_on_a_terminal() -> None:
    text = rendered(students_banner(COMMANDS, plain=False))
    lines = text.split("\n")
    assert "students type one of these" in lines[0] and "╭" in lines[0]
    telnet = next(number for number, line in enumerate(lines) if COMMANDS[0] in line)
    nc = next(number for number, line in enumerate(lines) if COMMANDS[1] in line)
    assert nc == telnet + 2 and telnet == 2  # a blank line inside the box around each
    assert lines[telnet].strip(" │") == COMMANDS[0]


def test_plain_has_no_box_and_each_command_on_a_line_of_its_own() -> None:
    text = rendered(students_banner(COMMANDS, plain=True))
    assert not any(corner in text for corner in "╭│╰─")
    lines = text.split("\n")
    assert "Students type one of these:" in lines
    assert f"        {COMMANDS[0]}" in lines and f"        {COMMANDS[1]}" in lines


def test_the_dashboard_draws_the_students_line_big_when_others_can_connect(
    server: TeachingServer,
) -> None:
    options = ServeOptions("0.0.0.0", 0, server.maildir, False, 300.0, 1000, None)
    header = Header.for_server(server, options)
    assert header.for_students
    view = DashboardView(DashboardModel(), Transcripts(Console(file=io.StringIO())), header)
    for height, blank_rows in ((40, True), (24, False)):
        console = Console(file=io.StringIO(), width=120, height=height, record=True)
        console.print(view.render(console, 120, height, time.monotonic()))
        lines = console.export_text().split("\n")
        assert len(lines) - 1 == height, "the box is counted in the rows the frame takes"
        boxed = next(number for number, line in enumerate(lines) if header.connect[0] in line)
        assert "│" in lines[boxed] and header.connect[1] in lines[boxed]
        assert ("students type one of these" in lines[boxed - 2]) is blank_rows
    loopback = Header.for_server(server, ServeOptions(None, 0, server.maildir, False, 1, 1, None))
    assert not loopback.for_students
