"""What the world's DNS server was asked: lessons judge a lookup step on it.

A learner may ask with the tutor (`dig MX example.org` at its prompt) or with a real
`dig` in another terminal; either way the server saw the question, and that is what
counts (docs/architecture.md, "Three promises": judged on what the servers saw).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

KEPT = 1000  # the newest questions kept: a flood of queries cannot fill memory


@dataclass(frozen=True)
class Question:
    """One question the server answered: the name (lower case, no final dot), the type
    (`MX`), the answer's rcode (`NOERROR`, `NXDOMAIN`, …) and how many records it held."""

    number: int  # 1 for the server's first question, then counting up
    client: str
    name: str
    rdtype: str
    rcode: str
    answers: int


class QueryLog:
    """Thread-safe: the DNS server's thread records, a lesson's thread waits and reads."""

    def __init__(self) -> None:
        self._questions: deque[Question] = deque(maxlen=KEPT)
        self._count = 0
        self._changed = threading.Condition()

    @property
    def count(self) -> int:
        with self._changed:
            return self._count

    def record(self, client: str, name: str, rdtype: str, rcode: str, answers: int) -> None:
        with self._changed:
            self._count += 1
            name = name.lower().rstrip(".")
            self._questions.append(Question(self._count, client, name, rdtype, rcode, answers))
            self._changed.notify_all()

    def since(self, number: int) -> list[Question]:
        """The questions after the `number`-th (those still kept)."""
        with self._changed:
            return [q for q in self._questions if q.number > number]

    def wait_for(self, found: Callable[[list[Question]], bool], after: int, timeout: float) -> bool:
        """Wait until `found` holds for the questions after the `after`-th."""
        with self._changed:
            return self._changed.wait_for(
                lambda: found([q for q in self._questions if q.number > after]), timeout
            )
