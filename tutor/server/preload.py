"""What a forkserver imports once, for every server it forks (process.PRELOAD).

The server's modules, and pyspf pointed at the simulated table: a server forked with
them answers its first MAIL without a 30 ms import on its loop (40 waiting sessions
would all feel it).
"""

from __future__ import annotations

from tutor.server import protocol, runner, tlsmaterial
from tutor.world import authresults

authresults.pyspf()

__all__ = ["protocol", "runner", "tlsmaterial"]
