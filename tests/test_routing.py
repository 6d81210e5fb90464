"""tutor.world.routing: the one gate of the sending side (`reachable`) and routes asked of
a real DNS server on loopback, as a sending MTA asks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tutor.world.dns_server import DnsServer, running_in_thread
from tutor.world.routing import (
    Hop,
    LookupFailed,
    NotServed,
    Resolver,
    RouteKind,
    reachable,
)
from tutor.world.zone import simulated_zone


@pytest.mark.parametrize(
    "address",
    [
        "203.0.113.7",  # a public address the zone names (no-mx.example)
        "2001:db8::7",  # its documentation-prefix AAAA
        "8.8.8.8",  # a public address the zone does not name
        "127.0.0.99",  # loopback, but no host of the world
        "::2",
        "mx.tutor.test",  # a name, not an address
        "localhost",
        "",
        "127.0.0.1:25",  # garbage
        "127.0.0.1 ",
        "[::1]",
        "\x1b[31m",
    ],
)
def test_reachable_refuses_anything_but_the_worlds_loopback_addresses(address: str) -> None:
    assert reachable(address) is False


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.11", "127.0.0.14", "::1", "0::1"])
def test_reachable_allows_the_loopback_addresses_the_zone_names(address: str) -> None:
    assert reachable(address) is True


@pytest.fixture(scope="module")
def resolver() -> Iterator[Resolver]:
    with running_in_thread(simulated_zone()) as server:
        yield resolver_for(server)


def resolver_for(server: DnsServer) -> Resolver:
    return Resolver(server.host, server.port)


def test_example_org_routes_to_its_mx_hosts_in_preference_order(resolver: Resolver) -> None:
    route = resolver.route("Example.ORG.")
    assert route.kind is RouteKind.MX
    assert route.hops == (
        Hop(10, "mx1.example.org", ("127.0.0.11",)),
        Hop(20, "mx2.example.org", ("127.0.0.12",)),
    )
    assert "mx1.example.org (preference 10), then mx2.example.org (preference 20)" in route.why


def test_a_domain_without_mx_falls_back_to_its_address(resolver: Resolver) -> None:
    route = resolver.route("a-only.example")
    assert route.kind is RouteKind.A_FALLBACK
    assert route.hops == (Hop(None, "a-only.example", ("127.0.0.16",)),)


def test_a_null_mx_is_no_hop_at_all(resolver: Resolver) -> None:
    route = resolver.route("nomail.example")
    assert route.kind is RouteKind.NULL_MX
    assert route.hops == ()


def test_an_unknown_name_under_a_served_domain_is_no_domain(resolver: Resolver) -> None:
    route = resolver.route("nosuch.example.org")
    assert route.kind is RouteKind.NO_DOMAIN
    assert route.hops == ()


def test_a_domain_outside_the_world_is_refused_not_called_nonexistent(
    resolver: Resolver,
) -> None:
    with pytest.raises(NotServed) as refused:
        resolver.route("gmail.com")
    assert isinstance(refused.value, LookupFailed)  # callers that catch LookupFailed see it
    assert f"{resolver.host}:{resolver.port} answered REFUSED for gmail.com" in str(refused.value)


def test_addresses_are_the_a_records_then_the_aaaa_records(resolver: Resolver) -> None:
    assert resolver.addresses("mx.tutor.test") == ("127.0.0.1", "::1")
    assert resolver.addresses("no-mx.example") == ("203.0.113.7", "2001:db8::7")
    assert resolver.addresses("mx2.example.org") == ("127.0.0.12",)
    route = resolver.route("tutor.test")
    assert route.hops == (Hop(10, "mx.tutor.test", ("127.0.0.1", "::1")),)


def test_a_zone_without_ipv6_loopback_has_no_aaaa_for_mx_tutor_test() -> None:
    with running_in_thread(simulated_zone(ipv6_loopback=False)) as server:
        resolver = resolver_for(server)
        assert resolver.addresses("mx.tutor.test") == ("127.0.0.1",)
        assert resolver.addresses("no-mx.example") == ("203.0.113.7", "2001:db8::7")


def test_no_answer_at_all_is_a_lookup_failure() -> None:
    with running_in_thread(simulated_zone()) as server:
        port = server.port
    # The server has stopped: nothing answers at that port any more.
    with pytest.raises(LookupFailed, match=f"no answer from the DNS server at 127.0.0.1:{port}"):
        Resolver("127.0.0.1", port).route("example.org")
