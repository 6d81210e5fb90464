"""The teaching server's settings: who it is, whom it serves, and how strict it is.

A lesson may override any of these (its `[persona]` table), and `serve` maps its flags
onto them. Defaults follow docs/server.md ("Who it is") so that lessons, docs and tests
agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_MAILBOXES = ("you", "alice", "bob", "postmaster")

# Demo accounts for AUTH (after STARTTLS). Documented in docs/server.md; teaching only.
DEMO_ACCOUNTS = {"you": "tutor-password", "alice": "wonderland"}


@dataclass(frozen=True)
class Persona:
    hostname: str = "mx.tutor.test"
    domain: str = "tutor.test"
    mailboxes: tuple[str, ...] = DEFAULT_MAILBOXES
    open_relay: bool = False
    max_message_size: int = 10 * 1024 * 1024  # advertised as SIZE
    idle_timeout: float = 300.0  # RFC 5321 §4.5.3.2.7: five minutes
    max_connections: int = 1000
    max_unknown_commands: int = 20
    accounts: dict[str, str] = field(default_factory=lambda: dict(DEMO_ACCOUNTS))
    tls: bool = True
    greylist: bool = False  # refuse the first try of each (client, sender, recipient) with 451

    def with_changes(self, **changes: Any) -> Persona:
        return replace(self, **changes)

    def is_local_domain(self, domain: str) -> bool:
        domain = domain.lower().rstrip(".")
        return domain in {self.domain, self.hostname} or domain == ""

    def mailbox_for(self, local: str, domain: str) -> str | None:
        """The local mailbox an address delivers to, or None if there is none."""
        name = local.lower()
        if name == "postmaster":  # any case, RFC 5321 §4.5.1
            return "postmaster"
        return name if name in self.mailboxes else None
