"""The sandbox's own views: TLS facts, the wire, base64 and AUTH made visible, help.

The lesson screen shows TLS facts and the first encrypted exchange with these too.
Everything that came from the network or the learner is untrusted (ui.safe); the hex
dump's printable column holds only ASCII letters, digits and punctuation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tutor.client.client import TAP_HEAD, TapRecord, TlsInfo
from tutor.client.mitm import MitmDemo
from tutor.client.tlsfacts import CertFacts, tls_facts, verification_note
from tutor.client.wiredump import DUMP_LIMIT, WireSide, ciphertext_summary, hexdump, sides
from tutor.explain.annotate import extension_meaning
from tutor.sandbox.sandbox import SLASH_COMMANDS
from tutor.smtp.authcodec import AuthDecoding, B64Report, auth_note, auth_plain, shown
from tutor.smtp.events import RELAY_FOLDER, Exchange, MessageStored
from tutor.smtp.session_state import SessionState
from tutor.smtp.textsafe import wire_lines
from tutor.ui.common.safe import join, untrusted, untrusted_line

if TYPE_CHECKING:  # the world and dnspython load only for `sandbox --to`
    from tutor.sandbox.routed import Attempt
    from tutor.server.world import WorldMap
    from tutor.world.routing import Route

PLAINTEXT_LINES = 6  # lines of SMTP text shown per side in the wire view
LINE_SHOWN = 240  # bytes of one such line: 3 rows at 80 columns


def section(
    content: RenderableType, title: str, *, plain: bool, style: str = "blue"
) -> RenderableType:
    """A titled block: a panel, or a `== title ==` line with --plain."""
    heading = untrusted(title, "bold")  # a title may name a server or a host
    if plain:
        return Group(join(Text("== "), heading, Text(" ==")), content)
    return Panel(content, title=heading, title_align="left", border_style=style)


def _facts_table(rows: Sequence[tuple[str, Text]]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(Text(label), value)
    return table


# --- TLS -------------------------------------------------------------------------------------


def tls_panel(
    info: TlsInfo, *, builtin: bool, plain: bool, title: str = "TLS: this connection is encrypted"
) -> RenderableType:
    """Version, cipher, the certificate's facts, and what "verified" means here."""
    facts = tls_facts(info)
    rows: list[tuple[str, Text]] = [
        ("protocol", untrusted(facts.version)),
        ("cipher", untrusted(f"{facts.cipher} ({facts.cipher_bits}-bit)")),
    ]
    cert = facts.cert
    if cert is None:
        rows.append(("certificate", untrusted(facts.cert_problem, "yellow")))
    else:
        rows += _cert_rows(cert)
    verdict = "yes" if facts.verified else "no"
    rows.append(("verified", Text(verdict, style="green" if facts.verified else "yellow")))
    note = verification_note(facts, builtin=builtin)
    body = Group(_facts_table(rows), untrusted(note, "" if facts.verified else "yellow"))
    return section(body, title, plain=plain, style="magenta")


def _cert_rows(cert: CertFacts) -> list[tuple[str, Text]]:
    issuer = cert.issuer
    if cert.self_signed:
        issuer += "  (the subject itself: self-signed)"
    valid = f"{cert.not_before:%Y-%m-%d} to {cert.not_after:%Y-%m-%d} (UTC)"
    if cert.expired():
        valid += "  (not valid now)"
    return [
        ("subject", untrusted(cert.subject)),
        ("names (SAN)", untrusted(", ".join(cert.names) or "(none)")),
        ("issuer", untrusted(issuer)),
        ("valid", untrusted(valid)),
        ("key", untrusted(cert.key)),
        ("SHA-256", Text("\n").join([untrusted(cert.sha256[:47]), untrusted(cert.sha256[48:])])),
    ]


def mitm_view(demo: MitmDemo, *, plain: bool) -> RenderableType:
    """The man-in-the-middle demonstration: the impostor, the refusal, what leaked."""
    impostor, genuine = demo.impostor, demo.genuine
    host, port = demo.upstream
    parts: list[RenderableType] = [
        Text(
            "Demonstration on loopback only: a proxy in front of the built-in server plays "
            "the attacker. When a client says STARTTLS, the middle starts TLS itself and "
            "presents its own certificate for the same name.",
            style="dim",
        ),
        _facts_table(
            [
                ("impostor's cert", untrusted(impostor.subject)),
                ("its issuer", untrusted(impostor.issuer + "  (itself: self-signed)")),
                ("its SHA-256", untrusted(impostor.sha256[:47] + "…")),
                ("the real one's", untrusted(genuine.sha256[:47] + "…")),
                ("real issuer", untrusted(genuine.issuer)),
            ]
        ),
        Text("1. A client that verifies (against the smtp-tutor local CA):", style="bold"),
    ]
    if demo.refusal:
        parts.append(join(Text("   refused: ", style="green"), untrusted(demo.refusal)))
        parts.append(
            Text(
                "   It hung up before sending a single encrypted byte: the middle learned "
                "nothing. This is what RFC 8314 §5.3 and RFC 7817 ask of every mail client.",
            )
        )
    else:
        parts.append(Text("   it was not refused: the demonstration did not work", "red"))
    parts.append(
        Text("2. A client that does not verify (as opportunistic STARTTLS often does):", "bold")
    )
    for command, reply in demo.unverified_session:
        parts.append(join(Text("   C: "), untrusted(command), Text("   S: "), untrusted(reply)))
    parts.append(Text("   What the middle decrypted and read on its way through:", style="bold"))
    parts += [join(Text("     "), untrusted(line, "red")) for line in demo.read_by_middle]
    if demo.stolen:
        parts.append(
            join(
                Text("   The password, decoded by the middle: ", style="bold red"),
                untrusted(demo.stolen, "bold red"),
            )
        )
    parts.append(
        join(
            Text(
                "Encryption without verification only hides the session from those who "
                "merely listen; whoever sits in the middle reads it all. Verify by hand: "
            ),
            untrusted(
                f"openssl s_client -starttls smtp -connect {host}:{port} -servername "
                f"mx.tutor.test -CAfile {demo.ca_file} -verify_return_error"
            ),
        )
    )
    return section(Group(*parts), "A man in the middle (/mitm)", plain=plain, style="red")


def no_tls_line(*, connected: bool = True) -> Text:
    if not connected:
        return Text(
            "There is no connection now, so nothing is encrypted: /reset opens a new session.",
            style="yellow",
        )
    return Text(
        "This connection is not encrypted. After EHLO, STARTTLS upgrades it (if the server "
        "offers it); every byte so far crossed the network readable by anyone on the path.",
        style="yellow",
    )


# --- the wire ----------------------------------------------------------------------------------


def wire_view(records: Sequence[TapRecord], *, plain: bool) -> RenderableType:
    """The last exchange: SMTP text beside the bytes that were written and read."""
    if not records:
        return Text("Nothing has crossed the wire yet in this session.", style="dim")
    parts: list[RenderableType] = []
    for side in sides(records):
        parts += _side(side, plain=plain)
    caption = "From the client's byte tap: what smtp-tutor wrote to and read from the socket."
    if any(record.tls for record in records):
        caption += (
            " Under TLS only the two ends can turn the ciphertext back into SMTP. Each TLS "
            "record has a 5-byte header in the clear: its type (16 handshake, 17 application "
            "data), a version field (03 03, or 03 01 in a first hello) and a length; once "
            "the handshake is done, what follows is encrypted."
        )
    parts.append(Text(caption, style="dim"))
    return section(Group(*parts), "On the wire: the last exchange", plain=plain)


def _side(side: WireSide, *, plain: bool) -> list[RenderableType]:
    arrow = (
        ("C: you -> server" if plain else "you → server")
        if side.direction == "sent"
        else ("S: server -> you" if plain else "server → you")
    )
    out: list[RenderableType] = []
    text_size = len(side.plaintext) + side.not_kept_text
    size = len(side.wire) + side.not_kept
    if text_size:
        out.append(Text(f"{arrow}: {text_size} bytes of SMTP text", style="bold"))
        out += _text_lines(side.plaintext)
    else:
        out.append(Text(f"{arrow}: TLS handshake or housekeeping, no SMTP text", style="bold"))
    if side.tls and not text_size:
        what = f"on the wire: {size} bytes of TLS records"
    elif side.tls:
        what = f"on the wire: {size} bytes of TLS ciphertext"
    else:
        what = f"on the wire: the same {size} bytes, unencrypted (no TLS)"
    out.append(Text("  " + what, style="magenta" if side.tls else "yellow"))
    out += [Text("    " + row) for row in hexdump(side.wire[:DUMP_LIMIT])]
    shown = min(len(side.wire), DUMP_LIMIT)
    if size > shown:
        more = f"    … {size - shown} more bytes"
        if side.not_kept:
            more += (
                f" ({side.not_kept} of them not kept: of a long exchange the tap keeps "
                f"the first and the last {TAP_HEAD // 1024} KiB)"
            )
        out.append(Text(more))
    return out


def _text_lines(data: bytes) -> list[Text]:
    lines = wire_lines(data, keepends=True)
    out = [_text_line(line) for line in lines[:PLAINTEXT_LINES]]
    if len(lines) > PLAINTEXT_LINES:
        out.append(Text(f"    … {len(lines) - PLAINTEXT_LINES} more lines", style="dim"))
    return out


def _text_line(line: bytes) -> Text:
    """One line of SMTP text, cut short if a server sent one far past the RFC's 512 octets."""
    if len(line) <= LINE_SHOWN:
        return join(Text("    "), untrusted_line(line))
    rest = Text(f" … {len(line) - LINE_SHOWN} more bytes in this line", style="dim")
    return join(Text("    "), untrusted_line(line[:LINE_SHOWN]), rest)


def wire_line(records: Sequence[TapRecord], *, plain: bool) -> RenderableType | None:
    """One line for the lesson screen: what an eavesdropper saw of an encrypted command."""
    summary = ciphertext_summary(records)
    if summary is None:
        return None
    text = Text(f"{summary}: all an eavesdropper sees of it.", style="magenta")
    return Padding(text, (0, 0, 0, 2))


# --- base64 and AUTH ------------------------------------------------------------------------------


def b64_view(report: B64Report) -> RenderableType:
    lines = [
        join(Text("base64 of "), untrusted(f'"{report.text}"'), Text(":")),
        join(Text("  "), untrusted(report.encoded, "bold")),
    ]
    if report.decoded is not None:
        lines.append(
            join(
                Text("it is base64 itself, and decodes to: "),
                untrusted(f'"{shown(report.decoded)}"', "bold"),
            )
        )
    lines.append(Text("Base64 is an encoding, not encryption: anyone can reverse it.", style="dim"))
    return Group(*lines)


def plain_view(user: str, password: str) -> RenderableType:
    value = auth_plain(user, password)
    return Group(
        Text("The AUTH PLAIN argument is base64 of: (empty authzid) NUL user NUL password"),
        join(Text("  "), untrusted(value, "bold")),
        join(Text("type:  "), untrusted(f"AUTH PLAIN {value}", "bold")),
        join(
            Text("it decodes to: "),
            untrusted(f'"\\0{user}\\0{password}"'),
            Text("  (RFC 4616 §2)"),
        ),
        Text(
            "Base64 is not encryption: anyone who sees this line can decode the password. "
            "Send it only after STARTTLS (before it, the built-in server answers 503).",
            style="yellow",
        ),
    )


def auth_view(decoding: AuthDecoding, *, tls: bool) -> RenderableType:
    note = untrusted(auth_note(decoding, tls=tls), "magenta" if tls else "yellow")
    return Padding(note, (0, 0, 0, 4))


# --- the session ---------------------------------------------------------------------------------


def stored_line(stored: MessageStored) -> RenderableType:
    copies = []
    for copy in stored.copies:
        where = f"{copy.folder} ({copy.recipient})"
        if copy.folder == RELAY_FOLDER:
            where += ": relay mail, captured here and never sent"
        copies.append(where)
    text = untrusted(
        f"The server stored message {stored.queue_id} in: {'; '.join(copies)}. "
        "/mailbox lists what it holds.",
        "green",
    )
    return Padding(text, (0, 0, 0, 2))


def state_view(state: SessionState, *, plain: bool) -> RenderableType:
    facts = state.summary()
    lines: list[RenderableType] = [untrusted("server knows: " + " · ".join(facts), "bold")]
    if state.extensions:
        lines.append(Text("extensions offered in the last EHLO reply:"))
        for keyword, params in state.extensions.items():
            line = f"{keyword} {params}".strip()
            lines.append(untrusted(f"  {line} — {extension_meaning(line)}"))
    elif state.greeting == "HELO":
        lines.append(Text("HELO was used: no extensions are available in this session."))
    return Group(*lines)


def help_view(*, builtin: bool, mailbox: bool | None = None) -> RenderableType:
    """The sandbox's commands; `mailbox`: whether /mailbox works here (default: builtin)."""
    mailbox = builtin if mailbox is None else mailbox
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(no_wrap=True, style="bold")
    table.add_column()
    for usage, what in SLASH_COMMANDS.values():
        if usage == "/mailbox" and not mailbox:
            what += " (not for this server)"
        elif usage == "/mailbox" and not builtin:
            what = "the messages this domain's MTAs stored"
        table.add_row(Text(usage), Text(what))
    lines: list[RenderableType] = [
        Text(
            "Anything else is sent to the server as typed, CRLF added. After DATA's 354, "
            "every line is message text until a line with only '.'; a text line that "
            "starts with a dot must be typed with one more ('..'), as the server removes "
            "one (dot-stuffing, RFC 5321 §4.5.2). Slash commands work outside DATA only."
        ),
        table,
    ]
    if builtin:
        lines.append(
            Text(
                "Demo accounts for AUTH (after STARTTLS and a new EHLO): "
                "you / tutor-password, alice / wonderland."
            )
        )
    return Group(*lines)


# --- the lesson screen ---------------------------------------------------------------------------


def lesson_tls_view(
    tls: TlsInfo | None,
    tap: Sequence[TapRecord],
    exchanges: Sequence[Exchange],
    *,
    first_tls: bool,
    plain: bool,
) -> list[RenderableType]:
    """After STARTTLS in a lesson: the TLS facts; for the first encrypted exchange, the wire."""
    if tls is not None:
        title = "TLS started: from here on, this connection is encrypted"
        return [tls_panel(tls, builtin=True, plain=plain, title=title)]
    if first_tls and any(exchange.tls for exchange in exchanges):
        line = wire_line(tap, plain=plain)
        return [line] if line is not None else []
    return []


# --- sandbox --to: the route, before the session ------------------------------------------------


def world_line(world_map: WorldMap) -> Text:
    ports = "on one shared port" if world_map.shared_port else "on 127.0.0.1, a port each"
    return join(
        Text(
            f"The simulated world runs in the background: its DNS server on {world_map.dns}, "
            f"one teaching MTA per mail host {ports} (docs/world.md). Mail is stored under "
        ),
        untrusted(str(world_map.maildir)),
        Text("."),
    )


def dns_answer_view(route: Route, dns: str) -> RenderableType:
    """What the world's DNS server answered, as the records a sending MTA reads."""
    from tutor.world.routing import RouteKind

    domain, rows = route.domain, []
    if route.kind is RouteKind.MX:
        mx = ", ".join(f"{hop.preference} {hop.host}" for hop in route.hops)
        rows.append((domain, "MX", mx))
    elif route.kind is RouteKind.A_FALLBACK:
        rows.append((domain, "MX", "none: no MX, so the A record is used"))
    elif route.kind is RouteKind.NULL_MX:
        rows.append((domain, "MX", "0 . (a null MX: this domain takes no mail)"))
    elif route.kind is RouteKind.NO_DOMAIN:
        rows.append((domain, "MX", "NXDOMAIN: no such domain"))
    else:
        rows.append((domain, "MX", "none"))
        rows.append((domain, "A", "none"))
    for hop in route.hops:
        ipv4 = [address for address in hop.addresses if ":" not in address]
        ipv6 = [address for address in hop.addresses if ":" in address]
        rows.append((hop.host, "A", ", ".join(ipv4) or "none (no address record)"))
        if ipv6:  # routing asks A, then AAAA (docs/dns.md)
            rows.append((hop.host, "AAAA", ", ".join(ipv6)))
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, style="bold")
    table.add_column()
    for name, rdtype, data in rows:
        table.add_row(untrusted(name), Text(rdtype), untrusted(data))
    title = Text(f"DNS, asked for real at the world's DNS server ({dns}):")
    return Group(title, Padding(table, (0, 0, 0, 2)))


def route_line(route: Route) -> Text:
    return untrusted(f"Route: {route.why}.")


def gives_up_line(route: Route) -> Text:
    """A null MX, NXDOMAIN or no address: no host to try, no session (exit status 1)."""
    from tutor.world.routing import RouteKind

    if route.kind is RouteKind.NULL_MX:  # the reason already says the sender gives up
        return untrusted(f"No session: {route.why}.", "red")
    return untrusted(f"The sender gives up at once: {route.why}. No session.", "red")


def attempt_line(attempt: Attempt, *, more: bool) -> RenderableType:
    """One try: where, what came back, and what a sending MTA does next. `more`: another
    host or address of the route is left to try."""
    return Padding(_attempt_text(attempt, more=more), (0, 0, 0, 2))


def _attempt_text(attempt: Attempt, *, more: bool) -> Text:
    from tutor.sandbox.routed import Outcome

    hop = attempt.hop
    where = f"{hop.host} [{attempt.address}]:{attempt.port}" if attempt.port else hop.host
    if attempt.connect_to and attempt.connect_to != attempt.address and attempt.port:
        where += f" (listening on {attempt.connect_to}:{attempt.port} on this system)"
    next_step = "trying the next MX" if hop.preference is not None else "trying the next address"
    if not more:
        next_step = "no host is left to try"
    if attempt.outcome is Outcome.SESSION:
        return untrusted(f"{where} answered 220: this is the session", "green")
    if attempt.outcome is Outcome.NO_ADDRESS:
        return untrusted(f"{where} has no address record: {next_step}", "yellow")
    if attempt.outcome is Outcome.NOT_REACHABLE:
        return untrusted(f"{hop.host} [{attempt.address}]: {attempt.detail}; {next_step}", "yellow")
    if attempt.outcome is Outcome.NO_CONNECTION:
        return untrusted(f"{where}: {attempt.detail}: {next_step}", "yellow")
    assert attempt.reply is not None
    said = " ".join(attempt.reply.wire_lines()[:1])
    kind = "a temporary failure" if attempt.outcome is Outcome.TEMPORARY else "no service here"
    return untrusted(f"{where} answered {said} — {kind}, {next_step}", "yellow")


def no_host_line(route: Route, attempts: Sequence[Attempt]) -> Text:
    """Every host failed or could not be tried: no session (exit status 1)."""
    from tutor.sandbox.routed import Outcome

    temporary = any(a.outcome in (Outcome.TEMPORARY, Outcome.NO_CONNECTION) for a in attempts)
    if temporary:
        why = (
            "a sending MTA keeps the message in its queue and tries the route again later, "
            "until it gives up and bounces it (RFC 5321 §4.5.4.1)"
        )
    else:
        why = "a sending MTA bounces the message"
    return untrusted(f"No host of {route.domain} took the mail: {why}. No session.", "red")
