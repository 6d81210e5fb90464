"""What every connection of one teaching server shares: settings, storage, capture, loop.

In a module of its own so that the session (protocol.py) and onward delivery (bounce.py)
can depend on it without depending on the runner that starts them.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import Any

from tutor.maildir.store import MaildirStore
from tutor.server.capture import Capture
from tutor.server.deliveries import DeliveryQueue
from tutor.server.persona import Persona


@dataclass
class ServerContext:
    """What every connection shares: settings, storage, capture, the loop."""

    persona: Persona
    store: MaildirStore
    capture: Capture
    loop: asyncio.AbstractEventLoop
    tls_context: ssl.SSLContext | None
    connections: set[Any] = field(default_factory=set)
    deliveries: DeliveryQueue = field(init=False)
    greylist_seen: set[tuple[str, str, str]] = field(default_factory=set)  # (client, from, to)

    def __post_init__(self) -> None:
        self.deliveries = DeliveryQueue(self.store)
