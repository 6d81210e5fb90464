"""How much of a reply's explanation to show: in full the first time, then briefly.

A reply is explained in full the first time its class (2xx, 3xx, …) or its code (the
enhanced status code, else the reply code) appears in the learner's sitting; after
that only its headline, and `/more` shows the last one in full again. `--verbose`
always shows everything, `--brief` only the headlines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from tutor.smtp.wire import Reply


class Verbosity(StrEnum):
    AUTO = "auto"  # full the first time, then the headline
    BRIEF = "brief"
    VERBOSE = "verbose"


@dataclass
class ReplyMemory:
    verbosity: Verbosity = Verbosity.AUTO
    seen: set[str] = field(default_factory=set)
    told_about_more: bool = False

    def brief(self, reply: Reply) -> bool:
        """True when this reply gets only its headline; remembers that it was seen."""
        keys = {f"class {reply.code // 100}", reply.enhanced or str(reply.code)}
        new = not keys <= self.seen
        self.seen |= keys
        if self.verbosity is Verbosity.VERBOSE:
            return False
        return self.verbosity is Verbosity.BRIEF or not new

    def first_brief(self) -> bool:
        """True once: the first time a short explanation is shown (say how to get more)."""
        if self.told_about_more or self.verbosity is not Verbosity.AUTO:
            return False
        self.told_about_more = True
        return True
