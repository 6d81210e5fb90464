"""`python -m tutor` runs the same command line as `smtp-tutor`.

The `smtp-tutor` script calls `run` from here, not `tutor.cli.main`: a spawned server
process runs the parent's script again (multiprocessing's spawn), and a script that
imports nothing at its top costs that process no typer, rich or prompt_toolkit.

`run` also starts a lesson's server before the command line is parsed, when the words
say a lesson is coming (docs/architecture.md, "The server in its own process"): typer
and pydantic take some 120 ms to parse, and the server's process uses them to start on
the other core. A guess, never a decision: the lesson takes the server only if it is
for the same Maildir, and whatever it does not take is stopped when the command ends.

For a lesson, `run` also pauses the garbage collector until the lesson's screens are
imported (tutor.cli resumes it, with what start-up made frozen): start-up makes some
70,000 objects that live as long as the process, and with the default thresholds the
collector walked them again and again, a full pass included (10 to 25 ms), before the
first prompt, to free about a hundred.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

# Options whose value is the next word, so that the value is not read as a command.
_VALUED = {
    "--lessons-dir",
    "--theme",
    "--script",
    "--port",
    "--maildir",
    "--transcript",
    "--delay",
    "--challenges-dir",
    "--class",
    "--name",
}
_NOT_A_LESSON = {"--help", "-h", "--version", "--telnet"}  # coach mode binds its own port


def lesson_maildir(argv: list[str]) -> Path | None:
    """The Maildir of the lesson these words start (learn, demo, challenge play), if any."""
    words: list[str] = []
    maildir: str | None = None
    index = 0
    while index < len(argv):
        word = argv[index]
        if word in _NOT_A_LESSON:
            return None
        if word.startswith("--maildir="):
            maildir = word.partition("=")[2]
        elif word in _VALUED:
            if word == "--maildir" and index + 1 < len(argv):
                maildir = argv[index + 1]
            index += 1
        elif not word.startswith("-"):
            words.append(word)
        index += 1
    if not words:
        return None
    command, rest = words[0], words[1:]
    lesson = command in ("learn", "demo")
    challenge = command == "challenge" and bool(rest) and rest[0] not in ("list", "validate")
    if not (lesson or challenge):
        return None
    if maildir is not None:
        return Path(maildir).expanduser()
    from tutor.paths import default_maildir

    return default_maildir().expanduser()


def run() -> None:
    maildir = None if "_SMTP_TUTOR_COMPLETE" in os.environ else lesson_maildir(sys.argv[1:])
    if maildir is not None:
        gc.disable()
        from tutor.server import process

        process.prelaunch(maildir)
    from tutor.cli import main

    main()


if __name__ == "__main__":
    run()
