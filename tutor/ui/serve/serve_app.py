"""`smtp-tutor serve`: start the server, show the dashboard or print the line log until Ctrl-C."""

from __future__ import annotations

import dataclasses
import queue
import signal
import threading
import time

from rich.console import Console
from rich.text import Text

from tutor.sandbox import lan, serve
from tutor.server.access import CLASS_NETWORKS, admitted
from tutor.server.process import PipeEvents, ServerProcess
from tutor.smtp.events import RELAY_FOLDER
from tutor.smtp.wire import is_loopback
from tutor.ui.common.safe import join, untrusted
from tutor.ui.common.terminal import Terminal
from tutor.ui.serve import dashboard
from tutor.ui.serve.serve_log import ServeLog
from tutor.ui.serve.serve_transcripts import SessionTranscripts, TeeEvents
from tutor.ui.serve.students import students_banner

# The line log says so on stderr when it is this many events behind the server (its own
# process, which does not wait for it), at most every BEHIND_NOTICE_SECONDS.
BEHIND_NOTICE = 10_000
BEHIND_NOTICE_SECONDS = 5.0

_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)
)


def run(
    options: serve.ServeOptions,
    term: Terminal,
    *,
    line_log: bool = False,
    transcripts: SessionTranscripts | None = None,
) -> int:
    """The live dashboard on a terminal; the line log in a pipe, or when line_log asks.

    The server runs in its own process (tutor/server/process.py); this one only draws."""
    console, errors = term.out, term.err
    if options.lan:
        options = _on_the_lan(options, errors)
    server = serve.build_server_process(options)
    if options.host and not is_loopback(options.host):
        errors.print(
            Text(
                f"warning: listening on {options.host}, not loopback: other machines can "
                "connect to this teaching server",
                style="bold yellow",
            )
        )
    serve.start(server)
    events: TeeEvents | PipeEvents = server.events
    if transcripts is not None:
        events = TeeEvents(server.events, transcripts)
    try:
        if not line_log and dashboard.wanted(console, term.stdin_isatty):
            return dashboard.run_dashboard(server, options, console, events=events)
        return _line_log(server, options, console, errors, events, plain=term.plain)
    finally:
        server.stop()  # already stopped on the ordinary ways out; an error still stops it
        if transcripts is not None:
            transcripts.close()


def _line_log(
    server: ServerProcess,
    options: serve.ServeOptions,
    console: Console,
    errors: Console,
    events: TeeEvents | PipeEvents,
    *,
    plain: bool = False,
) -> int:
    log = ServeLog(console, clock=True)
    # Ctrl-C and SIGTERM only ask the loop to stop: an exception raised at an arbitrary
    # point could cut a log line or a transcript file in half.
    stop = threading.Event()
    previous = {number: signal.signal(number, lambda *_: stop.set()) for number in _STOP_SIGNALS}
    try:
        _banner(console, server, options, plain=plain)
        noticed = float("-inf")
        while not stop.is_set():
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                continue
            log.show(event)
            console.file.flush()
            if (
                events.behind >= BEHIND_NOTICE
                and time.monotonic() - noticed >= BEHIND_NOTICE_SECONDS
            ):
                noticed = time.monotonic()
                errors.print(
                    Text(
                        f"the log is {events.behind:,} events behind the server "
                        "(the server does not wait for it; every line follows)",
                        style="dim",
                    )
                )
    finally:
        server.stop()
        while True:  # what the last sessions said before the stop
            try:
                log.show(events.get_nowait())
            except queue.Empty:
                break
        for number, handler in previous.items():
            signal.signal(number, handler)
    console.print(
        join(
            Text(
                f"stopped: {_count(log.sessions, 'session')}, "
                f"{_count(log.messages, 'message')} stored in ",
                style="bold",
            ),
            untrusted(str(options.maildir)),
        )
    )
    return 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _on_the_lan(options: serve.ServeOptions, errors: Console) -> serve.ServeOptions:
    """--lan: the options with this machine's LAN address as the host, found without
    sending a packet (sandbox/lan.py); what was found, and whom it serves, on stderr."""
    serve.served_networks(options)  # a bad --allow is a usage error before anything else
    choice = lan.find()
    how = "on the default route" if choice.on_default_route else "no default route here"
    where = f"{choice.interface}, {how}" if choice.interface else how
    errors.print(
        join(Text("LAN address: ", style="bold"), untrusted(f"{choice.address} ({where})"))
    )
    if choice.others:
        others = [_named(item.address, item.interface) for item in choice.others]
        errors.print(
            join(
                Text("this machine's other addresses: "),
                *_commas(others),
                Text(" (--host ADDRESS listens on one of them instead, serving every client)"),
            )
        )
    allowed = "".join(f", {network}" for network in options.allow)
    errors.print(
        Text(
            f"serving private, link-local and loopback clients{allowed}; any other gets "
            "554 5.7.1 (--allow CIDR serves another network)"
        )
    )
    if not admitted(choice.address, CLASS_NETWORKS):
        errors.print(
            Text(
                f"note: {choice.address} is not a private address, so the students' machines "
                "probably have none either: serve their network with --allow CIDR",
                style="bold yellow",
            )
        )
    return dataclasses.replace(options, host=choice.address)


def _named(address: str, interface: str) -> Text:
    """`192.168.1.20 (wlan0)`: the interface's name is the system's, shown made safe."""
    return join(Text(address), untrusted(f" ({interface})")) if interface else Text(address)


def _commas(items: list[Text]) -> list[Text]:
    joined: list[Text] = []
    for number, item in enumerate(items):
        joined += [Text(", "), item] if number else [item]
    return joined


def _banner(
    console: Console, server: ServerProcess, options: serve.ServeOptions, *, plain: bool
) -> None:
    host, port = server.address
    hints = serve.client_hints(host, port)
    if options.host and not is_loopback(options.host):  # students connect: say it big
        console.print(students_banner(hints[:2], plain=plain))
    persona = server.persona
    places = ", ".join(
        f"{'[' + item.host + ']' if ':' in item.host else item.host}:{item.port}"
        + (" (implicit TLS)" if item.implicit_tls else "")
        for item in server.listeners
    )
    console.print(
        Text(f"smtp-tutor teaching server {persona.hostname} listening on {places}", style="bold")
    )
    relay = (
        "OPEN RELAY (other domains accepted and captured, never sent)"
        if persona.open_relay
        else "closed relay (other domains refused with 550 5.7.1)"
    )
    console.print(Text(f"mailboxes: {', '.join(persona.mailboxes)} @{persona.domain}; {relay}"))
    console.print(
        join(
            Text("Maildir: "),
            untrusted(str(options.maildir)),
            Text(f"  (captured relay mail: {RELAY_FOLDER}/)"),
        )
    )
    console.print(Text("connect from another terminal with any of:"))
    for hint in hints:
        console.print(Text("  " + hint, style="cyan"))
    console.print(
        Text(
            "Ctrl-C stops the server; every message acknowledged with 250 is already on disk.",
            style="dim",
        )
    )
    console.file.flush()
