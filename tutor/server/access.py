"""Which clients a class's server serves: `serve --lan` admits the class's network only.

A machine on the same LAN as the teacher has an address from a private range (RFC 1918,
RFC 4193), a link-local one (RFC 3927, and IPv6's fe80::/10) or, on the teacher's own
machine, loopback. Anything else reached the port from beyond the class's network (a
forwarded port, a public Wi-Fi) and is refused at connect, unless `--allow` names it.

Python's `ip_address(...).is_private` is not the rule: it also counts the documentation
ranges (192.0.2.0/24, 203.0.113.0/24, 2001:db8::/32) and others as private, so the
ranges are listed here, each with the RFC that sets it aside.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from tutor.errors import UsageError

Network = IPv4Network | IPv6Network

CLASS_NETWORKS: tuple[Network, ...] = (
    IPv4Network("10.0.0.0/8"),  # RFC 1918
    IPv4Network("172.16.0.0/12"),  # RFC 1918
    IPv4Network("192.168.0.0/16"),  # RFC 1918
    IPv4Network("169.254.0.0/16"),  # RFC 3927: link-local, a LAN without a DHCP server
    IPv4Network("127.0.0.0/8"),  # RFC 1122: loopback, the teacher's own machine
    IPv6Network("fc00::/7"),  # RFC 4193: unique local addresses
    IPv6Network("fe80::/10"),  # RFC 4291 §2.5.6: link-local
    IPv6Network("::1/128"),  # RFC 4291 §2.5.3: loopback
)


def client_address(host: str) -> IPv4Address | IPv6Address | None:
    """A peer's address as its socket names it ("10.0.0.5", "fe80::1%eth0"); an
    IPv4-mapped IPv6 address (a dual-stack socket's "::ffff:10.0.0.5") as the IPv4
    address it carries. None for anything that is not an address."""
    try:
        address = ip_address(host)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def admitted(host: str, networks: tuple[Network, ...]) -> bool:
    """Whether a client at `host` is in one of `networks` (an unreadable address is not)."""
    address = client_address(host)
    # `in` is False across IP versions; a scope (%eth0) does not change membership.
    return address is not None and any(address in network for network in networks)


def parse_network(text: str) -> Network:
    """An --allow value: a network in CIDR notation (203.0.113.0/24, 2001:db8::/32) or
    one address. Host bits are dropped (203.0.113.5/24 is 203.0.113.0/24)."""
    try:
        return ip_network(text.strip(), strict=False)
    except ValueError:
        raise UsageError(
            f"--allow {text!r}: not a network; write it as ADDRESS/PREFIX, e.g. 203.0.113.0/24"
        ) from None
