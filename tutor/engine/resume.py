"""The learner's own lines that built the open session: what a resumed lesson replays.

A new connection is a new session, so resuming a lesson means rebuilding the server's
state. The tutor replays the learner's own lines (visibly), not the lesson's: only
those still in force — the greeting, TLS and login, then the open transaction. A
finished message or a RSET ends a transaction, so its lines are dropped and a replay
never stores a message twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tutor.smtp.events import Exchange

_SESSION_VERBS = frozenset({"EHLO", "HELO", "STARTTLS"})


@dataclass
class SessionLines:
    lines: list[str] = field(default_factory=list)
    base: list[str] = field(default_factory=list)  # greeting, TLS, login: kept across messages

    def sent(self, line: str) -> None:
        self.lines.append(line)

    def saw(self, exchange: Exchange) -> None:
        """Follow the server's answers: what stays in force, what a transaction's end drops."""
        code = exchange.code
        if code is None:
            return
        logged_in = code == 235 and (exchange.kind == "auth" or exchange.verb == "AUTH")
        greeted = exchange.verb in _SESSION_VERBS and 200 <= code < 300
        if logged_in or greeted:  # in force for the rest of the session
            self.base = list(self.lines)
        elif exchange.kind == "data" or (exchange.kind == "command" and exchange.verb == "RSET"):
            self.lines = list(self.base)

    def new_session(self) -> None:
        self.lines.clear()
        self.base.clear()
