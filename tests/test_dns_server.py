"""The simulated DNS: the zone, the loopback DNS server over real UDP and TCP sockets,
the real dig against it, and `smtp-tutor dns` (in-process, and --serve as a process)."""

from __future__ import annotations

import random
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename
import dns.rrset
import pytest

from tests.support import require_tool, run_cli
from tutor.world.dns_server import DnsServer, running_in_thread
from tutor.world.dnsdata import DomainRecord
from tutor.world.zone import listing, simulated_zone, zone_from

HOST = "127.0.0.1"
TIMEOUT = 10.0
BIG_TXT = "v=spf1 " + " ".join(f"ip4:192.0.2.{n}" for n in range(60)) + " -all"  # ~900 bytes


@pytest.fixture(scope="module")
def server() -> Iterator[DnsServer]:
    with running_in_thread(simulated_zone()) as running:
        yield running


@pytest.fixture(scope="module")
def big_server() -> Iterator[DnsServer]:
    """A test-only zone with one TXT record too big for a 512-byte datagram."""
    with running_in_thread(zone_from([DomainRecord("big.test", spf=BIG_TXT)])) as running:
        yield running


def udp(server: DnsServer, name: str, rdtype: str, **query_options: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **query_options)  # type: ignore[arg-type]
    return dns.query.udp(query, HOST, port=server.port, timeout=TIMEOUT)


def tcp(server: DnsServer, name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return dns.query.tcp(query, HOST, port=server.port, timeout=TIMEOUT)


def records(response: dns.message.Message) -> list[str]:
    return sorted(rdata.to_text() for rrset in response.answer for rdata in rrset)


# --- the server over real sockets -----------------------------------------------------------


def test_mx_with_two_preferences_over_udp_and_tcp(server: DnsServer) -> None:
    for response in (udp(server, "example.test", "MX"), tcp(server, "example.test", "MX")):
        assert response.rcode() == dns.rcode.NOERROR
        assert response.flags & dns.flags.AA
        assert not response.flags & dns.flags.RA  # never recursion
        assert records(response) == ["10 mx1.example.test.", "20 mx2.example.test."]


def test_txt_a_ptr_and_null_mx(server: DnsServer) -> None:
    assert records(udp(server, "_dmarc.tutor.test", "TXT")) == ['"v=DMARC1; p=reject"']
    assert records(udp(server, "MX.Tutor.Test", "A")) == ["127.0.0.1"]  # case-insensitive
    assert records(udp(server, "1.0.0.127.in-addr.arpa", "PTR")) == ["mx.tutor.test."]
    assert records(udp(server, "nomail.example", "MX")) == ["0 ."]


def test_nxdomain_and_nodata_carry_the_soa(server: DnsServer) -> None:
    missing = udp(server, "nowhere.example.test", "A")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert [rrset.rdtype for rrset in missing.authority] == [dns.rdatatype.SOA]
    nodata = udp(server, "example.test", "A")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert [rrset.rdtype for rrset in nodata.authority] == [dns.rdatatype.SOA]
    assert udp(server, "anything.invalid", "MX").rcode() == dns.rcode.NXDOMAIN


def test_names_outside_the_zone_are_refused(server: DnsServer) -> None:
    refused = udp(server, "example.com", "A")
    assert refused.rcode() == dns.rcode.REFUSED
    assert not refused.answer and not refused.flags & dns.flags.AA


def test_other_opcodes_classes_and_edns_versions(server: DnsServer) -> None:
    update = dns.message.make_query("example.test", "MX")
    update.set_opcode(dns.opcode.UPDATE)
    assert dns.query.udp(update, HOST, port=server.port, timeout=TIMEOUT).rcode() == (
        dns.rcode.NOTIMP
    )
    assert udp(server, "example.test", "MX", rdclass="CH").rcode() == dns.rcode.REFUSED
    newer_edns = udp(server, "example.test", "MX", use_edns=1)
    assert newer_edns.rcode() == dns.rcode.BADVERS and not newer_edns.answer


def test_a_big_answer_is_truncated_over_udp_and_whole_over_tcp(big_server: DnsServer) -> None:
    truncated = udp(big_server, "big.test", "TXT", use_edns=False)
    assert truncated.flags & dns.flags.TC and not truncated.answer
    whole = tcp(big_server, "big.test", "TXT")
    assert not whole.flags & dns.flags.TC
    assert b"".join(whole.answer[0][0].strings).decode() == BIG_TXT  # type: ignore[attr-defined]


def test_with_edns_the_big_answer_comes_whole_over_udp(big_server: DnsServer) -> None:
    response = udp(big_server, "big.test", "TXT", use_edns=0, payload=4096)
    assert not response.flags & dns.flags.TC
    assert b"".join(response.answer[0][0].strings).decode() == BIG_TXT  # type: ignore[attr-defined]


def _good_query() -> dns.message.Message:
    return dns.message.make_query("tutor.test", "MX")


def _replies_until_answered(sock: socket.socket, good: dns.message.Message) -> list[bytes]:
    """Every datagram received until the good query's answer (the last one)."""
    sock.sendto(good.to_wire(), (HOST, sock.getpeername()[1]))
    received = []
    while True:
        data = sock.recv(65535)
        received.append(data)
        if data[:2] == struct.pack("!H", good.id):
            return received


def test_malformed_datagrams_never_stop_it(server: DnsServer) -> None:
    rng = random.Random(7)
    header_only = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 0, 0, 0, 0)  # no question
    two_questions = dns.message.make_query("tutor.test", "MX")
    two_questions.question.append(dns.rrset.RRset(two_questions.question[0].name, 1, 1))
    wires = [rng.randbytes(n) for n in (1, 13, 40, 300)]
    wires += [b"\x12\x34\x01", header_only, two_questions.to_wire()]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect((HOST, server.port))
        for wire in wires:
            sock.send(wire)
        good = _good_query()
        replies = _replies_until_answered(sock, good)
    answer = dns.message.from_wire(replies[-1])
    assert records(answer) == ["10 mx.tutor.test."]
    rcodes = {reply[:2]: reply[3] & 0x0F for reply in replies[:-1]}
    assert rcodes[b"\xbe\xef"] == dns.rcode.FORMERR
    assert rcodes[struct.pack("!H", two_questions.id)] == dns.rcode.FORMERR


def _tcp_exchange(sock: socket.socket, query: dns.message.Message) -> dns.message.Message:
    wire = query.to_wire()
    sock.sendall(struct.pack("!H", len(wire)) + wire)
    (length,) = struct.unpack("!H", _read_exactly(sock, 2))
    return dns.message.from_wire(_read_exactly(sock, length))


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the server closed the connection"
        data += chunk
    return data


def test_several_queries_on_one_tcp_connection(server: DnsServer) -> None:
    with socket.create_connection((HOST, server.port), timeout=TIMEOUT) as sock:
        first = _tcp_exchange(sock, dns.message.make_query("example.test", "MX"))
        second = _tcp_exchange(sock, dns.message.make_query("mx.tutor.test", "A"))
    assert len(records(first)) == 2 and records(second) == ["127.0.0.1"]


def test_a_tcp_length_with_nothing_after_it_blocks_nobody(server: DnsServer) -> None:
    with socket.create_connection((HOST, server.port), timeout=TIMEOUT) as stalled:
        stalled.sendall(b"\xff\xff")  # a 65535-byte message is announced, never sent
        with socket.create_connection((HOST, server.port), timeout=TIMEOUT) as sock:
            assert records(_tcp_exchange(sock, _good_query())) == ["10 mx.tutor.test."]
    assert records(tcp(server, "tutor.test", "MX")) == ["10 mx.tutor.test."]


# --- the real dig ---------------------------------------------------------------------------


def dig(server_port: int, *args: str) -> str:
    command = [require_tool("dig"), f"@{HOST}", "-p", str(server_port), "+time=5", "+tries=1"]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_dig_over_udp_and_tcp(server: DnsServer) -> None:
    mx = ["10 mx1.example.test.", "20 mx2.example.test."]
    assert sorted(dig(server.port, "MX", "example.test", "+short").split("\n")[:-1]) == mx
    assert sorted(dig(server.port, "+tcp", "MX", "example.test", "+short").splitlines()) == mx
    dmarc = dig(server.port, "TXT", "_dmarc.tutor.test", "+short")
    assert dmarc.strip() == '"v=DMARC1; p=reject"'
    assert "status: NXDOMAIN" in dig(server.port, "A", "nowhere.tutor.test")


def test_dig_retries_a_truncated_answer_over_tcp(big_server: DnsServer) -> None:
    output = dig(big_server.port, "+noedns", "TXT", "big.test")
    assert "Truncated, retrying in TCP mode" in output
    assert "ip4:192.0.2.59" in output


# --- smtp-tutor dns -------------------------------------------------------------------------


def test_the_command_answers_what_dig_gets(server: DnsServer) -> None:
    result = run_cli("dns", "example.test", "MX")
    assert result.returncode == 0, result.stderr
    # dig's layout; rich prints the tabs as spaces
    answer_lines = [
        line.split() for line in result.stdout.splitlines() if line[:1] not in ("", ";")
    ]
    shown = sorted(" ".join(fields[-2:]) for fields in answer_lines)
    assert shown == sorted(dig(server.port, "MX", "example.test", "+short").splitlines())
    assert answer_lines[0][:4] == ["example.test.", "3600", "IN", "MX"]
    assert "simulated DNS" in result.stdout


def test_the_command_says_nxdomain_and_nodata_like_dig() -> None:
    missing = run_cli("dns", "nowhere.example.test")
    assert missing.returncode == 0
    assert "status: NXDOMAIN" in missing.stdout and "SOA" in missing.stdout
    nodata = run_cli("dns", "example.test", "aaaa")  # the type is case-insensitive
    assert nodata.returncode == 0 and "status: NOERROR" in nodata.stdout
    assert "ANSWER SECTION" not in nodata.stdout


def test_an_unknown_type_is_one_line_and_exit_2() -> None:
    result = run_cli("dns", "example.test", "BOGUS")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "smtp-tutor: unknown TYPE 'BOGUS': use one of A, AAAA, MX, TXT, PTR, SOA"
    ]


def test_a_hostile_name_is_shown_escaped() -> None:
    result = run_cli("dns", "\x1b[31mevil[red]x.example.test", "--plain")
    assert result.returncode == 0
    assert "\x1b" not in result.stdout
    assert "[red]x" in result.stdout and "status: NXDOMAIN" in result.stdout


def test_the_documented_zone_is_the_served_zone() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "dns.md").read_text(encoding="utf-8")
    assert listing(simulated_zone()) in doc, "regenerate the zone listing in docs/dns.md"


@pytest.mark.posix
def test_dns_serve_answers_dig_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tutor", "dns", "--serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("DNS server for the simulated zone on 127.0.0.1:"), first
        port = int(first.split("127.0.0.1:")[1].split()[0])
        assert f"try: dig @127.0.0.1 -p {port} MX example.test" in first
        assert "mx1.example.test." in dig(port, "MX", "example.test", "+short")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0 and stderr == ""


# --- AAAA and ip6.arpa ------------------------------------------------------------------------


def test_aaaa_records_over_udp_and_tcp(server: DnsServer) -> None:
    for response in (udp(server, "mx.tutor.test", "AAAA"), tcp(server, "mx.tutor.test", "AAAA")):
        assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA
        assert records(response) == ["::1"]
    assert records(udp(server, "no-mx.example", "AAAA")) == ["2001:db8::7"]


def test_a_host_without_ipv6_is_nodata_for_aaaa(server: DnsServer) -> None:
    response = udp(server, "mx2.example.org", "AAAA")
    assert response.rcode() == dns.rcode.NOERROR and not response.answer
    assert response.authority[0].rdtype == dns.rdatatype.SOA


def test_ipv6_addresses_have_ptrs_and_a_neighbour_is_nxdomain(server: DnsServer) -> None:
    assert records(udp(server, dns.reversename.from_address("::1"), "PTR")) == ["mx.tutor.test."]
    documentation = dns.reversename.from_address("2001:db8::7")
    assert records(udp(server, documentation, "PTR")) == ["no-mx.example."]
    neighbour = udp(server, dns.reversename.from_address("::2"), "PTR")
    assert neighbour.rcode() == dns.rcode.NXDOMAIN  # its /64 is served: not REFUSED


def test_without_ipv6_loopback_the_zone_drops_only_the_loopback_aaaa() -> None:
    zone = simulated_zone(ipv6_loopback=False)
    answer = zone.resolve(dns.name.from_text("mx.tutor.test"), dns.rdatatype.AAAA)
    assert answer.rcode == dns.rcode.NOERROR and not answer.answer  # NODATA
    kept = zone.resolve(dns.name.from_text("no-mx.example"), dns.rdatatype.AAAA)
    assert [rdata.to_text() for rdata in kept.answer[0]] == ["2001:db8::7"]
    assert "AAAA  ::1" not in listing(zone) and "AAAA  ::1" in listing(simulated_zone())
    loopback_ptr = dns.reversename.from_address("::1").to_text()
    assert loopback_ptr not in listing(zone) and loopback_ptr in listing(simulated_zone())
