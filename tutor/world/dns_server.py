"""A DNS server on loopback that answers from a Zone: for `dig`, `host` and `nslookup`.

Authoritative only: it never recurses (RA=0) and never sends a packet anywhere but the
reply to the asker. UDP and TCP on the same port (TCP: a 2-byte length before each
message, several queries per connection, an idle timeout). Over UDP an answer larger than
the client's EDNS0 payload size (512 without EDNS) goes out truncated with TC=1, and the
client asks again over TCP (RFC 1035 §4.2, RFC 6891 §6.2.5). docs/dns.md has the rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import struct
import threading
from collections.abc import Iterator
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from tutor.world.query_log import QueryLog
from tutor.world.zone import Zone

HOST = "127.0.0.1"
CLASSIC_UDP_SIZE = 512  # without EDNS0 (RFC 1035 §2.3.4)
OUR_UDP_PAYLOAD = 4096  # what we advertise back, and the most we send in one datagram
MAX_TCP_CONNECTIONS = 32
TCP_IDLE_SECONDS = 10.0
_HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount


def reply_to(
    zone: Zone,
    wire: bytes,
    *,
    max_size: int | None = None,
    log: QueryLog | None = None,
    client: str = "",
) -> bytes | None:
    """The reply to one DNS message, or None when it deserves none (no header, or
    itself a response). max_size None: the UDP limit the query itself allows. A question
    answered is recorded in `log`."""
    try:
        query = dns.message.from_wire(wire)
    except dns.exception.DNSException:  # e.g. an UPDATE's sections: NOTIMP, not FORMERR
        return _header_only(wire, dns.rcode.FORMERR, unknown_opcode=dns.rcode.NOTIMP)
    if query.flags & dns.flags.QR:
        return None  # never answer an answer: no loops between two servers
    response = dns.message.make_response(query, our_payload=OUR_UDP_PAYLOAD)
    rcode = _fill(zone, query, response)
    response.set_rcode(rcode)
    if log is not None and len(query.question) == 1:
        question = query.question[0]
        log.record(
            client,
            question.name.to_text(),
            dns.rdatatype.to_text(question.rdtype),
            dns.rcode.to_text(rcode),
            sum(len(rrset) for rrset in response.answer),
        )
    limit = max_size if max_size is not None else _udp_limit(query)
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        return _truncated(response, limit)


def _fill(zone: Zone, query: dns.message.Message, response: dns.message.Message) -> dns.rcode.Rcode:
    """Put the zone's answer into the response; its rcode."""
    if query.opcode() != dns.opcode.QUERY:
        return dns.rcode.Rcode.NOTIMP
    if len(query.question) != 1:
        return dns.rcode.Rcode.FORMERR
    if query.edns > 0:  # we speak EDNS version 0 only (RFC 6891 §6.1.3)
        return dns.rcode.Rcode.BADVERS
    question = query.question[0]
    if question.rdclass != dns.rdataclass.IN:
        return dns.rcode.Rcode.REFUSED
    answer = zone.resolve(question.name, question.rdtype)
    if answer.authoritative:
        response.flags |= dns.flags.AA
    response.answer.extend(answer.answer)
    response.authority.extend(answer.authority)
    return answer.rcode


def _udp_limit(query: dns.message.Message) -> int:
    if query.edns < 0:
        return CLASSIC_UDP_SIZE
    return max(CLASSIC_UDP_SIZE, min(query.payload, OUR_UDP_PAYLOAD))


def _truncated(response: dns.message.Message, limit: int) -> bytes:
    """The header and question with TC=1: "ask again over TCP"."""
    response.answer.clear()
    response.authority.clear()
    response.additional.clear()
    response.flags |= dns.flags.TC
    return response.to_wire(max_size=max(limit, CLASSIC_UDP_SIZE))


def _header_only(wire: bytes, rcode: int, *, unknown_opcode: int | None = None) -> bytes | None:
    """A reply with no sections (FORMERR for a message that does not parse), built from
    the header alone; None when there is no whole header or it is a response."""
    if len(wire) < _HEADER.size:
        return None
    ident, flags = _HEADER.unpack_from(wire)[:2]
    if flags & dns.flags.QR:
        return None
    opcode_bits = flags & 0x7800
    if opcode_bits and unknown_opcode is not None:
        rcode = unknown_opcode
    reply_flags = dns.flags.QR | opcode_bits | (flags & dns.flags.RD) | rcode
    return _HEADER.pack(ident, reply_flags, 0, 0, 0, 0)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone, log: QueryLog) -> None:
        self.zone = zone
        self.log = log
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        client = str(addr[0])
        reply = _safe_reply(self.zone, data, max_size=None, log=self.log, client=client)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        """An ICMP error for an earlier reply (the asker went away): nothing to do."""


def _safe_reply(
    zone: Zone, data: bytes, *, max_size: int | None, log: QueryLog, client: str
) -> bytes | None:
    """reply_to, or SERVFAIL if answering fails: one odd packet never stops the server."""
    try:
        return reply_to(zone, data, max_size=max_size, log=log, client=client)
    except Exception:  # a bug must not take the server down for everybody else
        return _header_only(data, dns.rcode.SERVFAIL)


class DnsServer:
    """The server: start() binds UDP and TCP on one port (port 0: a free one)."""

    def __init__(self, zone: Zone, host: str = HOST, port: int = 0) -> None:
        self.zone = zone
        self.host = host
        self.port = port
        self.idle_seconds = TCP_IDLE_SECONDS
        self.log = QueryLog()  # every question answered, for lessons to judge
        self._tcp: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for _attempt in range(20):  # port 0: TCP's free port may be taken for UDP
            self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port)
            port = self._tcp.sockets[0].getsockname()[1]
            try:
                self._udp, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self.zone, self.log), local_addr=(self.host, port)
                )
            except OSError:
                await self._close_tcp()
                if self.port:
                    raise
                continue
            self.port = port
            return
        raise OSError(f"no free port on {self.host} for both UDP and TCP")

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._close_tcp()

    async def _close_tcp(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
            self._tcp = None

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_TCP_CONNECTIONS:
            writer.close()
            return
        self._connections.add(task)
        try:
            peer = writer.get_extra_info("peername") or ("", 0)
            await self._tcp_queries(reader, writer, str(peer[0]))
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away, sent half a message, or stayed idle
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _tcp_queries(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str
    ) -> None:
        while True:
            prefix = await asyncio.wait_for(reader.readexactly(2), self.idle_seconds)
            (length,) = struct.unpack("!H", prefix)
            data = await asyncio.wait_for(reader.readexactly(length), self.idle_seconds)
            reply = _safe_reply(self.zone, data, max_size=65535, log=self.log, client=client)
            if reply is None:
                return  # not a query we can even answer FORMERR to: hang up
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()


async def serve_until_signalled(server: DnsServer) -> None:
    """Run until SIGINT or SIGTERM (the foreground `smtp-tutor dns --serve`)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await server.close()


@contextlib.contextmanager
def running_in_thread(zone: Zone, host: str = HOST, port: int = 0) -> Iterator[DnsServer]:
    """A started server on its own event loop in a daemon thread, closed on exit."""
    loop = asyncio.new_event_loop()
    server = DnsServer(zone, host, port)
    thread = threading.Thread(target=loop.run_forever, name="dns-server", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=30)
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
