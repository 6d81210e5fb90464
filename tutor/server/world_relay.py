"""The hook in a session's delivery path: does a world MTA send these copies on for real?

Light on purpose: every server imports it, and only the MTAs of `smtp-tutor world` that
relay (the submission MTA, the forwarder) load tutor.server.world_send, which does the
sending with dnspython and smtplib (docs/world.md, "DKIM, SPF and DMARC in the world").
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from tutor.maildir.store import RELAY, Delivery
from tutor.smtp.events import Copy

if TYPE_CHECKING:
    from tutor.server.context import ServerContext
    from tutor.server.world_mail import Forward, WorldMail


def takes(context: ServerContext, sid: int, delivery: Delivery, copies: list[Copy]) -> bool:
    """Send this message's relay (or forwarded) copies on, in a thread; True when the
    world MTA takes them, False for every other server (bounce.py's simulation then)."""
    world = context.persona.world
    if world is None or not world.relays:
        return False
    jobs = [(copy, target) for copy in copies if (target := _target(world, copy)) is not None]
    if not jobs:
        return False
    from tutor.server.world_send import send_all

    thread = threading.Thread(
        target=send_all,
        args=(context, world, delivery, jobs),
        name=f"smtp-tutor-relay-{delivery.queue_id}",
        daemon=True,
    )
    thread.start()
    return True


def _target(world: WorldMail, copy: Copy) -> tuple[str, Forward | None] | None:
    """Where the copy goes: a relayed recipient as it is, a forwarded mailbox's target."""
    if world.sign is not None and copy.folder == RELAY:
        return copy.recipient, None
    forward = world.forward_for(copy.folder)
    return None if forward is None else (forward.target, forward)
