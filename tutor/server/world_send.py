"""Onward delivery for real inside the world (docs/world.md, "DKIM, SPF and DMARC in the
world"): the submission MTA relays what authenticated clients send, DKIM-signed; the
forwarder sends carol's and list's mail on, ARC-sealed.

Each message goes in a thread of its own, so the server's loop never waits for DNS or
for another MTA. Where it goes is asked of the world's DNS server as a sending MTA asks
(tutor.world.routing.Resolver): the MX hosts in order of preference, each address only
if `routing.reachable` allows it (a loopback address the world's zone names), from the
MTA's own address. A host that greets with 421 or answers 4xx is left for the next;
when every host failed for now, the message is tried again later (RETRY_DELAYS), and a
permanent failure, or the last try, sends a bounce (RFC 3464) to the envelope sender.
"""

from __future__ import annotations

import ipaddress
import logging
import mailbox
import smtplib
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tutor.maildir.store import Delivery
from tutor.server.context import ServerContext
from tutor.server.dsn import LOCAL_DIAGNOSTIC, Failure, build_dsn
from tutor.server.world_mail import LIST_FOOTER, LIST_TAG, Forward, WorldMail
from tutor.smtp.events import Copy
from tutor.world.routing import LookupFailed, NotServed, Resolver, RouteKind, reachable

log = logging.getLogger("tutor.server")

CONNECT_TIMEOUT = 10.0
RETRY_DELAYS = (1.0, 5.0, 30.0)  # seconds before each new try, after a temporary failure


@dataclass(frozen=True)
class Outbound:
    """One message to send: its envelope and its content (CRLF, ready to sign)."""

    sender: str
    recipient: str
    content: bytes
    queue_id: str


@dataclass(frozen=True)
class Attempt:
    """How a try ended: delivered (`host` took it), or a failure for now or for good."""

    delivered: bool
    permanent: bool = False
    status: str = ""
    diagnostic: str = ""
    remote: bool = False  # the diagnostic is a remote server's reply
    host: str = ""


def send_all(
    context: ServerContext,
    world: WorldMail,
    delivery: Delivery,
    jobs: list[tuple[Copy, tuple[str, Forward | None]]],
) -> None:
    """Send each job's copy on (a thread of its own runs this)."""
    for copy, (recipient, forward) in jobs:
        try:
            stored = _stored_copy(context, copy)
            content = _outgoing(context, world, stored, forward)
            message = Outbound(delivery.sender, recipient, content, delivery.queue_id)
            _deliver_or_bounce(context, world, message, delivery)
        except Exception:  # a failed relay must never take the server down
            log.exception("relaying %s to %s failed", delivery.queue_id, recipient)


def _stored_copy(context: ServerContext, copy: Copy) -> bytes:
    box = mailbox.Maildir(Path(context.store.root) / copy.folder, factory=None, create=False)
    return box.get_bytes(copy.key)


def _outgoing(
    context: ServerContext, world: WorldMail, stored: bytes, forward: Forward | None
) -> bytes:
    """What goes on the wire: the stored copy with CRLF endings, less what was only for
    this server's mailbox (Return-Path, Delivered-To; the submission MTA's verdicts about
    its own client too), then signed (submission) or changed and sealed (forwarder)."""
    head, _, body = stored.replace(b"\r\n", b"\n").partition(b"\n\n")
    kept = _drop_fields(head.split(b"\n"), forward is not None)
    if forward is not None and forward.as_list:
        kept = [_tagged(line) for line in kept]
        body = body + LIST_FOOTER.replace("\r\n", "\n").encode()
    message = (b"\n".join(kept) + b"\n\n" + body).replace(b"\n", b"\r\n")
    from tutor.server import dkim_mail

    if world.sign is not None:
        return dkim_mail.sign(message, world.sign, world.key_file(world.sign).read_bytes())
    if world.seal is not None:
        pem = world.key_file(world.seal).read_bytes()
        return dkim_mail.arc_seal(message, world.seal, pem, context.persona.hostname)
    return message


# The trace fields the store wrote for its own mailbox; a forwarder keeps its verdicts
# (ARC copies them into ARC-Authentication-Results) and Delivered-To (loop detection).
_MAILBOX_ONLY = (b"return-path:",)
_SUBMISSION_DROPS = (b"return-path:", b"delivered-to:", b"authentication-results:")


def _drop_fields(lines: list[bytes], forwarding: bool) -> list[bytes]:
    dropped = _MAILBOX_ONLY if forwarding else _SUBMISSION_DROPS
    kept: list[bytes] = []
    skipping = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):  # a folded continuation of the field before
            if not skipping:
                kept.append(line)
            continue
        skipping = line.lower().startswith(dropped)
        if not skipping:
            kept.append(line)
    return kept


def _tagged(line: bytes) -> bytes:
    """A list puts its tag before the Subject (once)."""
    if not line.lower().startswith(b"subject:"):
        return line
    value = line[len(b"subject:") :].lstrip()
    if value.startswith(LIST_TAG.strip().encode()):
        return line
    return b"Subject: " + LIST_TAG.encode() + value


def _deliver_or_bounce(
    context: ServerContext, world: WorldMail, message: Outbound, delivery: Delivery
) -> None:
    attempt = deliver(world, context.persona.hostname, message)
    for delay in RETRY_DELAYS:
        if attempt.delivered or attempt.permanent:
            break
        time.sleep(delay)
        attempt = deliver(world, context.persona.hostname, message)
    if attempt.delivered:
        log.info("%s to <%s>: relayed to %s", message.queue_id, message.recipient, attempt.host)
        return
    if not attempt.permanent:  # still failing for now after every try: give up
        attempt = replace(attempt, status="4.4.7", diagnostic=f"gave up: {attempt.diagnostic}")
    log.info("%s to <%s> failed: %s", message.queue_id, message.recipient, attempt.diagnostic)
    _bounce(context, world, message, delivery, attempt)


def deliver(world: WorldMail, hostname: str, message: Outbound) -> Attempt:
    """One try: each MX host of the recipient's domain in order, as the world's DNS says."""
    if not world.port:
        return Attempt(False, status="4.4.1", diagnostic="the world runs without a shared port")
    domain = message.recipient.rpartition("@")[2].lower()
    resolver = Resolver(*world.dns, source=world.source)
    try:
        route = resolver.route(domain)
    except NotServed as error:
        return Attempt(False, permanent=True, status="5.1.2", diagnostic=str(error))
    except LookupFailed as error:
        return Attempt(False, status="4.4.3", diagnostic=str(error))
    if route.kind is not RouteKind.MX and route.kind is not RouteKind.A_FALLBACK:
        return Attempt(False, permanent=True, status="5.1.2", diagnostic=route.why)
    last = nowhere = Attempt(
        False, permanent=True, status="5.4.4", diagnostic=f"{domain}: no address"
    )
    for hop in route.hops:
        for address in hop.addresses:
            attempt = _try_host(world, hostname, message, hop.host, address)
            if attempt.delivered or (attempt.permanent and attempt.remote):
                return attempt
            if not attempt.permanent or last is nowhere:
                last = attempt  # a failure for now outweighs a refused address: try again
    return last


def _try_host(
    world: WorldMail, hostname: str, message: Outbound, host: str, address: str
) -> Attempt:
    if not reachable(address):
        return Attempt(
            False,
            permanent=True,
            status="5.4.4",
            diagnostic=f"{host} is at {address}, which is not a loopback address of the "
            "world: the tutor connects to no other address",
        )
    if ipaddress.ip_address(address).version != ipaddress.ip_address(world.source).version:
        # Sent from our own address only: SPF judges it (no IPv6 address of our own).
        return Attempt(False, status="4.4.1", diagnostic=f"{host} at {address}: no route")
    client = smtplib.SMTP(
        local_hostname=hostname, timeout=CONNECT_TIMEOUT, source_address=(world.source, 0)
    )
    try:
        code, text = client.connect(address, world.port)
        if code != 220:
            return _refused(host, code, text)
        client.ehlo_or_helo_if_needed()
        client.sendmail(message.sender, [message.recipient], message.content)
    except smtplib.SMTPRecipientsRefused as error:
        code, text = error.recipients[message.recipient]
        return _refused(host, code, text)
    except smtplib.SMTPResponseException as error:
        return _refused(host, error.smtp_code, error.smtp_error)
    except (OSError, smtplib.SMTPException) as error:
        return Attempt(False, status="4.4.1", diagnostic=f"{host} at {address}: {error}")
    finally:
        client.close()
    return Attempt(True, host=host)


def _refused(host: str, code: int, text: bytes | str) -> Attempt:
    reply = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    reply = " ".join(reply.split())
    words = reply.split()
    status = words[0] if words and words[0][:1] in "245" and words[0].count(".") == 2 else ""
    permanent = code >= 500
    status = status or ("5.0.0" if permanent else "4.0.0")
    return Attempt(
        False, permanent=permanent, status=status, diagnostic=f"{code} {reply}", remote=True
    )


# build_dsn's closing note is for the simulated relay of bounce.py; this one connected.
_SIMULATED_NOTE = (
    b"The delivery attempt was simulated: smtp-tutor never connects to another\r\n"
    b"server. The failure comes from its simulated DNS table.\r\n"
)
_WORLD_NOTE = (
    b"The delivery was attempted for real, inside smtp-tutor's simulated world\r\n"
    b"(its DNS server and MTAs on loopback; nothing left this machine).\r\n"
)


def _bounce(
    context: ServerContext,
    world: WorldMail,
    message: Outbound,
    delivery: Delivery,
    attempt: Attempt,
) -> None:
    """A DSN to the envelope sender, sent with MAIL FROM:<> like any mail (never for <>)."""
    if not message.sender:
        return
    diagnostic_type = "smtp" if attempt.remote else LOCAL_DIAGNOSTIC
    failure = Failure(message.recipient, attempt.status, attempt.diagnostic, diagnostic_type)
    head = message.content.partition(b"\r\n\r\n")[0] + b"\r\n"
    dsn = build_dsn(
        context.persona,
        original_sender=message.sender,
        original_queue_id=message.queue_id,
        original_content=head,
        arrival=delivery.received_at,
        failures=[failure],
    )
    dsn = dsn.replace(_SIMULATED_NOTE, _WORLD_NOTE)
    if world.sign is not None:  # signed like all it sends, so DMARC passes for the bounce too
        from tutor.server import dkim_mail

        dsn = dkim_mail.sign(dsn, world.sign, world.key_file(world.sign).read_bytes())
    bounce = Outbound("", message.sender, dsn, message.queue_id)
    sent = deliver(world, context.persona.hostname, bounce)
    if not sent.delivered:
        log.warning("bounce for %s not delivered: %s", message.queue_id, sent.diagnostic)
