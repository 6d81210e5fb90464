"""The teaching server's settings: who it is, whom it serves, and how strict it is.

A lesson may override some of these (its `[persona]` table: LESSON_SETTINGS, each with
its type and the range the server works with), and `serve` maps its flags onto them.
Defaults follow docs/server.md ("Who it is") so that lessons, docs and tests agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tutor.server.access import Network, admitted

if TYPE_CHECKING:
    from tutor.server.world_mail import WorldMail

DEFAULT_MAILBOXES = ("you", "alice", "bob", "postmaster")

# Demo accounts for AUTH (after STARTTLS). Documented in docs/server.md; teaching only.
DEMO_ACCOUNTS = {"you": "tutor-password", "alice": "wonderland"}


@dataclass(frozen=True)
class Setting:
    """A setting a lesson may give: its type, and for a number the range that works."""

    kind: type[bool] | type[int] | type[float]
    low: float = 0
    high: float = 0
    unit: str = ""

    def problem(self, name: str, value: object) -> str:
        """What is wrong with this value for the setting, in words; "" if nothing."""
        if self.kind is bool:
            return "" if isinstance(value, bool) else f"{name} must be true or false"
        if self._fits(value):
            return ""
        whole = "a whole number of " if self.kind is int else "a number of "
        return f"{name} must be {whole}{self.unit} from {_number(self.low)} to {_number(self.high)}"

    def _fits(self, value: object) -> bool:
        # bool is an int to Python; NaN fails every comparison; 10**400 compares exactly.
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        return self.low <= value <= self.high


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# What the server can honour: a SIZE limit it can hold and advertise (RFC 1870 allows
# up to 20 digits; a message is read into memory), an idle timeout asyncio can schedule
# and a class can wait for (RFC 5321 §4.5.3.2.7 suggests five minutes; an hour at most).
LESSON_SETTINGS: dict[str, Setting] = {
    "open_relay": Setting(bool),
    "max_message_size": Setting(int, 1, 2**30, "octets"),
    "idle_timeout": Setting(float, 1, 3600, "seconds"),
    "tls": Setting(bool),
    "greylist": Setting(bool),
}


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
    busy: bool = False  # greet every client with 421 4.3.2 and close (a world host's role)
    # The networks whose clients are served (`serve --lan`); None serves every client.
    clients: tuple[Network, ...] | None = None
    # A world MTA's signing, verifying and forwarding (tutor.server.world_mail); None elsewhere.
    world: WorldMail | None = None

    def with_changes(self, **changes: Any) -> Persona:
        return replace(self, **changes)

    def is_local_domain(self, domain: str) -> bool:
        domain = domain.lower().rstrip(".")
        return domain in {self.domain, self.hostname} or domain == ""

    def serves(self, host: str) -> bool:
        """Whether a client at this address is served (not refused at connect with 554)."""
        return self.clients is None or admitted(host, self.clients)

    def mailbox_for(self, local: str, domain: str) -> str | None:
        """The local mailbox an address delivers to, or None if there is none."""
        name = local.lower()
        if name == "postmaster":  # any case, RFC 5321 §4.5.1
            return "postmaster"
        return name if name in self.mailboxes else None
