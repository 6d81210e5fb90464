"""What a user meets around the program: the version, shell completion, help."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import run_cli
from tutor import __version__


def test_version_and_python_dash_m() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"smtp-tutor {__version__}"


def test_bash_completion_offers_the_commands() -> None:
    env = dict(
        os.environ, _SMTP_TUTOR_COMPLETE="complete_bash", COMP_WORDS="smtp-tutor le", COMP_CWORD="1"
    )
    result = subprocess.run(
        [sys.executable, "-m", "tutor"], env=env, capture_output=True, text=True, timeout=60
    )
    assert set(result.stdout.split()) >= {"learn", "lessons"}


def test_every_command_has_help_with_examples() -> None:
    for command in (
        "learn",
        "serve",
        "mailbox",
        "explain",
        "codes",
        "annotate",
        "demo",
        "sandbox",
        "challenge",
        "lessons",
        "progress",
        "mailbox list",
        "mailbox show",
        "mailbox clear",
        "challenge list",
        "challenge play",
        "challenge validate",
        "lessons validate",
        "progress reset",
    ):
        result = run_cli(*command.split(), "--help")
        assert result.returncode == 0, command
        assert "Examples:" in result.stdout, f"{command} --help has no examples"
