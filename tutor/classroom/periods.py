"""A class meets in periods: each starts when it is begun and runs until the next one
does. `serve` begins one if there is none; `smtp-tutor class reset` begins a new one.

A period is a file `ROOT/.smtp-tutor/periods/NAME` under the Maildir root, NAME its local
start time `YYYYMMDD-HHMMSS` (with `-2`, `-3`… if one began in the same second), holding
its start as seconds since the epoch. Files are created exclusively: a period is never
overwritten, and two servers starting together share whichever came first.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

PERIODS = Path(".smtp-tutor") / "periods"
_NAME = re.compile(r"\d{8}-\d{6}(-\d+)?\Z")


@dataclass(frozen=True)
class Period:
    name: str
    start: float


class PeriodError(ValueError):
    """No period has that name."""


def periods(root: Path) -> list[Period]:
    """Every period of this Maildir root, oldest first."""
    folder = root / PERIODS
    try:
        paths = [p for p in folder.iterdir() if _NAME.match(p.name)]
    except OSError:
        return []
    found = []
    for path in paths:
        try:
            start = float(path.read_text(encoding="ascii").strip())
        except (OSError, ValueError, UnicodeDecodeError):
            start = path.stat().st_mtime if path.exists() else 0.0
        found.append(Period(path.name, start))
    return sorted(found, key=lambda period: (period.start, period.name))


def current(root: Path) -> Period | None:
    """The period going on: the last one begun."""
    found = periods(root)
    return found[-1] if found else None


def begin(root: Path, now: float | None = None) -> Period:
    """A new period, starting now."""
    start = time.time() if now is None else now
    folder = root / PERIODS
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(start))
    for number in range(1, 1000):
        name = stamp if number == 1 else f"{stamp}-{number}"
        try:
            fd = os.open(folder / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(f"{start!r}\n")
        return Period(name, start)
    raise FileExistsError(f"too many periods begun at {stamp}")


def current_or_new(root: Path) -> Period:
    """The period going on, or a new one if the class has none yet (serve's start)."""
    return current(root) or begin(root)


def find(root: Path, name: str | None) -> tuple[Period, float | None]:
    """A period by name (the current one for None) and when it ended (None: it goes on)."""
    found = periods(root)
    if not found:
        raise PeriodError("no period yet: `smtp-tutor serve` begins one")
    if name is None:
        return found[-1], None
    for index, period in enumerate(found):
        if period.name == name:
            until = found[index + 1].start if index + 1 < len(found) else None
            return period, until
    known = ", ".join(p.name for p in found[-5:])
    raise PeriodError(f"no period {name!r}; the latest: {known}")
