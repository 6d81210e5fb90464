"""`dns NAME [TYPE]`: the simulated zone's answer, shaped like dig's; `dns --serve`: the
zone on a real DNS server on loopback, in the foreground, for the learner's own dig.

The answer is computed in this process from the same Zone the server serves: no socket,
no query. The NAME comes from the command line and is untrusted: it reaches the screen
only through ui.safe (escaped by dnspython first, made visible after).
"""

from __future__ import annotations

import asyncio

import dns.exception
import dns.name
import dns.rrset
from rich.console import Group, RenderableType
from rich.text import Text

from tutor.errors import UsageError, UserError, reason
from tutor.ui.common.safe import join, untrusted
from tutor.ui.common.terminal import Terminal
from tutor.world.dns_server import HOST, DnsServer, serve_until_signalled
from tutor.world.dnsdata import SIMULATED_NOTE
from tutor.world.zone import QUERY_TYPES, Answer, dig_fields, parse_type, simulated_zone

TYPES_HELP = ", ".join(t.name for t in QUERY_TYPES)
_OWNER_COLUMN = 24  # dig pads the owner name with tabs to this column


def query_name(text: str) -> dns.name.Name:
    try:
        return dns.name.from_text(text)
    except dns.exception.DNSException as error:
        raise UsageError(f"{text!r} is not a domain name ({error})") from None


def query_type(text: str) -> dns.rdatatype.RdataType:
    try:
        return parse_type(text)
    except ValueError:
        raise UsageError(f"unknown TYPE {text!r}: use one of {TYPES_HELP}") from None


def dns_answer(name: str, rdtype: str) -> RenderableType:
    """The zone's answer to (NAME, TYPE) as dig would print it, with the simulated note."""
    qname, qtype = query_name(name), query_type(rdtype)
    zone = simulated_zone()
    answer = zone.resolve(qname, qtype)
    lines: list[Text] = [
        Text(f"; {SIMULATED_NOTE}", style="dim"),
        Text(f";; ->>HEADER<<- opcode: QUERY, status: {answer.rcode.name}"),
        Text(f";; flags: {_flags(answer)}; ANSWER: {_count(answer.answer)}"),
    ]
    if not answer.authoritative:
        lines.append(
            Text(f";; not a simulated domain; the zone serves {', '.join(zone.domains())}")
        )
    lines += [Text(""), Text(";; QUESTION SECTION:")]
    lines.append(join(Text(";"), _padded(qname.to_text()), Text(f"IN\t{qtype.name}")))
    for title, section in (("ANSWER", answer.answer), ("AUTHORITY", answer.authority)):
        if section:
            lines += [Text(""), Text(f";; {title} SECTION:")]
            lines += [
                _record_line(rrset_fields)
                for rrset in section
                for rrset_fields in dig_fields(rrset)
            ]
    return Group(*lines)


def _flags(answer: Answer) -> str:
    return "qr aa" if answer.authoritative else "qr"


def _count(section: tuple[dns.rrset.RRset, ...]) -> int:
    return sum(len(rrset) for rrset in section)


def _record_line(fields: tuple[str, str, str, str, str]) -> Text:
    owner, ttl, rdclass, rdtype, data = fields
    return join(_padded(owner), Text(f"{ttl}\t{rdclass}\t{rdtype}\t"), untrusted(data))


def _padded(owner: str) -> Text:
    """The owner name (untrusted: it may be the user's) and the tabs that follow it."""
    shown = untrusted(owner)
    tabs = max(1, -(-(_OWNER_COLUMN - len(shown.plain)) // 8))
    return join(shown, Text("\t" * tabs))


def serve(terminal: Terminal, port: int) -> int:
    """Serve the simulated zone on 127.0.0.1 until Ctrl-C or SIGTERM; exit status 0."""
    asyncio.run(_serve(terminal, port))
    return 0


async def _serve(terminal: Terminal, port: int) -> None:
    server = DnsServer(simulated_zone(), HOST, port)
    try:
        await server.start()
    except OSError as error:  # the port is taken (or privileged): the user can pick another
        raise UserError(f"{HOST}:{port}: {reason(error)} (try --port 0 for a free port)") from None
    where = f"{HOST}:{server.port}"
    terminal.out.print(
        Text(
            f"DNS server for the simulated zone on {where} — try: "
            f"dig @{HOST} -p {server.port} MX example.test"
        ),
        soft_wrap=True,
    )
    terminal.out.print(Text("Ctrl-C stops it.", style="dim"))
    await serve_until_signalled(server)
