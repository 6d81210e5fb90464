"""Errors a user can cause: each becomes one clear line and a non-zero exit (cli.main)."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; the message is the whole explanation."""

    exit_code = 1


class UsageError(UserError):
    exit_code = 2
