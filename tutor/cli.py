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
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
lessons_app = typer.Typer(rich_markup_mode=None, help="List the lessons, or validate lesson files.")
progress_app = typer.Typer(rich_markup_mode=None, help="Your progress through the lessons.")
app.add_typer(lessons_app, name="lessons")
app.add_typer(progress_app, name="progress")

_state: dict[str, object] = {"debug": False, "lessons_dir": None}


def _version(value: bool) -> None:
    if value:
        print(f"smtp-tutor {__version__}")
        raise typer.Exit()


LessonsDirOption = Annotated[
    Path | None,
    typer.Option("--lessons-dir", help="Use the lessons in this folder (a teacher's own)."),
]
TranscriptOption = Annotated[
    Path | None,
    typer.Option("--transcript", help="Also write the session to FILE: .md, .html, .svg or .txt."),
]
PresentOption = Annotated[
    bool,
    typer.Option("--present", help="Projector layout: one step per screen, reply codes large."),
]
PlainOption = Annotated[
    bool, typer.Option("--plain", help="No colour, no boxes (pipes, screen readers).")
]


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    lessons_dir: LessonsDirOption = None,
    plain: PlainOption = False,
) -> None:
    """Learn SMTP by doing: a real SMTP server on loopback, every reply explained.

    Run with no command for the lesson menu.

    \b
    Examples:
      smtp-tutor                            the lesson menu (continue where you left off)
      smtp-tutor learn 1                    lesson 1: the SMTP conversation
      smtp-tutor serve                      the teaching server for telnet, nc, swaks
      smtp-tutor mailbox show you/1         a stored message: envelope beside headers
    """
    _state["debug"] = debug
    _state["lessons_dir"] = lessons_dir
    if ctx.invoked_subcommand is None:
        from tutor.ui.console import make_console
        from tutor.ui.learn_app import menu

        raise typer.Exit(
            menu(
                make_console(plain=plain),
                make_console(plain=plain, stderr=True),
                lessons_dir,
                plain=plain,
            )
        )


def _lessons_dir(value: Path | None) -> Path | None:
    chosen = value or _state["lessons_dir"]
    return chosen if isinstance(chosen, Path) else None


@app.command()
def learn(
    lesson: Annotated[
        str | None, typer.Argument(help="Lesson number or id. Default: continue.")
    ] = None,
    script: Annotated[
        str | None,
        typer.Option("--script", help="Read the learner's lines from FILE ('-' for stdin)."),
    ] = None,
    plain: PlainOption = False,
    lessons_dir: LessonsDirOption = None,
    telnet: Annotated[
        bool,
        typer.Option("--telnet", help="Coach mode: type into telnet or nc in another window."),
    ] = False,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Coach mode's port (0 picks a free one).")
    ] = 2525,
    transcript: TranscriptOption = None,
    present: PresentOption = False,
) -> None:
    """Take a lesson: type real SMTP commands into a real server, every reply explained.

    Exits 0 when the lesson was completed, 1 when it was left unfinished.

    \b
    Examples:
      smtp-tutor learn 1
      smtp-tutor learn envelope
      smtp-tutor learn 1 --script my-session.txt --plain
      smtp-tutor learn 1 --telnet          then: telnet 127.0.0.1 2525 in another window
    """
    from tutor.ui.console import make_console
    from tutor.ui.learn_app import learn as run_learn

    code = run_learn(
        make_console(plain=plain, record=transcript is not None),
        make_console(plain=plain, stderr=True),
        lesson,
        script=script,
        lessons_dir=_lessons_dir(lessons_dir),
        plain=plain,
        telnet_port=port if telnet else None,
        transcript=_transcript(transcript),
        present=present,
    )
    raise typer.Exit(code)


@app.command()
def demo(
    lesson: Annotated[str, typer.Argument(help="Lesson number or id.")],
    delay: Annotated[
        float, typer.Option(min=0, help="Seconds between steps; 0 runs straight through.")
    ] = 1.5,
    plain: PlainOption = False,
    lessons_dir: LessonsDirOption = None,
    transcript: TranscriptOption = None,
    present: PresentOption = False,
) -> None:
    """Play a lesson's canonical session on the real server, for a class to watch.

    On a terminal: space pauses, n goes on at once, q stops.

    \b
    Examples:
      smtp-tutor demo 1
      smtp-tutor demo 2 --delay 0 --transcript lesson2.html
    """
    from tutor.ui.console import make_console
    from tutor.ui.learn_app import demo as run_demo

    code = run_demo(
        make_console(plain=plain, record=transcript is not None),
        lesson,
        delay=delay,
        lessons_dir=_lessons_dir(lessons_dir),
        plain=plain,
        transcript=_transcript(transcript),
        present=present,
    )
    raise typer.Exit(code)


def _transcript(value: Path | None) -> Path | None:
    if value is None:
        return None
    from tutor.ui.transcript_export import check_path

    return check_path(value)


@lessons_app.callback(invoke_without_command=True)
def lessons(
    ctx: typer.Context, plain: PlainOption = False, lessons_dir: LessonsDirOption = None
) -> None:
    """List the lessons with your progress, and where progress is stored.

    \b
    Examples:
      smtp-tutor lessons
      smtp-tutor lessons validate
      smtp-tutor lessons validate my-lessons/
    """
    if ctx.invoked_subcommand is None:
        from tutor.ui.console import make_console
        from tutor.ui.learn_app import list_lessons

        list_lessons(make_console(plain=plain), _lessons_dir(lessons_dir), plain=plain)


@lessons_app.command("validate")
def lessons_validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Lesson files or folders.")] = None,
    lessons_dir: LessonsDirOption = None,
    static: Annotated[
        bool, typer.Option("--static", help="Only check the files; no replay.")
    ] = False,
) -> None:
    """Check lesson files, then replay every lesson on the built-in server."""
    from tutor.ui.console import make_console
    from tutor.ui.validate_app import lesson_targets, validate

    raise typer.Exit(
        validate(
            make_console(),
            lesson_targets(paths or [], _lessons_dir(lessons_dir)),
            replay=not static,
        )
    )


@progress_app.command("reset")
def progress_reset(
    lesson: Annotated[
        str | None, typer.Argument(help="One lesson (number or id). Default: all.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
    lessons_dir: LessonsDirOption = None,
) -> None:
    """Forget progress (asks first unless --yes).

    \b
    Examples:
      smtp-tutor progress reset 1
      smtp-tutor progress reset --yes
    """
    from tutor.ui.console import make_console
    from tutor.ui.learn_app import reset_progress

    raise typer.Exit(
        reset_progress(make_console(), lesson, yes=yes, lessons_dir=_lessons_dir(lessons_dir))
    )


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
    log: Annotated[
        bool, typer.Option("--log", help="The line log even on a terminal (no dashboard).")
    ] = False,
    transcripts: Annotated[
        Path | None,
        typer.Option("--transcripts", help="Write each session's transcript into this folder."),
    ] = None,
    transcript_format: Annotated[
        str, typer.Option("--transcript-format", help="md, html, svg or txt.")
    ] = "md",
) -> None:
    """Run the teaching SMTP server for real clients and show every session, explained.

    On a terminal: a live dashboard (connections, a session's transcript, stored
    messages; keys j/k, Enter, p, q). In a pipe, or with --log or --plain: a line log.

    \b
    Examples:
      smtp-tutor serve
      smtp-tutor serve --port 2525 --open-relay
      smtp-tutor serve --transcripts handouts/ --transcript-format html
      then, in another terminal:  telnet 127.0.0.1 2525   or   nc -C 127.0.0.1 2525
    """
    from tutor.serve import ServeOptions
    from tutor.ui.console import make_console
    from tutor.ui.serve_app import run
    from tutor.ui.serve_transcripts import SessionTranscripts

    writer = SessionTranscripts(transcripts, transcript_format) if transcripts else None

    options = ServeOptions(
        host, port, _maildir(maildir), open_relay, idle_timeout, max_connections, tls_port
    )
    raise typer.Exit(
        run(
            options,
            make_console(plain=plain),
            make_console(plain=plain, stderr=True),
            line_log=log or plain,
            transcripts=writer,
        )
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


@app.command()
def explain(
    text: Annotated[
        list[str], typer.Argument(help="A code, a reply line, or a pasted bounce; '-' reads stdin.")
    ],
    plain: PlainOption = False,
) -> None:
    """Explain reply codes and enhanced status codes: one, a reply line, or a whole bounce.

    \b
    Examples:
      smtp-tutor explain 354
      smtp-tutor explain 5.7.1
      smtp-tutor explain "550 5.1.1 <bob@example.test>: Recipient address rejected"
      smtp-tutor explain - < bounce.txt
    """
    from tutor.explain import explain_args
    from tutor.ui.console import make_console
    from tutor.ui.explain_view import render_explained

    make_console(plain=plain).print(render_explained(explain_args(text), plain=plain))


@app.command()
def codes(
    filter: Annotated[
        str | None, typer.Argument(help="5xx, 55x, 550, 5.7, 5.7.x, 5.7.26 …; default: everything.")
    ] = None,
    plain: PlainOption = False,
) -> None:
    """The table of reply codes and enhanced status codes, with their meanings and RFCs.

    \b
    Examples:
      smtp-tutor codes
      smtp-tutor codes 5xx
      smtp-tutor codes 5.7
    """
    from tutor.ui.codes_view import codes_table
    from tutor.ui.console import make_console

    make_console(plain=plain).print(codes_table(filter, plain=plain))


@app.command()
def annotate(
    source: Annotated[
        str,
        typer.Argument(help="A transcript file (swaks, telnet, nc, smtplib debug); '-' for stdin."),
    ],
    plain: PlainOption = False,
) -> None:
    """Explain every reply of an SMTP transcript in its context, then sum up what happened.

    \b
    Examples:
      swaks --to you@example.test --server mx.example.test | smtp-tutor annotate -
      smtp-tutor annotate session.log
    """
    from tutor.transcript import read
    from tutor.ui.annotate_view import render_transcript
    from tutor.ui.console import make_console

    make_console(plain=plain).print(render_transcript(read(source), plain=plain))


@app.command()
def sandbox(
    connect: Annotated[
        str | None,
        typer.Option(
            "--connect",
            metavar="HOST[:PORT]",
            help="Talk to this server instead of the built-in one (port 25 if not given).",
        ),
    ] = None,
    script: Annotated[
        str | None,
        typer.Option("--script", metavar="FILE", help="Read the lines from FILE ('-' for stdin)."),
    ] = None,
    implicit_tls: Annotated[
        bool,
        typer.Option("--implicit-tls", help="TLS from the first byte, as on port 465 (RFC 8314)."),
    ] = False,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Do not check the certificate of a --connect server."),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.1, metavar="SECONDS", help="How long to wait for the server, each time."
        ),
    ] = 10.0,
    plain: PlainOption = False,
) -> None:
    """A raw SMTP shell: type commands to a real server, every reply explained in context.

    Without --connect, a private teaching server is started on loopback. /help inside
    lists the sandbox's own commands (/tls, /wire, /b64, /plain, /mailbox, /reset, …).

    \b
    Examples:
      smtp-tutor sandbox
      smtp-tutor sandbox --script session.txt --plain
      smtp-tutor sandbox --connect 127.0.0.1:2525           (smtp-tutor serve, or a lab MTA)
      smtp-tutor sandbox --connect 127.0.0.1:4650 --implicit-tls --insecure
      smtp-tutor sandbox --connect mail.example.net:587     (asks first: leaves the machine)
    """
    from tutor.sandbox import builtin_target, parse_target
    from tutor.ui.console import make_console
    from tutor.ui.sandbox_app import SandboxOptions, run

    if connect is None:
        target = builtin_target(implicit_tls=implicit_tls)
    else:
        target = parse_target(connect, implicit_tls=implicit_tls)
    options = SandboxOptions(target, script, insecure, timeout, plain)
    raise typer.Exit(
        run(make_console(plain=plain), make_console(plain=plain, stderr=True), options)
    )


@app.command()
def challenge(
    args: Annotated[
        list[str] | None,
        typer.Argument(help="N (number or id) plays one; validate [PATH…] checks files."),
    ] = None,
    script: Annotated[
        str | None,
        typer.Option("--script", help="Read your lines from FILE ('-' for stdin)."),
    ] = None,
    plain: PlainOption = False,
    telnet: Annotated[
        bool, typer.Option("--telnet", help="Play from telnet or nc in another window.")
    ] = False,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="The --telnet port (0 picks a free one).")
    ] = 2525,
    challenges_dir: Annotated[
        Path | None, typer.Option("--challenges-dir", help="Use the challenges in this folder.")
    ] = None,
    static: Annotated[
        bool, typer.Option("--static", help="With validate: only check the files.")
    ] = False,
) -> None:
    """Challenges: open-ended goals, judged on what the server stores, not on what you type.

    With no argument: the list, with your progress. Playing one exits 0 when solved,
    1 when left unsolved.

    \b
    Examples:
      smtp-tutor challenge
      smtp-tutor challenge 1
      smtp-tutor challenge backscatter --telnet     then: telnet 127.0.0.1 2525
      smtp-tutor challenge 1 --script attempt.txt --plain
      smtp-tutor challenge validate
    """
    from tutor.ui import challenge_app
    from tutor.ui.console import make_console

    words = list(args or [])
    console = make_console(plain=plain)
    if words[:1] == ["validate"]:
        paths = [Path(word) for word in words[1:]]
        code = challenge_app.validate(console, paths, challenges_dir, replay=not static)
    elif len(words) > 1:
        raise UsageError("give one challenge (number or id), or: validate [PATH…]")
    elif not words:
        code = challenge_app.list_challenges(console, challenges_dir, plain=plain)
    else:
        code = challenge_app.play(
            console,
            make_console(plain=plain, stderr=True),
            words[0],
            script=script,
            challenges_dir=challenges_dir,
            plain=plain,
            telnet_port=port if telnet else None,
        )
    raise typer.Exit(code)


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
    except Exception as error:  # a bug: one line, the traceback only on request
        if _state["debug"]:
            raise
        print(
            f"smtp-tutor: internal error: {type(error).__name__}: {error} "
            "(run again with --debug for the traceback)",
            file=sys.stderr,
        )
        sys.exit(70)
