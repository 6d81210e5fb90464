"""The command line: parse, build the Environment, map errors to exit statuses. Thin.

The grammar (README, "Commands"): options that apply to every command (--plain,
--debug, --lessons-dir) may stand before or after the command; a group's first word
that is not one of its commands goes to its default command (`mailbox you` is
`mailbox list you`, `challenge 3` is `challenge play 3`).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from tutor import __version__
from tutor.env import Environment, ExitStatus
from tutor.errors import UsageError, UserError
from tutor.ui.common.reply_detail import Verbosity
from tutor.ui.common.theme import DEFAULT_THEME, THEMES

if TYPE_CHECKING:
    from tutor.engine.class_report import ClassTarget

# --- the grammar ----------------------------------------------------------------------------

GLOBAL_FLAGS = ("--plain", "--debug", "--brief", "--verbose")
GLOBAL_VALUES = ("--lessons-dir", "--theme")
GLOBAL_EPILOG = (
    "Options for every command, before or after it: --plain (no colour, no boxes), "
    "--brief / --verbose (explain replies briefly / always in full; by default in full "
    "the first time), --theme dark|light (colours for a dark or a light background, such "
    "as a projector), --lessons-dir DIR (a teacher's lesson folder), --debug (tracebacks "
    "for errors)."
)


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """Move the options every command shares to the front, wherever they were typed
    (up to a `--`), so that `smtp-tutor lessons --plain` means `smtp-tutor --plain lessons`."""
    front: list[str] = []
    rest: list[str] = []
    words = list(args)
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            rest += words[index:]
            break
        name = word.split("=", 1)[0]
        if word in GLOBAL_FLAGS or (name in GLOBAL_VALUES and "=" in word):
            front.append(word)
        elif word in GLOBAL_VALUES and index + 1 < len(words):
            front += [word, words[index + 1]]
            index += 1
        else:
            rest.append(word)
        index += 1
    return front + rest


# The parser's own ways out (usage errors, --help, Exit): they pass through untouched.
# Typer re-exports click's exceptions, or vendors click (newer releases), so they are
# found from typer's public names rather than by importing click.
_PARSER_EXITS: tuple[type[BaseException], ...] = (
    typer.Exit,
    typer.Abort,
    *(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException"),
)


class _Group(TyperGroup):
    """Typer's group, plus: the shared options' note in every command's help, and an
    optional default command for a first word that is not a command name."""

    when_empty: str | None = None  # the command run for no arguments at all
    when_word: str | None = None  # the command a non-command first word goes to

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None and GLOBAL_EPILOG not in (command.epilog or ""):
            command.epilog = "\n\n".join(filter(None, [command.epilog, GLOBAL_EPILOG]))
        return command

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        helps = ctx.help_option_names
        if ctx.resilient_parsing:  # shell completion: offer the command names as typed
            pass
        elif not args and self.when_empty:
            args = [self.when_empty]
        elif args and self.when_word and args[0] not in self.commands and args[0] not in helps:
            default = self.when_empty if args[0].startswith("-") else self.when_word
            args = [default or self.when_word, *args]
        return super().parse_args(ctx, args)


class _RootGroup(_Group):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    def invoke(self, ctx: Any) -> Any:
        """The one place where errors become exit statuses."""
        try:
            return super().invoke(ctx)
        except _PARSER_EXITS:
            raise
        except UserError as error:
            if _debug(ctx):
                raise
            _user_error(error)
        except KeyboardInterrupt:
            typer.echo("smtp-tutor: interrupted", err=True)
            raise typer.Exit(ExitStatus.INTERRUPTED) from None
        except Exception as error:  # a bug: one line, the traceback only on request
            if _debug(ctx):
                raise
            if problem := _file_problem(error):  # a path the user can fix, not a bug
                _user_error(problem)
            typer.echo(
                f"smtp-tutor: internal error: {type(error).__name__}: {error} "
                "(run again with --debug for the traceback)",
                err=True,
            )
            raise typer.Exit(ExitStatus.BUG) from None


class _MailboxGroup(_Group):
    when_empty = "list"
    when_word = "list"


class _ClassGroup(_Group):
    when_empty = "list"
    when_word = "list"


class _ChallengeGroup(_Group):
    when_empty = "list"
    when_word = "play"


def _user_error(error: UserError) -> NoReturn:
    from tutor.smtp.textsafe import visible  # a path or a name may hold control characters

    typer.echo(f"smtp-tutor: {visible(str(error))}", err=True)
    raise typer.Exit(ExitStatus(error.exit_code)) from None


def _file_problem(error: Exception) -> UserError | None:
    """An OSError naming its path (a read-only data home, a folder that is a file) as one
    line, with what to do when the path is in the data home."""
    from tutor.errors import file_problem
    from tutor.paths import home_note

    filename = getattr(error, "filename", None)
    return file_problem(error, home_note(filename) if isinstance(filename, str) else "")


def _debug(ctx: Any) -> bool:
    env = ctx.find_object(Environment)
    return bool(env and env.debug)


def _typer(cls: type[TyperGroup], help: str | None = None) -> typer.Typer:
    """A typer app with this project's settings; its help is the callback's docstring
    unless given here (an explicit help=None would hide the docstring)."""
    settings: dict[str, Any] = {"help": help} if help is not None else {}
    return typer.Typer(
        cls=cls,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        **settings,
    )


app = _typer(_RootGroup)
lessons_app = _typer(_Group)
progress_app = _typer(_Group)
mailbox_app = _typer(
    _MailboxGroup,
    """What the server stored, one Maildir per mailbox: list them, show one, or clear.

    A first word that is not a command lists that mailbox (`mailbox you`).

    \b
    Examples:
      smtp-tutor mailbox                         every mailbox
      smtp-tutor mailbox you                     only you@tutor.test
      smtp-tutor mailbox show you/1              one message, envelope beside headers
      smtp-tutor mailbox clear --all --yes       empty every mailbox
      smtp-tutor mailbox --maildir /tmp/class    another Maildir root
    """,
)
challenge_app = _typer(
    _ChallengeGroup,
    """Challenges: open-ended goals, judged on what the server stores, not on what you type.

    With no command: the list. A first word that is not a command plays that challenge
    (`challenge 3` is `challenge play 3`).

    \b
    Examples:
      smtp-tutor challenge
      smtp-tutor challenge 1
      smtp-tutor challenge play backscatter --telnet
      smtp-tutor challenge validate
    """,
)
class_app = _typer(
    _ClassGroup,
    """A class: who took part and what each did, from what `serve` left on disk.

    Read the roster during a class or after `serve` has stopped: it combines the students
    at telnet (named by NOOP student=NAME, else AUTH user, HELO name or address) and the
    progress reports sent by `learn N --class HOST:PORT --name NAME`.

    \b
    Examples:
      smtp-tutor class                          this period's roster
      smtp-tutor class --json > roster.json     for a program (--csv for a spreadsheet)
      smtp-tutor class --period 20261130-090000
      smtp-tutor class reset --yes              begin a new period
      smtp-tutor class export class.zip         its handouts and roster, in one zip
    """,
)
app.add_typer(lessons_app, name="lessons")
app.add_typer(progress_app, name="progress")
app.add_typer(mailbox_app, name="mailbox")
app.add_typer(challenge_app, name="challenge")
app.add_typer(class_app, name="class")


def env_of(ctx: typer.Context) -> Environment:
    """The Environment the root callback made (a bare one if a test invoked a command alone)."""
    return ctx.find_object(Environment) or ctx.ensure_object(Environment)


def finish(status: int) -> None:
    raise typer.Exit(ExitStatus(status))


# --- shared options -------------------------------------------------------------------------


def _version(value: bool) -> None:
    if value:
        print(f"smtp-tutor {__version__}")
        raise typer.Exit()


def _theme(value: str) -> str:
    if value not in THEMES:
        raise typer.BadParameter(f"{value!r} is not a theme: choose {' or '.join(THEMES)}")
    return value


def _complete_mailboxes(incomplete: str) -> list[str]:
    from tutor.maildir import mailview
    from tutor.paths import default_maildir

    return [name for name in mailview.folders(default_maildir()) if name.startswith(incomplete)]


def _complete_challenges(incomplete: str) -> list[str]:
    from tutor.engine import challenges

    found = challenges.load_challenges(None)
    words = [str(c.number) for c in found] + [c.id for c in found]
    return [word for word in words if word.startswith(incomplete)]


TranscriptOption = Annotated[
    Path | None,
    typer.Option("--transcript", help="Also write the session to FILE: .md, .html, .svg or .txt."),
]
PresentOption = Annotated[
    bool,
    typer.Option("--present", help="Projector layout: one step per screen, reply codes large."),
]
MaildirOption = Annotated[
    Path | None,
    typer.Option(
        "--maildir", help="Maildir root (one folder per mailbox). Default: under the data dir."
    ),
]
ScriptOption = Annotated[
    str | None,
    typer.Option("--script", metavar="FILE", help="Read your lines from FILE ('-' for stdin)."),
]
ChallengesDirOption = Annotated[
    Path | None, typer.Option("--challenges-dir", help="Use the challenges in this folder.")
]
FollowHintsOption = Annotated[
    bool,
    typer.Option(
        "--follow-hints",
        help="Take each one (numbers N…, default all) in a pseudo-terminal, typing only what "
        "the hints offer, with colour and with --plain.",
    ),
]


ClassOption = Annotated[
    str | None,
    typer.Option(
        "--class",
        metavar="HOST:PORT",
        help="In a class: also report each finished step to the teacher's `smtp-tutor serve` "
        "at HOST:PORT (needs --name).",
    ),
]
NameOption = Annotated[
    str | None,
    typer.Option("--name", metavar="NAME", help="With --class: your name on the class's roster."),
]


def _class_target(address: str | None, name: str | None) -> ClassTarget | None:
    """--class and --name, checked as NOOP student=NAME checks a name (exit 2 if not)."""
    if address is None:
        if name is not None:
            raise UsageError("--name is your name on a class's roster: add --class HOST:PORT")
        return None
    from tutor.engine.class_report import class_target

    return class_target(address, name)


def _transcript(value: Path | None) -> Path | None:
    if value is None:
        return None
    from tutor.ui.common.transcript_export import check_path

    return check_path(value)


# --- the root ------------------------------------------------------------------------------


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
    lessons_dir: Annotated[
        Path | None,
        typer.Option("--lessons-dir", help="Use the lessons in this folder (a teacher's own)."),
    ] = None,
    plain: Annotated[
        bool, typer.Option("--plain", help="No colour, no boxes (pipes, screen readers).")
    ] = False,
    brief: Annotated[
        bool, typer.Option("--brief", help="Explain each reply in one line, even the first time.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Explain each reply in full, every time.")
    ] = False,
    theme: Annotated[
        str,
        typer.Option(
            "--theme",
            metavar="dark|light",
            envvar="SMTP_TUTOR_THEME",
            callback=_theme,
            autocompletion=lambda: list(THEMES),
            help="Colours for a dark terminal, or for a light one (a projector, white paper).",
        ),
    ] = DEFAULT_THEME,
) -> None:
    """Learn SMTP by doing: a real SMTP server on loopback, every reply explained.

    Run with no command for the lesson menu. --plain, --theme, --brief, --verbose,
    --lessons-dir and --debug work before or after any command.

    \b
    Examples:
      smtp-tutor                            the lesson menu (continue where you left off)
      smtp-tutor learn 1                    lesson 1: the SMTP conversation
      smtp-tutor serve                      the teaching server for telnet, nc, swaks
      smtp-tutor mailbox show you/1         a stored message: envelope beside headers
      smtp-tutor lessons --plain            the lesson list without colour
      smtp-tutor demo 1 --present --theme light   a demo for a projector
    """
    if brief and verbose:
        raise UsageError("--brief and --verbose contradict each other: give one")
    verbosity = Verbosity.BRIEF if brief else Verbosity.VERBOSE if verbose else Verbosity.AUTO
    env = Environment(
        plain=plain, debug=debug, lessons_dir=lessons_dir, verbosity=verbosity, theme=theme
    )
    ctx.obj = env
    if ctx.invoked_subcommand is None:
        from tutor.ui.lesson.learn_app import menu

        finish(menu(env.terminal, env.lessons_dir, env.maildir(None)))


# --- lessons --------------------------------------------------------------------------------


def _start_up_over() -> None:
    """A lesson's screens are imported: the collector that the entry point paused for
    start-up (tutor/__main__.py) runs again, and what start-up made, which lives as long
    as the process, is frozen out of its sight (no collection walks it again)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


@contextlib.contextmanager
def _lesson_server_started(maildir: Path, *, coach: bool = False) -> Iterator[None]:
    """The lesson's server process starts now, while the screens are imported; whatever
    the lesson does not take is stopped at the end (tutor/server/process.py)."""
    from tutor.server import process

    if not coach:  # coach mode starts its own, on the port the learner was told
        process.prelaunch(maildir)
    try:
        yield
    finally:
        process.discard_prelaunched()


@app.command()
def learn(
    ctx: typer.Context,
    lesson: Annotated[
        str | None, typer.Argument(help="Lesson number or id. Default: continue.")
    ] = None,
    script: ScriptOption = None,
    telnet: Annotated[
        bool,
        typer.Option("--telnet", help="Coach mode: type into telnet or nc in another window."),
    ] = False,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Coach mode's port (0 picks a free one).")
    ] = 2525,
    maildir: MaildirOption = None,
    transcript: TranscriptOption = None,
    present: PresentOption = False,
    class_address: ClassOption = None,
    name: NameOption = None,
) -> None:
    """Take a lesson: type real SMTP commands into a real server, every reply explained.

    Exits 0 when the lesson was completed, 1 when it was left unfinished. In a class,
    --class HOST:PORT --name NAME also sends the teacher's server a progress report (a
    real SMTP session) after each finished step; the lesson itself stays on your machine.

    \b
    Examples:
      smtp-tutor learn 1
      smtp-tutor learn envelope
      smtp-tutor learn 1 --script my-session.txt --plain
      smtp-tutor learn 1 --telnet          then: telnet 127.0.0.1 2525 in another window
      smtp-tutor learn 1 --class 192.168.1.10:2525 --name "Ada Lovelace"
    """
    env = env_of(ctx)
    with _lesson_server_started(env.maildir(maildir), coach=telnet):
        target = _class_target(class_address, name)
        from tutor.ui.lesson.learn_app import learn as run_learn

        _start_up_over()
        finish(
            run_learn(
                env.terminal,
                lesson,
                script=script,
                lessons_dir=env.lessons_dir,
                maildir=env.maildir(maildir),
                telnet_port=port if telnet else None,
                transcript=_transcript(transcript),
                present=present,
                class_target=target,
            )
        )


@app.command()
def demo(
    ctx: typer.Context,
    lesson: Annotated[str, typer.Argument(help="Lesson number or id.")],
    delay: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds each step is held before the tutor types, and each reply after it "
            "arrives; 0 runs straight through.",
        ),
    ] = 1.5,
    maildir: MaildirOption = None,
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
    env = env_of(ctx)
    with _lesson_server_started(env.maildir(maildir)):
        from tutor.ui.lesson.learn_app import demo as run_demo

        _start_up_over()
        finish(
            run_demo(
                env.terminal,
                lesson,
                delay=delay,
                lessons_dir=env.lessons_dir,
                maildir=env.maildir(maildir),
                transcript=_transcript(transcript),
                present=present,
            )
        )


@lessons_app.callback(invoke_without_command=True)
def lessons(ctx: typer.Context) -> None:
    """List the lessons with your progress, and where progress is stored.

    \b
    Examples:
      smtp-tutor lessons
      smtp-tutor lessons validate
      smtp-tutor lessons validate my-lessons/
      smtp-tutor lessons --lessons-dir my-lessons/
    """
    if ctx.invoked_subcommand is None:
        from tutor.ui.lesson.learn_app import list_lessons

        env = env_of(ctx)
        list_lessons(env.terminal, env.lessons_dir)


@lessons_app.command("validate")
def lessons_validate(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Lesson files or folders (numbers with --follow-hints)."),
    ] = None,
    static: Annotated[
        bool, typer.Option("--static", help="Only check the files; no replay.")
    ] = False,
    follow_hints: FollowHintsOption = False,
) -> None:
    """Check lesson files, then replay every lesson on the built-in server.

    Without PATHS: the shipped lessons, or the --lessons-dir folder.

    \b
    Examples:
      smtp-tutor lessons validate
      smtp-tutor lessons validate my-lessons/ --static
      smtp-tutor lessons validate --follow-hints 1 2
    """
    from tutor.ui.lesson.validate_app import lesson_targets, validate

    env = env_of(ctx)
    if follow_hints:
        from tutor.ui.lesson.robot_report import follow_hints as robot

        finish(robot(env.terminal, "lesson", [str(p) for p in paths or []], env.lessons_dir))
    finish(
        validate(env.terminal.out, lesson_targets(paths or [], env.lessons_dir), replay=not static)
    )


@progress_app.callback(invoke_without_command=True)
def progress(ctx: typer.Context) -> None:
    """Your progress through the lessons (the same list as `smtp-tutor lessons`).

    \b
    Examples:
      smtp-tutor progress
      smtp-tutor progress reset 1
    """
    if ctx.invoked_subcommand is None:
        from tutor.ui.lesson.learn_app import list_lessons

        env = env_of(ctx)
        list_lessons(env.terminal, env.lessons_dir)


@progress_app.command("reset")
def progress_reset(
    ctx: typer.Context,
    lesson: Annotated[
        str | None, typer.Argument(help="One lesson (number or id). Default: all.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
) -> None:
    """Forget progress (asks first unless --yes; refuses without a terminal to ask on).

    \b
    Examples:
      smtp-tutor progress reset 1
      smtp-tutor progress reset --yes
    """
    from tutor.ui.lesson.learn_app import reset_progress

    env = env_of(ctx)
    finish(reset_progress(env.terminal, lesson, yes=yes, lessons_dir=env.lessons_dir))


# --- the server and its mail ----------------------------------------------------------------


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on. Default: 127.0.0.1 and ::1 (loopback only)."),
    ] = None,
    lan: Annotated[
        bool,
        typer.Option(
            "--lan",
            help="For a class: listen on this machine's LAN address (and loopback), serve "
            "private addresses only, and print what students type.",
        ),
    ] = False,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow", metavar="CIDR", help="With --lan: serve this network too (repeatable)."
        ),
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
      smtp-tutor serve --lan                for a class: prints what students type
      then, in another terminal:  telnet 127.0.0.1 2525   or   nc -C 127.0.0.1 2525
    """
    from tutor.sandbox.serve import ServeOptions
    from tutor.ui.serve.serve_app import run
    from tutor.ui.serve.serve_transcripts import SessionTranscripts

    if lan and host is not None:
        raise UsageError("--lan finds this machine's address itself: give --lan or --host")
    if allow and not lan:
        raise UsageError("--allow widens --lan's check of client addresses: add --lan")
    env = env_of(ctx)
    writer = (
        SessionTranscripts(transcripts, transcript_format, root=env.maildir(maildir))
        if transcripts
        else None
    )
    options = ServeOptions(
        host,
        port,
        env.maildir(maildir),
        open_relay,
        idle_timeout,
        max_connections,
        tls_port,
        lan=lan,
        allow=tuple(allow or ()),
    )
    finish(run(options, env.terminal, line_log=log or env.plain, transcripts=writer))


MailboxArgument = Annotated[
    str | None,
    typer.Argument(
        metavar="MAILBOX",
        help="One mailbox (you, alice, bob, postmaster, relay). Default: every one.",
        autocompletion=_complete_mailboxes,
    ),
]


@mailbox_app.command("list")
def mailbox_list(
    ctx: typer.Context, folder: MailboxArgument = None, maildir: MaildirOption = None
) -> None:
    """List the stored messages of every mailbox, or of one (the default command).

    \b
    Examples:
      smtp-tutor mailbox                 every mailbox
      smtp-tutor mailbox you             only you@tutor.test
      smtp-tutor mailbox list --maildir /tmp/class-maildir
    """
    from tutor.ui.reference.mailbox_app import list_messages

    env = env_of(ctx)
    list_messages(env.terminal, env.maildir(maildir), folder)


@mailbox_app.command("show")
def mailbox_show(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="MAILBOX/N (as listed: you/1), a queue id, or a Maildir file key."
        ),
    ],
    maildir: MaildirOption = None,
    raw: Annotated[bool, typer.Option("--raw", help="The stored file as it is.")] = False,
) -> None:
    """Show one stored message: its envelope beside its headers, the trace headers marked.

    \b
    Examples:
      smtp-tutor mailbox show you/1
      smtp-tutor mailbox show you/1 --raw > message.eml
    """
    from tutor.ui.reference.mailbox_app import show_message

    env = env_of(ctx)
    show_message(env.terminal, env.maildir(maildir), ref, raw=raw)


@mailbox_app.command("clear")
def mailbox_clear(
    ctx: typer.Context,
    folder: Annotated[
        str | None,
        typer.Argument(
            metavar="MAILBOX",
            help="The mailbox to empty (or --all).",
            autocompletion=_complete_mailboxes,
        ),
    ] = None,
    all_folders: Annotated[
        bool, typer.Option("--all", help="Empty every mailbox, captured relay mail too.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
    maildir: MaildirOption = None,
) -> None:
    """Delete stored messages: one mailbox, or every one with --all. The folders stay.

    Asks first unless --yes; without a terminal to ask on, refuses (exit 2).

    \b
    Examples:
      smtp-tutor mailbox clear you
      smtp-tutor mailbox clear --all --yes
    """
    from tutor.ui.reference.mailbox_app import clear_messages

    if (folder is None) == (not all_folders):
        raise UsageError("name one MAILBOX to clear, or give --all (not both)")
    env = env_of(ctx)
    finish(clear_messages(env.terminal, env.maildir(maildir), folder, yes=yes))


@class_app.command("list")
def class_list(
    ctx: typer.Context,
    maildir: MaildirOption = None,
    period: Annotated[
        str | None,
        typer.Option("--period", help="A period by name (YYYYMMDD-HHMMSS). Default: the current."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON, for another program.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV, for a spreadsheet.")] = False,
) -> None:
    """The roster of a period (the default command): each student's lessons and
    challenges, current step, messages sent, errors made and when last seen.

    \b
    Examples:
      smtp-tutor class
      smtp-tutor class list --json
      smtp-tutor class --csv --maildir /srv/class-maildir > roster.csv
    """
    from tutor.ui.reference.class_view import show_roster

    if as_json and as_csv:
        raise UsageError("choose --json or --csv, not both")
    env = env_of(ctx)
    output = "json" if as_json else "csv" if as_csv else "table"
    show_roster(env.terminal, env.maildir(maildir), period, output)


@class_app.command("reset")
def class_reset(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
    maildir: MaildirOption = None,
) -> None:
    """Begin a new period: the roster starts empty; earlier periods stay readable.

    Nothing is deleted (`smtp-tutor mailbox clear --all` empties the mailboxes). Asks
    first unless --yes; without a terminal to ask on, refuses (exit 2).

    \b
    Examples:
      smtp-tutor class reset
      smtp-tutor class reset --yes
    """
    from tutor.ui.reference.class_view import reset_period

    env = env_of(ctx)
    finish(reset_period(env.terminal, env.maildir(maildir), yes=yes))


@class_app.command("export")
def class_export(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE.zip", help="The zip to write.")],
    period: Annotated[
        str | None,
        typer.Option("--period", help="A period by name (YYYYMMDD-HHMMSS). Default: the current."),
    ] = None,
    transcripts: Annotated[
        Path | None,
        typer.Option(
            "--transcripts",
            help="The folder serve wrote handouts to (serve --transcripts DIR), if it moved. "
            "Default: the folders serve recorded under the Maildir root.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
    maildir: MaildirOption = None,
) -> None:
    """Bundle a period's handouts (serve --transcripts) and roster into one zip.

    Inside: PERIOD/roster.json, PERIOD/roster.csv and PERIOD/STUDENT/ with each session's
    transcript. Never replaces an existing FILE unless --force (exit 1).

    \b
    Examples:
      smtp-tutor class export class.zip
      smtp-tutor class export monday.zip --period 20261130-090000
      smtp-tutor class export class.zip --transcripts /media/usb/handouts --force
    """
    from tutor.ui.reference.class_view import export_period

    env = env_of(ctx)
    root = env.maildir(maildir)
    finish(export_period(env.terminal, root, period, file, transcripts, force=force))


# --- reference ------------------------------------------------------------------------------


@app.command()
def explain(
    ctx: typer.Context,
    text: Annotated[
        list[str], typer.Argument(help="A code, a reply line, or a pasted bounce; '-' reads stdin.")
    ],
) -> None:
    """Explain reply codes and enhanced status codes: one, a reply line, or a whole bounce.

    \b
    Examples:
      smtp-tutor explain 354
      smtp-tutor explain 5.7.1
      smtp-tutor explain "550 5.1.1 <bob@example.test>: Recipient address rejected"
      smtp-tutor explain - < bounce.txt
    """
    from tutor.explain.explain import explain_args
    from tutor.ui.reference.explain_view import render_explained

    env = env_of(ctx)
    env.terminal.out.print(render_explained(explain_args(text, env.read_stdin), plain=env.plain))


@app.command()
def codes(
    ctx: typer.Context,
    filter: Annotated[
        str | None, typer.Argument(help="5xx, 55x, 550, 5.7, 5.7.x, 5.7.26 …; default: everything.")
    ] = None,
) -> None:
    """The table of reply codes and enhanced status codes, with their meanings and RFCs.

    \b
    Examples:
      smtp-tutor codes
      smtp-tutor codes 5xx
      smtp-tutor codes 5.7
    """
    from tutor.ui.reference.codes_view import codes_table

    env = env_of(ctx)
    env.terminal.out.print(codes_table(filter, plain=env.plain))


@app.command()
def dns(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="NAME", help="A domain name, e.g. example.test.", show_default=False
        ),
    ] = None,
    rdtype: Annotated[
        str, typer.Argument(metavar="TYPE", help="A, AAAA, MX, TXT, PTR or SOA.")
    ] = "A",
    serve: Annotated[
        bool,
        typer.Option("--serve", help="Run a DNS server for the zone on 127.0.0.1 (for dig)."),
    ] = False,
    port: Annotated[int, typer.Option(help="With --serve: the port; 0 picks a free one.")] = 1053,
) -> None:
    """Ask the tutor's simulated DNS, answered like dig's ANSWER SECTION (no query is sent).

    With --serve: the same zone on a real DNS server on 127.0.0.1 until Ctrl-C, for dig,
    host and nslookup. It answers only the simulated domains (docs/dns.md).

    \b
    Examples:
      smtp-tutor dns example.test MX
      smtp-tutor dns _dmarc.tutor.test TXT
      smtp-tutor dns 1.0.0.127.in-addr.arpa PTR
      smtp-tutor dns --serve --port 1053        then: dig @127.0.0.1 -p 1053 MX example.test
    """
    from tutor.ui.reference import dns_view

    env = env_of(ctx)
    if serve:
        if name is not None:
            raise UsageError("--serve takes no NAME: ask the server with dig")
        finish(dns_view.serve(env.terminal, port))
    if name is None:
        raise UsageError("dns needs a NAME (e.g. smtp-tutor dns example.test MX), or --serve")
    env.terminal.out.print(dns_view.dns_answer(name, rdtype), soft_wrap=True)


@app.command()
def world(
    ctx: typer.Context,
    dns_port: Annotated[
        int, typer.Option(min=0, max=65535, help="The DNS server's port; 0 picks a free one.")
    ] = 0,
    port: Annotated[
        int,
        typer.Option(min=0, max=65535, help="The port every MTA shares; 0 picks a free one."),
    ] = 0,
    base_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65500,
            help="Every MTA on 127.0.0.1 at a port of its own from this one (systems with "
            "only 127.0.0.1).",
        ),
    ] = None,
    maildir: Annotated[
        Path | None,
        typer.Option("--maildir", help="Mail goes to MAILDIR/DOMAIN/MAILBOX. Default: data dir."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="First line: the map as one JSON object.")
    ] = False,
) -> None:
    """A simulated internet on loopback: the DNS server and one teaching MTA per host.

    Runs in the foreground until Ctrl-C or SIGTERM (exit 0), for dig, telnet and swaks in
    other terminals. Each MTA listens on its own 127.0.0.x address, all on one port, so
    DNS alone says where mail goes (docs/world.md).

    \b
    Examples:
      smtp-tutor world --dns-port 1053     then: dig @127.0.0.1 -p 1053 MX example.org
      smtp-tutor world --port 2525         then: telnet 127.0.0.11 2525
      smtp-tutor world --json --maildir /tmp/world
    """
    from tutor.ui.reference import world_view

    env = env_of(ctx)
    root = maildir.expanduser() if maildir is not None else env.home / "world"
    finish(
        world_view.run(
            env.terminal,
            root,
            dns_port=dns_port,
            port=port,
            base_port=base_port,
            as_json=as_json,
        )
    )


@app.command()
def annotate(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(help="A transcript file (swaks, telnet, nc, smtplib debug); '-' for stdin."),
    ],
) -> None:
    """Explain every reply of an SMTP transcript in its context, then sum up what happened.

    \b
    Examples:
      swaks --to you@example.test --server mx.example.test | smtp-tutor annotate -
      smtp-tutor annotate session.log
    """
    from tutor.explain.transcript import read
    from tutor.ui.reference.annotate_view import render_transcript

    env = env_of(ctx)
    env.terminal.out.print(render_transcript(read(source, env.read_stdin), plain=env.plain))


# --- practice -------------------------------------------------------------------------------


@app.command()
def sandbox(
    ctx: typer.Context,
    connect: Annotated[
        str | None,
        typer.Option(
            "--connect",
            metavar="HOST[:PORT]",
            help="Talk to this server instead of the built-in one (port 25 if not given).",
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="DOMAIN",
            help="Start the simulated world and talk to the MTA its DNS names for DOMAIN, "
            "the way a sending server finds it (MX, then A).",
        ),
    ] = None,
    script: ScriptOption = None,
    implicit_tls: Annotated[
        bool,
        typer.Option("--implicit-tls", help="TLS from the first byte, as on port 465 (RFC 8314)."),
    ] = False,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Do not check the certificate of a --connect server."),
    ] = False,
    cafile: Annotated[
        Path | None,
        typer.Option(
            "--cafile",
            metavar="FILE",
            help="Check a --connect server against this CA alone (e.g. the tutor's own "
            "tls/smtp-tutor-ca.pem for smtp-tutor serve).",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.1, metavar="SECONDS", help="How long to wait for the server, each time."
        ),
    ] = 10.0,
    maildir: MaildirOption = None,
) -> None:
    """A raw SMTP shell: type commands to a real server, every reply explained in context.

    Without --connect, a private teaching server is started on loopback. With --to, the
    simulated world is started instead (docs/world.md): the screen shows the DNS answer
    for DOMAIN and each host tried in order, then the session with the one that took it.
    /help inside lists the sandbox's own commands (/tls, /wire, /b64, /plain, /mailbox,
    /reset, …).

    \b
    Examples:
      smtp-tutor sandbox
      smtp-tutor sandbox --script session.txt --plain
      smtp-tutor sandbox --to example.org                   (DNS: MX 10 busy, so MX 20)
      smtp-tutor sandbox --to a-only.example                (no MX: the A record)
      smtp-tutor sandbox --connect 127.0.0.1:2525           (smtp-tutor serve, or a lab MTA)
      smtp-tutor sandbox --connect 127.0.0.1:2525 --cafile DATA/tls/smtp-tutor-ca.pem
      smtp-tutor sandbox --connect 127.0.0.1:4650 --implicit-tls --insecure
      smtp-tutor sandbox --connect mail.example.net:587     (asks first: leaves the machine)
    """
    from tutor.sandbox.sandbox import builtin_target, parse_target
    from tutor.ui.sandbox.sandbox_app import SandboxOptions, run

    if to is not None and connect is not None:
        raise UsageError("--to and --connect exclude each other: give one of them")
    if to is not None and implicit_tls:
        raise UsageError("--to talks to the world's MTAs, which offer no --implicit-tls")
    if connect is None:
        target = builtin_target(implicit_tls=implicit_tls)
    else:
        target = parse_target(connect, implicit_tls=implicit_tls)
    env = env_of(ctx)
    if cafile is not None and not cafile.is_file():
        raise UserError(f"--cafile {cafile}: no such file")
    options = SandboxOptions(target, script, insecure, timeout, cafile, to)
    if to is not None:  # the world's Maildir root, as `world` uses it
        root = maildir.expanduser() if maildir is not None else env.home / "world"
        finish(run(env.terminal, options, root))
    finish(run(env.terminal, options, env.maildir(maildir)))


@challenge_app.command("list")
def challenge_list(ctx: typer.Context, challenges_dir: ChallengesDirOption = None) -> None:
    """The challenges with your progress (the default command).

    \b
    Examples:
      smtp-tutor challenge
      smtp-tutor challenge list --challenges-dir my-challenges/
    """
    from tutor.ui.lesson import challenge_app as screens

    finish(screens.list_challenges(env_of(ctx).terminal, challenges_dir))


@challenge_app.command("play")
def challenge_play(
    ctx: typer.Context,
    challenge: Annotated[
        str,
        typer.Argument(
            metavar="N", help="Challenge number or id.", autocompletion=_complete_challenges
        ),
    ],
    script: ScriptOption = None,
    telnet: Annotated[
        bool, typer.Option("--telnet", help="Play from telnet or nc in another window.")
    ] = False,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="The --telnet port (0 picks a free one).")
    ] = 2525,
    challenges_dir: ChallengesDirOption = None,
    maildir: MaildirOption = None,
    class_address: ClassOption = None,
    name: NameOption = None,
) -> None:
    """Play one challenge: a goal, judged on what the server stores, not on what you type.

    Exits 0 when solved, 1 when left unsolved. `smtp-tutor challenge N` is short for this.
    In a class, --class HOST:PORT --name NAME reports each step and the solve to the
    teacher's server.

    \b
    Examples:
      smtp-tutor challenge play 1
      smtp-tutor challenge 1
      smtp-tutor challenge backscatter --telnet     then: telnet 127.0.0.1 2525
      smtp-tutor challenge 1 --script attempt.txt --plain
      smtp-tutor challenge 1 --class 192.168.1.10:2525 --name "Ada Lovelace"
    """
    env = env_of(ctx)
    with _lesson_server_started(env.maildir(maildir), coach=telnet):
        target = _class_target(class_address, name)
        from tutor.ui.lesson import challenge_app as screens

        _start_up_over()
        finish(
            screens.play(
                env.terminal,
                challenge,
                script=script,
                challenges_dir=challenges_dir,
                maildir=env.maildir(maildir),
                telnet_port=port if telnet else None,
                class_target=target,
            )
        )


@challenge_app.command("validate")
def challenge_validate(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Challenge files or folders (numbers with --follow-hints)."),
    ] = None,
    challenges_dir: ChallengesDirOption = None,
    static: Annotated[
        bool, typer.Option("--static", help="Only check the files; no replay.")
    ] = False,
    follow_hints: FollowHintsOption = False,
) -> None:
    """Check challenge files (a goal, and a way to miss it), then replay each one.

    \b
    Examples:
      smtp-tutor challenge validate
      smtp-tutor challenge validate my-challenges/ --static
      smtp-tutor challenge validate --follow-hints
    """
    from tutor.ui.lesson import challenge_app as screens

    if follow_hints:
        from tutor.ui.lesson.robot_report import follow_hints as robot

        chosen = [str(p) for p in paths or []]
        finish(robot(env_of(ctx).terminal, "challenge", chosen, challenges_dir))
    finish(screens.validate(env_of(ctx).terminal, paths or [], challenges_dir, replay=not static))


def app_for(args: Sequence[str]) -> typer.Typer:
    """The app, narrowed to the one command (or group) these words run when they name one.

    Typer builds every command's parameters before it parses (some 10 ms for the whole
    tree) while a run uses one command; the narrowed app parses and runs it the same way.
    Words that name no command, ask for help or complete a shell word get the whole app,
    so its errors, suggestions, help and completions stay whole.
    """
    words = hoist_global_options(args)
    while words and (words[0] in GLOBAL_FLAGS or words[0].split("=", 1)[0] in GLOBAL_VALUES):
        words = words[2:] if words[0] in GLOBAL_VALUES else words[1:]
    completing = any(name.endswith("_COMPLETE") for name in os.environ)
    if not words or completing or set(args) & {"-h", "--help"}:
        return app
    commands = [c for c in app.registered_commands if _command_name(c) == words[0]]
    groups = [g for g in app.registered_groups if g.name == words[0]]
    if not (commands or groups):
        return app
    narrowed = copy.copy(app)
    narrowed.registered_commands, narrowed.registered_groups = commands, groups
    return narrowed


def _command_name(command: Any) -> str:
    """A registered command's name as typer gives it: its own, or its function's."""
    return str(command.name or command.callback.__name__.lower().replace("_", "-"))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the app; exit with the status the root group decided."""
    try:
        app_for(sys.argv[1:] if argv is None else argv)(args=argv)
    except KeyboardInterrupt:  # outside a command: while parsing, or at start-up
        print("smtp-tutor: interrupted", file=sys.stderr)
        sys.exit(ExitStatus.INTERRUPTED)
