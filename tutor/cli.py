"""The command line: parse, build the environment, map errors to exit codes. Thin."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tutor import __version__
from tutor.errors import UsageError, UserError

app = typer.Typer(
    name="smtp-tutor",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        print(f"smtp-tutor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    """Learn SMTP by doing: a real SMTP server on loopback, every reply explained.

    \b
    Examples:
      smtp-tutor serve                      run the teaching server for telnet, nc, swaks
      smtp-tutor mailbox                    list the messages it stored
      smtp-tutor mailbox show you/1         one message: envelope beside headers
    """
    _state["debug"] = debug


def _maildir(value: Path | None) -> Path:
    from tutor.paths import default_maildir

    return (value or default_maildir()).expanduser()


MaildirOption = Annotated[
    Path | None,
    typer.Option(
        "--maildir", help="Maildir root (one folder per mailbox). Default: under the data dir."
    ),
]


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on. Default: 127.0.0.1 and ::1 (loopback only)."),
    ] = None,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="TCP port (0 picks a free one).")
    ] = 2525,
    maildir: MaildirOption = None,
    open_relay: Annotated[
        bool,
        typer.Option("--open-relay", help="Accept mail for other domains (captured, never sent)."),
    ] = False,
    tls_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Also listen with implicit TLS on this port."),
    ] = None,
    idle_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds of silence before 421 4.4.2 (RFC 5321: 300).")
    ] = 300.0,
    max_connections: Annotated[
        int, typer.Option(min=1, help="Connection cap (421 4.7.0 beyond).")
    ] = 1000,
    plain: Annotated[bool, typer.Option("--plain", help="No colour: a plain line log.")] = False,
) -> None:
    """Run the teaching SMTP server for real clients and show every session, explained.

    \b
    Examples:
      smtp-tutor serve
      smtp-tutor serve --port 2525 --open-relay
      then, in another terminal:  telnet 127.0.0.1 2525   or   nc -C 127.0.0.1 2525
    """
    from tutor.serve import ServeOptions
    from tutor.ui.console import make_console
    from tutor.ui.serve_app import run

    options = ServeOptions(
        host, port, _maildir(maildir), open_relay, idle_timeout, max_connections, tls_port
    )
    raise typer.Exit(
        run(options, make_console(plain=plain), make_console(plain=plain, stderr=True))
    )


@app.command()
def mailbox(
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="MAILBOX to list, or: show ID (ID is you/1, a queue id, or a file key)."
        ),
    ] = None,
    maildir: MaildirOption = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="With show: the stored file as it is.")
    ] = False,
    plain: Annotated[bool, typer.Option("--plain", help="No colour, no boxes.")] = False,
) -> None:
    """List stored messages per mailbox, or show one with its envelope beside its headers.

    \b
    Examples:
      smtp-tutor mailbox                 every mailbox
      smtp-tutor mailbox you             only you@tutor.test
      smtp-tutor mailbox show you/1      the first message in you's mailbox
      smtp-tutor mailbox show you/1 --raw > message.eml
    """
    from tutor.ui.console import make_console
    from tutor.ui.mailbox_app import list_messages, show_message

    words = list(args or [])
    root = _maildir(maildir)
    console = make_console(plain=plain)
    if words[:1] == ["show"]:
        if len(words) != 2:
            raise UsageError(
                "usage: smtp-tutor mailbox show ID   (for example: smtp-tutor mailbox show you/1)"
            )
        show_message(console, root, words[1], raw=raw, plain=plain)
    elif len(words) > 1:
        raise UsageError("give one MAILBOX, or: show ID")
    else:
        list_messages(console, root, words[0] if words else None, plain=plain)


def main() -> None:
    """Entry point: run the app; user errors become one line and a non-zero exit."""
    try:
        app()
    except UserError as error:
        if _state["debug"]:
            raise
        print(f"smtp-tutor: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("smtp-tutor: interrupted", file=sys.stderr)
        sys.exit(130)
