"""Errors a user can cause: each becomes one clear line and a non-zero exit (cli.main)."""

from __future__ import annotations

import errno
import os


class UserError(Exception):
    """A problem the user can fix; the message is the whole explanation."""

    exit_code = 1


class UsageError(UserError):
    exit_code = 2


class FileProblem(UserError):
    """A file or folder the tutor needs cannot be read or written (a read-only data home,
    a path through a regular file, a full disk): one line naming the path and why."""

    def __init__(self, path: str | os.PathLike[str], error: OSError, note: str = "") -> None:
        self.path = os.fspath(path)
        self.error = error
        text = f"{self.path}: {reason(error)}"
        super().__init__(f"{text} ({note})" if note else text)


# Plain words for the errors a file system gives a user; strerror for the rest.
_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.EISDIR: "a folder, not a file",
    errno.ENOENT: "no such file or folder",
    errno.ELOOP: "a loop of symbolic links",
    errno.ENOSPC: "no space left on the device",
    errno.EEXIST: "already exists, and is not what was expected",
    getattr(errno, "EDQUOT", -1): "disk quota exceeded",
}


def reason(error: OSError) -> str:
    """Why an OSError happened, in words; never the exception's repr."""
    return _REASONS.get(error.errno or 0) or error.strerror or str(error) or type(error).__name__


def file_problem(error: BaseException, note: str = "") -> FileProblem | None:
    """The FileProblem for an OSError that names its path; None for any other error (a
    socket's, or a bug's), which stays an internal error."""
    if isinstance(error, FileProblem):
        return error
    if not isinstance(error, OSError) or not error.filename:
        return None
    if isinstance(error.filename, bytes):
        return FileProblem(os.fsdecode(error.filename), error, note)
    if not isinstance(error.filename, str | os.PathLike):
        return None
    return FileProblem(error.filename, error, note)
