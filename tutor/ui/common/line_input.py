"""Where the learner's lines come from: prompt_toolkit in a terminal, plain lines otherwise.

A pipe, a --script file or TERM=dumb get plain line input (no prompt_toolkit at all);
a terminal gets history, completion of SMTP verbs and the lesson's addresses, and a
bottom toolbar with the session state and the keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import IO, Protocol

from rich.console import Console
from rich.text import Text

from tutor.paths import data_home
from tutor.smtp.textsafe import visible
from tutor.ui.common.safe import untrusted
from tutor.ui.common.terminal import Terminal

SMTP_VERBS = (
    "HELO",
    "EHLO",
    "MAIL FROM:<",
    "RCPT TO:<",
    "DATA",
    "RSET",
    "NOOP",
    "QUIT",
    "VRFY",
    "HELP",
    "STARTTLS",
    "AUTH PLAIN",
    "AUTH LOGIN",
)
SLASH_COMMANDS = (
    "/hint",
    "/show",
    "/skip",
    "/back",
    "/state",
    "/more",
    "/lf",
    "/help",
    "/quit",
)


class LineInput(Protocol):
    def read(self, prompt: str) -> str | None:
        """One line without its ending; None at end of input (treated as /quit)."""
        ...

    def set_status(self, text: str) -> None:
        """What the bottom toolbar shows (the session state); ignored without one."""
        ...


class StreamInput:
    """Plain lines: from a file or a pipe (echoed, so the transcript reads like a session),
    or from a terminal where prompt_toolkit is not wanted (TERM=dumb: prompt, then read)."""

    def __init__(self, stream: IO[str], console: Console, *, echo: bool = True) -> None:
        self.stream = stream
        self.console = console
        self.echo = echo
        self.typed = _isatty(stream)  # a person types: show the prompt first, no echo

    def set_status(self, text: str) -> None:
        pass  # no toolbar here: the state line is printed after each reply instead

    def read(self, prompt: str) -> str | None:
        if self.typed:
            self.console.print(Text(prompt, style="bold"), end="")
            self.console.file.flush()
        try:
            line = self.stream.readline()
        except KeyboardInterrupt:
            return None
        if not line:
            return None
        line = line.rstrip("\r\n")
        if self.echo and not self.typed:
            self.console.print(Text(prompt, style="bold"), untrusted(line), sep="")
        return line


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class PromptInput:
    """prompt_toolkit's PromptSession: history, completion, toolbar; Ctrl-C/Ctrl-D quit."""

    def __init__(
        self,
        words: Iterable[str],
        keys: str,
        history_file: str | None,
        slash_commands: Iterable[str] = SLASH_COMMANDS,
    ) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.completion import WordCompleter
        from prompt_toolkit.history import FileHistory, InMemoryHistory

        completer = WordCompleter(
            sorted(set(SMTP_VERBS) | set(slash_commands) | set(words)),
            ignore_case=True,
            sentence=True,
        )
        history = FileHistory(history_file) if history_file else InMemoryHistory()
        self.status = ""
        self.session: object = PromptSession(
            completer=completer,
            history=history,
            bottom_toolbar=lambda: toolbar_text(self.status, keys, _columns()),
            complete_while_typing=False,
            enable_history_search=True,
        )

    def set_status(self, text: str) -> None:
        self.status = visible(text)  # it may quote what the learner typed

    def read(self, prompt: str) -> str | None:
        from prompt_toolkit import PromptSession

        assert isinstance(self.session, PromptSession)
        try:
            text: str = self.session.prompt(prompt)
        except (EOFError, KeyboardInterrupt):
            return None
        return text


def toolbar_text(status: str, keys: str, columns: int) -> str:
    """The state after the last reply, then the keys, cut to the terminal's width: the
    state keeps its start (greeted, sender…) and loses its tail first."""
    width = max(columns - 1, 20)
    if not status:
        return keys[:width]
    if len(status) + 3 + len(keys) <= width:
        return f"{status}   {keys}"
    room = width - len(keys) - 3
    if room >= 20:
        return f"{status[: room - 1]}…   {keys}"
    return status[: width - 1] + "…" if len(status) >= width else status


def _columns() -> int:
    from prompt_toolkit.application import get_app

    try:
        return get_app().output.get_size().columns
    except Exception:  # no running application: assume the narrowest common terminal
        return 80


def choose_input(
    term: Terminal, script: str | None, make_prompt: Callable[[], LineInput]
) -> LineInput:
    """Where the learner's lines come from: a --script FILE (or '-'), prompt_toolkit at a
    real terminal, or plain lines read from standard input (a pipe, TERM=dumb)."""
    if script is not None:
        return StreamInput(term.open_script(script), term.out)
    if term.interactive:
        return make_prompt()
    return StreamInput(term.stdin, term.out)


def history_file(name: str) -> str:
    """A prompt history file in the data directory (made on first use)."""
    home = data_home()
    home.mkdir(parents=True, exist_ok=True)
    return str(home / name)
