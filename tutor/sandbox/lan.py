"""The address a class reaches this machine at (`serve --lan`), found without a packet.

Both sources are local to the machine:

- The default route's address. connect() on a UDP socket asks the kernel's routing table
  which source address it would use for a destination, and records the destination: UDP
  has no handshake, so nothing is sent until send(), which is never called, and no
  neighbour is resolved either (ARP or IPv6 neighbour discovery run only for a packet on
  its way out). The destinations are documentation addresses (RFC 5737, RFC 3849), which
  no host owns, so the route found is the default one. tests/test_lan_netns.py checks the
  interfaces' transmit counters across `serve --lan`'s start.
- The machine's other addresses, to print beside it (Linux only): SIOCGIFCONF lists every
  IPv4 address with its interface, /proc/net/if_inet6 every IPv6 one. Elsewhere only the
  default route's address is known.

The teaching server itself never connects anywhere (docs/server.md, "Who it is").
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
from dataclasses import dataclass

from tutor.errors import UserError

# Documentation addresses (RFC 5737 TEST-NET-1, RFC 3849), and the discard port (RFC 863).
ROUTE_PROBES = ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1"))
DISCARD_PORT = 9

SIOCGIFCONF = 0x8912  # Linux's <linux/sockios.h>
IFNAMSIZ = 16


@dataclass(frozen=True)
class Address:
    address: str
    interface: str = ""  # "" when the platform does not say


@dataclass(frozen=True)
class LanChoice:
    address: str
    interface: str
    on_default_route: bool
    others: tuple[Address, ...]  # the machine's other addresses students might reach


def find() -> LanChoice:
    """The LAN address of this machine: the one on the default route, else another."""
    return choose(default_route_addresses(), interface_addresses())


def choose(on_route: list[str], interfaces: list[Address]) -> LanChoice:
    """The address on the default route (IPv4 first); without a default route, the first
    private address, else the first address. UserError when the machine has none but
    loopback."""
    usable = [item for item in interfaces if reachable(item.address)]
    routed = [address for address in on_route if reachable(address)]
    if routed:
        chosen, on_default_route = routed[0], True
    elif usable:
        ordered = sorted(usable, key=lambda item: _preference(item.address))
        chosen, on_default_route = ordered[0].address, False
    else:
        raise UserError(
            "no LAN address found: this machine has no network address but loopback "
            "(connect it to the class's network, or name an address with --host)"
        )
    interface = next((item.interface for item in usable if item.address == chosen), "")
    others = tuple(item for item in usable if item.address != chosen)
    return LanChoice(chosen, interface, on_default_route, others)


def reachable(text: str) -> bool:
    """An address another machine can be told to type: not loopback, not unspecified or
    multicast, and not IPv6 link-local (which needs the student's own interface name)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        return False
    return not (address.version == 6 and address.is_link_local)


def _preference(text: str) -> tuple[int, int]:
    address = ipaddress.ip_address(text)
    private = any(address in network for network in _PRIVATE)
    return (0 if private else 1, address.version)


_PRIVATE = tuple(
    ipaddress.ip_network(text) for text in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)


def default_route_address(family: socket.AddressFamily) -> str | None:
    """The source address the kernel would use on the default route; None without one.

    connect() on a UDP socket sends nothing (see the module's docstring)."""
    probe = dict(ROUTE_PROBES)[family]
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((probe, DISCARD_PORT))
            address = str(sock.getsockname()[0])
    except OSError:  # no route (ENETUNREACH), or no such address family
        return None
    return address if reachable(address) else None


def default_route_addresses() -> list[str]:
    """The default route's address for IPv4, then for IPv6, where there is one."""
    found = (default_route_address(family) for family, _ in ROUTE_PROBES)
    return [address for address in found if address is not None]


def interface_addresses() -> list[Address]:
    """Every address of this machine with its interface (Linux; elsewhere none)."""
    if not sys.platform.startswith("linux"):
        return []
    return _ipv4_addresses() + _ipv6_addresses()


def _ipv4_addresses() -> list[Address]:
    """SIOCGIFCONF: one `struct ifreq` (a name, then a union whose largest member is
    `struct ifmap`) per IPv4 address, secondary addresses included."""
    import array
    import fcntl

    ifreq_size = IFNAMSIZ + max(16, struct.calcsize("LLHBBB0L"))
    entries = 64
    while True:
        size = ifreq_size * entries
        buffer = array.array("B", bytes(size))
        request = struct.pack("iP", size, buffer.buffer_info()[0])  # struct ifconf
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                answer = fcntl.ioctl(sock.fileno(), SIOCGIFCONF, request)
        except OSError:
            return []
        length = struct.unpack("iP", answer)[0]
        if length + ifreq_size <= size:  # room to spare: nothing was left out
            break
        entries *= 2
    data = buffer.tobytes()[:length]
    found = []
    for offset in range(0, length, ifreq_size):
        entry = data[offset : offset + ifreq_size]
        (family,) = struct.unpack_from("H", entry, IFNAMSIZ)  # sockaddr_in.sin_family
        if family != socket.AF_INET:
            continue
        name = entry[:IFNAMSIZ].split(b"\0", 1)[0].decode("ascii", "replace")
        address = socket.inet_ntoa(entry[IFNAMSIZ + 4 : IFNAMSIZ + 8])  # sin_addr
        found.append(Address(address, name))
    return found


def _ipv6_addresses() -> list[Address]:
    """/proc/net/if_inet6: one line per address, "hex index prefix scope flags name"."""
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as table:
            lines = table.read().split("\n")
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) != 6 or len(fields[0]) != 32:
            continue
        try:
            address = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
        except ValueError:
            continue
        found.append(Address(str(address), fields[5]))
    return found
