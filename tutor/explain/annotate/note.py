"""The types every rule table shares: what a reply is seen in (Context), what a rule says
about it (Note), and what the UI gets (Annotation)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tutor.smtp.session_state import SessionState, path_argument
from tutor.smtp.wire import Reply


@dataclass(frozen=True)
class Annotation:
    headline: str  # one line: what happened
    detail: str  # why, in 1-3 sentences (an EHLO reply adds one line per extension)
    rfc: str  # where it is defined, e.g. "RFC 5321 §4.1.1.3"
    reply_class: str  # what the first digit says
    enhanced: str | None  # the enhanced status code in the reply, e.g. "5.1.1"
    enhanced_meaning: str | None  # what that code says
    advice: str | None  # what to do next


@dataclass(frozen=True)
class Note:
    headline: str
    detail: str
    rfc: str
    advice: str | None = None


@dataclass(frozen=True)
class Context:
    stage: str  # "greeting", "notice", "data-end", "auth", a verb ("MAIL") or "?" (unknown)
    argument: str
    reply: Reply
    state: SessionState
    alone: bool = False  # seen without its conversation: the state is unknown, not empty

    @property
    def verb(self) -> str:
        """The command verb the reply answers, or "" when it did not answer a command."""
        return self.stage if self.stage.isupper() else ""

    @property
    def code(self) -> int:
        return self.reply.code

    @property
    def text(self) -> str:
        """The reply text in lower case, for matching words such as "relay" or "timeout"."""
        return self.reply.text.lower()

    @property
    def status(self) -> str | None:
        """The enhanced code without its class, as the registry spells it: "X.1.1"."""
        enhanced = self.reply.enhanced
        if enhanced is None:
            return None
        _klass, subject, detail = enhanced.split(".")
        return f"X.{int(subject)}.{int(detail)}"

    @property
    def address(self) -> str:
        """The address the reply is about: from MAIL/RCPT, else the first <…> in the text."""
        if self.argument and self.stage in ("MAIL", "RCPT"):
            return path_argument(self.argument)
        match = re.search(r"<([^<>\s]*)>", self.reply.text)
        return match.group(1) if match else ""

    def who(self) -> str:
        return f"<{self.address}>" if self.address else "this address"


# A rule of a table: a note when it has something to say about this reply, else None.
Rule = Callable[[Context], Note | None]
