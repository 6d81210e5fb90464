"""`smtp-tutor world`: the simulated internet in the foreground, for other terminals.

It prints the map (with --json: one JSON line, flushed at once, and nothing after it),
then waits for Ctrl-C or SIGTERM and stops everything; exit status 0. The Maildir path
is the user's and reaches the screen only through ui.safe.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.text import Text

from tutor.server.persona import DEMO_ACCOUNTS
from tutor.server.world import World, WorldMap
from tutor.ui.common.safe import join, untrusted
from tutor.ui.common.terminal import Terminal


def run(
    terminal: Terminal,
    maildir: Path,
    *,
    dns_port: int,
    port: int,
    base_port: int | None,
    as_json: bool,
) -> int:
    stop = threading.Event()
    with _stopped_by_signals(stop):
        world = World(maildir, dns_port=dns_port, port=port, base_port=base_port)
        world_map = world.start()
        try:
            if as_json:
                _print_json(terminal, world_map)
            else:
                _print_map(terminal, world_map, base_port)
            stop.wait()
        finally:
            world.stop()
    return 0


@contextmanager
def _stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set `stop` (the main thread then stops the world in order)
    instead of raising where they land."""
    previous = {
        signum: signal.signal(signum, lambda _signum, _frame: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _print_json(terminal: Terminal, world_map: WorldMap) -> None:
    # Straight to the file, not through rich: one line a program reads at once.
    stream = terminal.out.file
    stream.write(json.dumps(world_map.as_json(), ensure_ascii=False) + "\n")
    stream.flush()


def own_ports_line(*, chosen: bool) -> str:
    """Why each MTA has a port of its own, and what a client must do about it."""
    why = (
        "--base-port asked for it"
        if chosen
        else "this system cannot listen on 127.0.0.x beyond 127.0.0.1 (no loopback aliases)"
    )
    return (
        f"Each MTA listens on 127.0.0.1 at a port of its own, because {why}. DNS still "
        "names the 127.0.0.x addresses, which do not reach these MTAs: give your client "
        "127.0.0.1 and the MTA's port from the table, not the address DNS gives."
    )


def _print_map(terminal: Terminal, world_map: WorldMap, base_port: int | None) -> None:
    out = terminal.out
    out.print(
        Text(
            f"DNS server for the simulated zone on {world_map.dns} "
            "(it answers only its own domains and never recurses)"
        ),
        soft_wrap=True,
    )
    out.print(
        join(Text("Mail is stored under "), untrusted(str(world_map.maildir))), soft_wrap=True
    )
    if not world_map.shared_port:
        out.print(Text(own_ports_line(chosen=base_port is not None)), soft_wrap=True)
    out.print(Text(""))
    for row in _table_rows(world_map):
        out.print(Text(row), soft_wrap=True)
    out.print(Text(""))
    out.print(Text("Try, from another terminal:"))
    for line in try_lines(world_map):
        out.print(Text(f"  {line}"), soft_wrap=True)
    out.print(Text("Ctrl-C stops the world.", style="dim"))


def _table_rows(world_map: WorldMap) -> list[str]:
    rows = [("domain", "host", "address:port", "role")]
    for mta in world_map.mtas:
        where = f"{mta.address}:{mta.port}" + ("" if mta.host.listens else " (nothing listens)")
        rows.append((mta.host.domain, mta.host.host, where, mta.host.role.value))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    ]


def try_lines(world_map: WorldMap) -> list[str]:
    """The dig and telnet lines the map offers."""
    dns_port = world_map.dns_port
    mx1 = world_map.mta("mx1.example.org")
    return [
        f"dig @{world_map.dns_host} -p {dns_port} MX example.org",
        f"dig @{world_map.dns_host} -p {dns_port} TXT _dmarc.tutor.test +tcp",
        f"telnet {mx1.address} {mx1.port}",
        *_dkim_lines(world_map),
    ]


def _dkim_lines(world_map: WorldMap) -> list[str]:
    """Submitting DKIM-signed mail, and the key it is checked with (docs/world.md); only
    where the MTAs reach each other at their DNS addresses, so that relaying works."""
    if not world_map.shared_port:
        return []
    submission = world_map.mta("smtp.tutor.test")
    password = DEMO_ACCOUNTS["you"]
    return [
        f"swaks --server {submission.address} --port {submission.port} --tls "
        f"--auth-user you --auth-password {password} --from you@tutor.test "
        "--to bob@example.org",
        f"dig @{world_map.dns_host} -p {world_map.dns_port} TXT lesson._domainkey.tutor.test",
    ]
