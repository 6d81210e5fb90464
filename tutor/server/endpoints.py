"""Where a teaching server listens, and the two ways its start can fail.

Apart from the runner so that a process that only starts a server in another process
(tutor/server/process.py) names them without importing the server itself.
"""

from __future__ import annotations

from dataclasses import dataclass


class BindError(OSError):
    """The listening socket could not be opened (port in use, no such address, …)."""


class MaildirError(OSError):
    """The Maildir root or a mailbox folder could not be created."""


@dataclass(frozen=True)
class Listener:
    host: str
    port: int
    implicit_tls: bool = False
