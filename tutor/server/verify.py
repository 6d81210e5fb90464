"""A world MTA's receiving checks: DKIM and ARC added to the SPF and DMARC verdicts of
tutor.world.authresults, and DMARC passed by an aligned DKIM pass (docs/world.md).

RFC 9989: DMARC passes when SPF or DKIM passes for a domain aligned with the From:
domain. authresults judges SPF alone (it has no message); here, once DKIM has been
verified, a `fail` that an aligned DKIM signature passes becomes `pass`.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import IO

from tutor.server.context import ServerContext
from tutor.server.spool import MessageSpool
from tutor.world.authresults import Verdicts, aligned

# A message larger than this is not read whole for DKIM: its verdict is `neutral`.
VERIFY_LIMIT = 16 * 1024 * 1024


async def with_dkim(context: ServerContext, verdicts: Verdicts, spool: MessageSpool) -> Verdicts:
    """The verdicts with DKIM and ARC for a world MTA; unchanged for any other server.
    The checks ask the world's DNS server, so they run off the server's loop."""
    world = context.persona.world
    if world is None:
        return verdicts
    content = spool.content()
    message = content if isinstance(content, bytes) else _read(content)
    if message is None:
        return replace(verdicts, dkim=("dkim=neutral (too large to verify here)",))
    return await asyncio.get_running_loop().run_in_executor(
        None, checked, message, verdicts, world.dns, world.source
    )


def _read(file: IO[bytes]) -> bytes | None:
    """The spooled message from its start (delivery seeks to its start again)."""
    data = file.read(VERIFY_LIMIT + 1)
    file.seek(0)
    return None if len(data) > VERIFY_LIMIT else data


def checked(
    message: bytes, verdicts: Verdicts, dns_server: tuple[str, int], source: str = ""
) -> Verdicts:
    """The verdicts with every DKIM signature verified, ARC validated, DMARC redone."""
    from tutor.server import dkim_mail

    checks = dkim_mail.verify_all(message, dns_server, source)
    arc = dkim_mail.arc_result(message, dns_server, source)
    dmarc = verdicts.dmarc
    if dmarc == "fail" and any(
        check.result == "pass" and aligned(check.domain, verdicts.dmarc_domain) for check in checks
    ):
        dmarc = "pass"
    parts = tuple(check.part() for check in checks) or ("dkim=none",)
    return replace(verdicts, dkim=parts, arc=arc, dmarc=dmarc)
