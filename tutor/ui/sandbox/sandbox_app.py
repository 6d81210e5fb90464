"""`smtp-tutor sandbox`: a raw SMTP shell, every reply explained, the session state beside it.

The loop reads a line (prompt_toolkit in a terminal; plain lines from a pipe or --script),
hands SMTP lines to the core `Sandbox` and runs the slash commands itself, then renders
what happened with the lesson screen's exchange view and the sandbox's own views.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.padding import Padding
from rich.text import Text

from tutor.errors import UserError
from tutor.maildir import mailview
from tutor.sandbox.sandbox import (
    SLASH_COMMANDS,
    Result,
    Sandbox,
    SlashCommand,
    SlashError,
    Target,
    leaving_notice,
    parse_slash,
    pipe_lines,
)
from tutor.smtp.authcodec import b64_report
from tutor.smtp.events import MessageStored, TlsStarted
from tutor.ui.common import lesson_view, sandbox_view
from tutor.ui.common.line_input import LineInput, PromptInput, choose_input, history_file
from tutor.ui.common.mailbox_view import message_table
from tutor.ui.common.safe import join, untrusted
from tutor.ui.common.terminal import Terminal

if TYPE_CHECKING:
    from tutor.sandbox.routed import Attempt

ADDRESSES = (
    "<you@tutor.test>",
    "<alice@tutor.test>",
    "<bob@tutor.test>",
    "<carol@elsewhere.example>",
)


@dataclass(frozen=True)
class SandboxOptions:
    target: Target
    script: str | None = None
    insecure: bool = False
    timeout: float = 10.0
    cafile: Path | None = None
    to: str | None = None  # --to DOMAIN: the session is with the world MTA DNS names


def run(term: Terminal, options: SandboxOptions, maildir: Path) -> int:
    """The whole sandbox; 0 when the learner leaves, 1 when they decline to connect (or,
    with --to, when no host of the domain takes the connection). With --to, `maildir` is
    the world's Maildir root."""
    console, errors = term.out, term.err
    line_input = choose_input(
        term,
        options.script,
        lambda: PromptInput(
            ADDRESSES,
            "Enter: send · /help · /quit",
            history_file=history_file("sandbox-history"),
            slash_commands=SLASH_COMMANDS,
        ),
    )
    if options.to is not None:
        return run_routed(term, options, line_input, maildir, options.to)
    interactive = isinstance(line_input, PromptInput)
    target = options.target
    if not target.loopback:
        if interactive:
            question = f"connect to {target.where}? this leaves your machine [y/N] "
            answer = line_input.read(question)
            if answer is None or answer.strip().lower() not in ("y", "yes"):
                console.print(Text("Not connecting."))
                return 1
        else:
            errors.print(untrusted("note: " + leaving_notice(target)))
    if options.insecure and not target.builtin:
        errors.print(
            Text(
                "warning: --insecure: the server's certificate will not be checked, so "
                "an attacker in the middle could read everything, passwords included.",
                style="yellow",
            )
        )
    sandbox = Sandbox(
        target,
        timeout=options.timeout,
        insecure=options.insecure,
        cafile=options.cafile,
        maildir=maildir,
    )
    try:
        _session(SandboxScreen(console, line_input, sandbox, plain=term.plain), sandbox.open())
    finally:
        sandbox.close()
    return 0


def _session(screen: SandboxScreen, opened: Result) -> None:
    """The session on screen: the sandbox's introduction, the greeting, then each line."""
    screen.intro()
    screen.show(opened)
    screen.loop()


def run_routed(
    term: Terminal, options: SandboxOptions, line_input: LineInput, world_root: Path, domain: str
) -> int:
    """`sandbox --to DOMAIN`: the world in the background, the route from its DNS server,
    each host tried in order on screen, then the session with the first that says 220.
    Every process of the world is stopped on every way out."""
    from tutor.sandbox.routed import RoutedWorld, domain_argument, more_after
    from tutor.world.routing import RouteKind

    console = term.out
    domain = domain_argument(domain)
    with _sigterm_as_interrupt(), RoutedWorld(world_root, timeout=options.timeout) as world:
        world_map = world.start()
        route = world.route(domain)
        console.print(sandbox_view.world_line(world_map))
        console.print(sandbox_view.dns_answer_view(route, world_map.dns))
        if route.kind not in (RouteKind.MX, RouteKind.A_FALLBACK):
            console.print(sandbox_view.gives_up_line(route))
            return 1
        console.print(sandbox_view.route_line(route))
        tried: list[Attempt] = []
        for attempt in world.attempts(route):
            tried.append(attempt)
            console.print(sandbox_view.attempt_line(attempt, more=more_after(route, attempt)))
        session = tried[-1] if tried and tried[-1].client is not None else None
        if session is None:
            console.print(sandbox_view.no_host_line(route, tried))
            return 1
        sandbox = Sandbox(
            Target(session.connect_to, session.port),
            timeout=options.timeout,
            insecure=options.insecure,
            cafile=options.cafile,
            maildir=world_root / route.domain,
            world_host=session.hop.host,
            capture=session.capture,
        )
        try:
            opened = sandbox.open(session.client)
            console.print(Text(""))
            _session(SandboxScreen(console, line_input, sandbox, plain=term.plain), opened)
        finally:
            sandbox.close()
    return 0


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the sandbox as Ctrl-C does, so that the world's processes are stopped
    (a signal handler can be set in the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class SandboxScreen:
    def __init__(
        self, console: Console, line_input: LineInput, sandbox: Sandbox, *, plain: bool
    ) -> None:
        self.console = console
        self.line_input = line_input
        self.sandbox = sandbox
        self.plain = plain

    def intro(self) -> None:
        sandbox = self.sandbox
        if sandbox.builtin:
            where = (
                f"A private teaching server (mx.tutor.test) is listening on {sandbox.where}; "
                "nothing you send leaves this machine."
            )
        elif sandbox.world_host is not None:
            where = (
                f"Connected to {sandbox.world_host} ({sandbox.where}), a teaching MTA of the "
                "simulated world; nothing you send leaves this machine."
            )
        else:
            where = (
                f"Connected to {sandbox.where}. This is not smtp-tutor's own server: the "
                "explanations go by reply codes and RFCs, not by its wording."
            )
        self.console.print(
            untrusted(
                f"SMTP sandbox. {where} Type SMTP commands: each is sent as typed, CRLF "
                "added. /help lists the sandbox's own commands.",
                "bold",
            )
        )

    def loop(self) -> None:
        while True:
            self.line_input.set_status(" · ".join(self.sandbox.state.summary()))
            line = self.line_input.read(self._prompt())
            if line is None:
                return
            # In DATA a line starting with "/" is message text, except /lf, which exists
            # to send message text with a bare LF.
            bare_lf = line == "/lf" or line.startswith("/lf ")
            if (not self.sandbox.in_data and line.startswith("/")) or bare_lf:
                try:
                    command = parse_slash(line)
                except SlashError as error:
                    self.console.print(untrusted(str(error), "yellow"))
                    continue
                if command.name == "/quit":
                    return
                self._slash(command)
                continue
            if self.sandbox.in_data:
                note = lesson_view.data_line_note(line, plain=self.plain)
                if note is not None:
                    self.console.print(note)
            self.show(self.sandbox.send(line))

    def _prompt(self) -> str:
        if self.sandbox.in_data:
            return "data> "
        if self.sandbox.state.auth_pending:
            return "auth> "
        return "smtp> "

    # --- slash commands ---------------------------------------------------------------------

    def _slash(self, command: SlashCommand) -> None:
        sandbox, print_ = self.sandbox, self.console.print
        if command.name == "/help":
            print_(sandbox_view.help_view(builtin=sandbox.builtin, mailbox=sandbox.reads_mailbox))
        elif command.name == "/state":
            print_(sandbox_view.state_view(sandbox.state, plain=self.plain))
        elif command.name == "/mailbox":
            self._mailbox()
        elif command.name == "/tls":
            info = sandbox.tls_info
            if info is None:
                print_(sandbox_view.no_tls_line(connected=sandbox.connected))
            else:
                print_(sandbox_view.tls_panel(info, builtin=sandbox.builtin, plain=self.plain))
        elif command.name == "/mitm":
            try:
                print_(sandbox_view.mitm_view(sandbox.mitm_demo(), plain=self.plain))
            except UserError as error:
                print_(untrusted(str(error), "yellow"))
        elif command.name == "/wire":
            print_(sandbox_view.wire_view(sandbox.last_tap, plain=self.plain))
        elif command.name == "/b64":
            print_(sandbox_view.b64_view(b64_report(command.argument)))
        elif command.name == "/plain":
            user, password = command.argument.split(maxsplit=1)
            print_(sandbox_view.plain_view(user, password))
        elif command.name == "/pipe":
            try:
                lines = pipe_lines(command.argument)
            except SlashError as error:
                print_(untrusted(str(error), "yellow"))
                return
            self.show(sandbox.pipeline(lines))
        elif command.name == "/lf":
            self.show(sandbox.send_bare_lf(command.argument))
        elif command.name == "/reset":
            print_(Text("New connection: a new session; the server remembers nothing.", "dim"))
            self.show(sandbox.reset())

    def _mailbox(self) -> None:
        maildir = self.sandbox.maildir
        if not self.sandbox.reads_mailbox or maildir is None:
            self.console.print(
                Text(
                    "Only the built-in server's mailboxes can be read here; this server "
                    "keeps its mail to itself.",
                    style="yellow",
                )
            )
            return
        names = mailview.folders(maildir)
        stored = [(name, mailview.read_folder(maildir, name)) for name in names]
        stored = [(name, messages) for name, messages in stored if messages]
        if not stored:
            self.console.print(Text("No messages stored yet.", style="dim"))
        narrow = self.plain or not self.console.is_terminal or self.console.width < 110
        for name, messages in stored:
            self.console.print(message_table(name, messages, plain=narrow))
        self.console.print(
            join(Text("Maildir: ", style="dim"), untrusted(str(maildir), "dim")),
        )

    # --- what happened ----------------------------------------------------------------------

    def show(self, result: Result) -> None:
        print_ = self.console.print
        for shown in result.shown:
            exchange = shown.exchange
            if exchange.kind == "auth":  # the lesson view hides it; here it is the point
                print_(lesson_view.sent_line(exchange.sent, plain=self.plain, tls=exchange.tls))
            print_(
                lesson_view.exchange_view(
                    exchange, shown.before, plain=self.plain, show_sent=exchange.kind != "auth"
                )
            )
            if shown.auth is not None:
                print_(sandbox_view.auth_view(shown.auth, tls=exchange.tls))
        if result.data_line is not None:
            raw = result.data_line.encode("utf-8", "surrogateescape") + result.data_ending
            print_(lesson_view.sent_line(raw, plain=self.plain, tls=self.sandbox.state.tls))
        if result.tls is not None:
            panel = sandbox_view.tls_panel(
                result.tls,
                builtin=self.sandbox.builtin,
                plain=self.plain,
                title="TLS started: from here on, this connection is encrypted",
            )
            print_(panel)
        for note in result.notes:
            print_(Padding(untrusted(note, "magenta"), (0, 0, 0, 2)))
        for event in result.events:
            if isinstance(event, MessageStored):
                print_(sandbox_view.stored_line(event))
            elif not isinstance(event, TlsStarted):  # the TLS panel says more
                rendered = lesson_view.event_note(event, plain=self.plain)
                if rendered is not None:
                    print_(rendered)
        if result.error:
            print_(Padding(untrusted(result.error, "red"), (0, 0, 0, 2)))
        if result.shown:
            print_(lesson_view.state_line(self.sandbox.state, plain=self.plain))
        if result.closed and "/reset" not in result.error:
            print_(Text("  Connection closed. /reset opens a new session; /quit leaves.", "dim"))
