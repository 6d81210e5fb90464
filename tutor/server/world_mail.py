"""What an MTA of the world does with mail beyond storing it (docs/world.md, "DKIM, SPF
and DMARC in the world"): every one verifies DKIM and ARC against the world's DNS;
smtp.tutor.test DKIM-signs what authenticated clients submit and relays it; the
forwarder of forward.example sends some mailboxes' mail on, ARC-sealed.

The settings travel in the Persona (`Persona.world`) to the server's process; None, the
default, is every server outside a world: nothing here runs for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tutor.world.dkim_keys import SigningKey


@dataclass(frozen=True)
class Forward:
    """A mailbox whose mail goes on to `target`. `as_list`: as a mailing list does, with
    `[list]` before the Subject and a footer after the body (which breaks DKIM)."""

    mailbox: str
    target: str
    as_list: bool = False


LIST_TAG = "[list] "
LIST_FOOTER = "-- \r\nSent through list@forward.example (a simulated mailing list).\r\n"

FORWARDS = (
    Forward("carol", "bob@example.org"),
    Forward("list", "bob@example.org", as_list=True),
)


@dataclass(frozen=True)
class WorldMail:
    dns: tuple[str, int]  # the world's DNS server: the only resolver this MTA asks
    port: int  # the port every MTA of the world shares; 0: none (--base-port), no relaying
    source: str  # the address this MTA sends from (its own A record)
    key_dir: str  # where the world's DKIM keys are kept
    sign: SigningKey | None = None  # DKIM-signs what it relays (the submission MTA)
    seal: SigningKey | None = None  # ARC-seals what it forwards (the forwarder)
    forwards: tuple[Forward, ...] = ()

    @property
    def relays(self) -> bool:
        return self.sign is not None or bool(self.forwards)

    def key_file(self, key: SigningKey) -> Path:
        return key.path(Path(self.key_dir))

    def forward_for(self, mailbox: str) -> Forward | None:
        return next((f for f in self.forwards if f.mailbox == mailbox), None)
