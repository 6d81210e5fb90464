"""Baseline servers for the benchmarks: plain aiosmtpd with a stock handler.

    python bench/aiosmtpd_server.py mailbox MAILDIR   # aiosmtpd.handlers.Mailbox
    python bench/aiosmtpd_server.py noop              # a handler that accepts and drops

Listens on 127.0.0.1 with an ephemeral port, prints `port N` on stdout once it is
listening, and serves until SIGINT or SIGTERM. The host name is passed explicitly, as
smtp-tutor does, so aiosmtpd does not call socket.getfqdn() for every connection (its
own `python -m aiosmtpd` does, which would make the baseline slower than it need be).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP


class NoopHandler:
    """Accept every message and keep nothing."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


async def serve(handler: object) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="mx.bench.test", enable_SMTPUTF8=True),
        "127.0.0.1",
        0,
        backlog=1024,
    )
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.ERROR)  # as `python -m aiosmtpd` does
    if argv[:1] == ["mailbox"] and len(argv) == 2:
        Path(argv[1]).parent.mkdir(parents=True, exist_ok=True)
        handler: object = Mailbox(Path(argv[1]))  # creates the Maildir (tmp/, new/, cur/)
    elif argv == ["noop"]:
        handler = NoopHandler()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    asyncio.run(serve(handler))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
