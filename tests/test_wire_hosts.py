"""Hosts by their spelling: what counts as loopback, and how an address is written.

`serve --host`, the dashboard's header and the sandbox's `--connect` share one rule
(tutor.smtp.wire), so they cannot disagree about whether other machines can reach a server.
"""

from __future__ import annotations

import pytest

from tutor.sandbox.sandbox import parse_target
from tutor.sandbox.serve import ServeOptions
from tutor.server.runner import TeachingServer
from tutor.smtp.wire import address_literal, host_port, is_loopback
from tutor.ui.serve.dashboard_view import Header

LOOPBACK = ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "localhost.")
LOOPBACK_NAMES = ("x.localhost", "mx.tutor.localhost.")
ELSEWHERE = ("0.0.0.0", "::", "192.0.2.7", "mx.example.com", "127.0.0.1.example.com", "")


@pytest.mark.parametrize("host", LOOPBACK + LOOPBACK_NAMES)
def test_loopback_spellings(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ELSEWHERE)
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("[::1]", True), ("localhost.", True), ("x.localhost", True), ("192.0.2.7", False)],
)
def test_serve_and_the_sandbox_agree(server: TeachingServer, host: str, loopback: bool) -> None:
    options = ServeOptions(host, 0, server.maildir, False, 300.0, 1000, None)
    warning = Header.for_server(server, options).warning
    assert (warning == "") is loopback
    assert parse_target(f"{host}:25").loopback is loopback


def test_an_ipv6_address_is_bracketed_with_its_port_and_tagged_in_a_literal() -> None:
    assert host_port("127.0.0.1", 2525) == "127.0.0.1:2525"
    assert host_port("::1", 2525) == "[::1]:2525"
    assert address_literal("127.0.0.1") == "127.0.0.1"
    assert address_literal("::1") == "IPv6:::1"
