"""What a world lesson shows: the world's DNS answer in dig's shape, each host reached (or
not), the learner's queue on its simulated clock, and where to point their own dig.

Everything here may hold text from the network (DNS data, reply lines, error messages):
it reaches the screen through ui.safe only.
"""

from __future__ import annotations

from typing import Any

import dns.message
import dns.rcode
from rich.console import Group, RenderableType
from rich.text import Text

from tutor.smtp.events import DnsLookup, DsnDelivered, HostReached, MailboxRead
from tutor.ui.common.safe import join, untrusted
from tutor.world.dns_server import HOST
from tutor.world.zone import dig_fields


def world_intro(
    dns_port: int, smtp_port: int, *, shared_port: bool = True, plain: bool
) -> RenderableType:
    """Where the world is, so that a second terminal can ask the same DNS server."""
    if not shared_port:  # a system that can use 127.0.0.1 only (macOS without aliases)
        return Group(
            Text(
                f"The simulated internet is running: its DNS server is {HOST} port {dns_port}.",
                style="bold",
            ),
            Text(
                "This system can use 127.0.0.1 only, so each mail host listens on 127.0.0.1 "
                "at a port of its own, not on the 127.0.0.x address DNS gives it. Here, "
                "connect HOST still finds it and says where it went; from another terminal, "
                "give the port as well (smtp-tutor world --json lists them).",
                style="yellow",
            ),
            Text(f"    dig @{HOST} -p {dns_port} MX example.org", style="" if plain else "cyan"),
        )
    return Group(
        Text(
            f"The simulated internet is running: its DNS server is {HOST} port {dns_port}, "
            f"and its mail hosts listen on their own 127.0.0.x addresses, port {smtp_port}.",
            style="bold",
        ),
        Text(
            "Here, type dig … to ask its DNS server and connect HOST to open a session "
            "(the tutor finds the port). In another terminal, real tools work too: after a "
            "dig or a telnet there, press Enter here and the lesson catches up with what the "
            "servers saw:",
        ),
        Text(f"    dig @{HOST} -p {dns_port} MX example.org", style="" if plain else "cyan"),
        Text(f"    telnet 127.0.0.12 {smtp_port}", style="" if plain else "cyan"),
    )


def dig_answer(reply: Any, *, plain: bool) -> RenderableType:
    """A dns.message.Message as dig prints it: header, question, answer, authority."""
    assert isinstance(reply, dns.message.Message)
    rcode = dns.rcode.to_text(reply.rcode())
    count = sum(len(r) for r in reply.answer)
    flags = " ".join(
        flag for flag, bit in (("qr", 0x8000), ("aa", 0x0400), ("tc", 0x0200)) if reply.flags & bit
    )
    lines: list[RenderableType] = [
        Text(f";; ->>HEADER<<- opcode: QUERY, status: {rcode}"),
        Text(f";; flags: {flags}; ANSWER: {count}"),
    ]
    for question in reply.question:
        lines += [Text(";; QUESTION SECTION:")]
        lines.append(
            join(
                Text(";"), untrusted(question.name.to_text()), Text(f"\tIN\t{question.rdtype.name}")
            )
        )
    for title, section in (("ANSWER", reply.answer), ("AUTHORITY", reply.authority)):
        if section:
            lines.append(Text(f";; {title} SECTION:"))
            for rrset in section:
                for owner, ttl, rdclass, rdtype, data in dig_fields(rrset):
                    lines.append(
                        join(
                            untrusted(owner),
                            Text(f"\t{ttl}\t{rdclass}\t{rdtype}\t"),
                            untrusted(data),
                        )
                    )
    return Group(*lines)


def lookup_note(event: DnsLookup) -> Text:
    """A question the DNS server answered that the tutor did not ask (a dig elsewhere)."""
    what = f"{event.answers} record{'s' if event.answers != 1 else ''}"
    return join(
        Text("  The world's DNS server was asked ", style="dim"),
        untrusted(f"{event.rdtype} {event.name}", "dim"),
        Text(
            f" (from {event.client or 'somewhere'}) and answered {event.rcode}, {what}.",
            style="dim",
        ),
    )


def reached_note(event: HostReached) -> Text:
    where = f"{event.host or event.address} [{event.address}] port {event.port}"
    if event.outside:
        return untrusted(
            f"  A session from another terminal reached {where}; the tutor follows it here:",
            "bold",
        )
    if event.code:
        return untrusted(f"  Connected to {where}.", "bold")
    return untrusted(
        f"  No session with {where}: {event.error}. A sending server would try its next "
        "host, or keep the message queued and try later.",
        "yellow",
    )


def queue_view(timeline: list[str]) -> RenderableType:
    """Your MTA's log: what it did with the mail it still held (one line per attempt of
    the queue, at simulated times: each attempt was really made)."""
    return Group(
        Text(
            "Your MTA's queue (a simulated clock; each attempt below was really made):",
            style="bold",
        ),
        *(untrusted("  " + line) for line in timeline),
    )


def dsn_note(event: DsnDelivered) -> Text:
    return untrusted(
        f"  DSN: Action: {event.action}, Status: {event.status}, for <{event.recipient}>, "
        f"delivered to <{event.to}>.",
        "magenta",
    )


def inbox_heading(read: MailboxRead) -> Text:
    return untrusted(
        f"{read.address}'s mailbox, {read.ref}, every line as its server stored it:", "bold"
    )


def verdicts_line(read: MailboxRead) -> Text:
    """The receiving server's verdicts, from the top Authentication-Results field."""
    if not read.results:
        return Text("  No Authentication-Results verdicts in this copy.", style="yellow")
    return untrusted(
        "  The receiving server's verdicts (Authentication-Results): " + ", ".join(read.results),
        "magenta",
    )
