"""Simulated onward delivery of captured relay mail, and the bounces it produces.

Nothing leaves the machine. A relayed recipient whose domain the simulated DNS says
does not exist fails "later", after the 250, as it would on a real relay: the server
then sends a DSN with MAIL FROM:<> to the envelope sender. A message whose own sender
is <> is never bounced (RFC 5321 §4.5.5): the failure is recorded and dropped.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tutor.maildir.store import RELAY, Delivery, StorageError, new_queue_id
from tutor.server.dsn import LOCAL_DIAGNOSTIC, Failure, build_dsn
from tutor.smtp.events import BounceSent
from tutor.world import dnsdata

if TYPE_CHECKING:
    from tutor.server.context import ServerContext

log = logging.getLogger("tutor.server")


def delivery_failures(recipients: list[str]) -> list[Failure]:
    """Which relayed recipients the simulated next hop cannot reach, and why."""
    failures = []
    for recipient in recipients:
        domain = recipient.rpartition("@")[2]
        record = dnsdata.lookup(domain)
        if record is not None and not record.exists:
            failures.append(
                # Decided here from the simulated DNS, not replied by a remote server.
                Failure(
                    recipient,
                    "5.1.2",
                    f"Host or domain name not found: {domain} (simulated DNS: NXDOMAIN)",
                    LOCAL_DIAGNOSTIC,
                )
            )
    return failures


def schedule_bounces(
    context: ServerContext, session: int, delivery: Delivery, relayed: list[str]
) -> None:
    failures = delivery_failures(relayed)
    if failures:
        context.loop.call_soon(send_bounce, context, session, delivery, failures)


def send_bounce(
    context: ServerContext, session: int, delivery: Delivery, failures: list[Failure]
) -> None:
    """Store the DSN; the event is tagged with the session whose message failed."""
    try:
        _send_bounce(context, session, delivery, failures)
    except Exception:  # a failed bounce must never take the server down
        log.exception("bounce for %s failed", delivery.queue_id)


def _send_bounce(
    context: ServerContext, sid: int, delivery: Delivery, failures: list[Failure]
) -> None:
    failed = tuple(f.recipient for f in failures)
    status = failures[0].status
    if delivery.sender == "":
        context.capture.publish(BounceSent(sid, "", delivery.queue_id, "", failed, status, None))
        return
    persona = context.persona
    # The session hands a bounce the message's header section as bytes: its spooled
    # text is deleted once the 250 is sent, and a DSN quotes the headers only.
    assert isinstance(delivery.content, bytes)
    content = build_dsn(  # already CRLF, as a message on the wire; the store makes it LF
        persona,
        original_sender=delivery.sender,
        original_queue_id=delivery.queue_id,
        original_content=delivery.content,
        arrival=delivery.received_at,
        failures=failures,
    )
    local, _, domain = delivery.sender.rpartition("@")
    folder = persona.mailbox_for(local, domain) if persona.is_local_domain(domain) else RELAY
    bounce = Delivery(
        queue_id=new_queue_id(),
        sender="",
        helo="",
        client_address="",
        protocol="local",
        content=content,
        received_at=delivery.received_at,
    )
    try:
        copies = context.store.deliver(bounce, [(delivery.sender, folder or RELAY)])
    except StorageError as error:
        log.warning("bounce for %s not stored: %s", delivery.queue_id, error)
        return
    context.capture.publish(
        BounceSent(
            sid, bounce.queue_id, delivery.queue_id, delivery.sender, failed, status, copies[0]
        )
    )
