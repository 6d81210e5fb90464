"""Where smtp-tutor keeps its data: progress, the default Maildir root, TLS material.

SMTP_TUTOR_HOME overrides the platform's data directory (tests always set it).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

ENV_HOME = "SMTP_TUTOR_HOME"


def data_home() -> Path:
    override = os.environ.get(ENV_HOME)
    if override:
        return Path(override).expanduser()
    import platformdirs  # imported lazily: only needed when no override is set

    return Path(platformdirs.user_data_dir("smtp-tutor", appauthor=False))


def default_maildir() -> Path:
    return data_home() / "Maildir"


def tls_dir() -> Path:
    return data_home() / "tls"


def home_note(path: str | os.PathLike[str]) -> str:
    """What to do about a path inside the data home that cannot be used (a read-only
    home, a home below a regular file); "" for a path elsewhere (a --maildir, a lesson
    folder), whose own option the message already names."""
    home = data_home()
    try:
        inside = Path(path).absolute().is_relative_to(home.absolute())
    except (OSError, ValueError):
        return ""
    if not inside:
        return ""
    return f"smtp-tutor keeps its data in {home}: set {ENV_HOME} to a folder you can write"


class NotAFile(Exception):
    """A path that holds something other than a regular file (or one far too large)."""


def read_file(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The bytes of a regular file, at most `limit` of them: opened without blocking and
    checked before reading, so that a FIFO or a device in its place cannot hang the
    tutor or fill its memory. OSError as the system gives it; NotAFile for the rest."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotAFile(f"not a regular file but {_kind(mode)}")
        chunks = []
        size = 0
        while chunk := os.read(fd, 1024 * 1024):
            chunks.append(chunk)
            size += len(chunk)
            if limit is not None and size > limit:
                raise NotAFile(f"larger than {_size(limit)}")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def _size(octets: int) -> str:
    mib, kib = divmod(octets, 1024 * 1024)
    return f"{mib} MiB" if mib and not kib else f"{octets // 1024} KiB"
